import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FilesystemStorage } from '../../src/checkpoint/storage.js';
import { startReplica, type ReplicaPhases, type RestoreOutcome } from '../../src/runner/replica.js';
import { flipBit, putVerifiedBackup } from '../checkpoint/helpers.js';
import { inferenceOrSkip, postJson, startLlamaServer, tempDir } from '../inference/llama-server.js';

async function sha256(file: string): Promise<string> {
  return createHash('sha256')
    .update(await fs.readFile(file))
    .digest('hex');
}

const CTX = 2048;
const PORT = 18_000 + (process.pid % 1_000) * 2;

describe('the llama.cpp replica wrapper: restore, then Ready (real llama-server)', async () => {
  const { artifacts, skip } = await inferenceOrSkip();

  it(
    'restores the newest verified model (a corrupted newest one skipped), loads it, restores the matching slot, and only then answers Ready',
    { skip, timeout: 180_000 },
    async () => {
      const { llamaServer, tinyModel } = artifacts!;
      const work = await tempDir('fm-replica-');
      const store = path.join(work, 'store');
      const storage = new FilesystemStorage(store);
      const modelSha = await sha256(tinyModel);

      // A slot of the tiny model, saved by a real llama-server with the replica's context size.
      const saveDir = await tempDir('fm-replica-save-');
      const saver = await startLlamaServer({ binary: llamaServer, model: tinyModel, slotDir: saveDir, ctx: CTX });
      const prompt = 'The checkpoint of a replica is';
      const done = await postJson(`${saver.url}/completion`, { prompt, n_predict: 8, id_slot: 0, cache_prompt: true }, 60_000);
      assert.equal(done.status, 200, JSON.stringify(done.json));
      const saved = await postJson(`${saver.url}/slots/0?action=save`, { filename: 'slot0.bin' });
      assert.equal(saved.status, 200, JSON.stringify(saved.json));
      await saver.kill();

      // The store: a good model, then a newer copy that rots after it was verified; a matching slot,
      // then a newer slot of another model (never to be loaded into this one).
      const t0 = Date.parse('2026-12-01T10:00:00Z');
      const good = await putVerifiedBackup(storage, tinyModel, new Date(t0), 'gguf');
      const rotten = await putVerifiedBackup(storage, tinyModel, new Date(t0 + 60_000), 'gguf');
      await flipBit(storage.localPath(rotten.name), 4_096);
      const slot = await putVerifiedBackup(storage, path.join(saveDir, 'slot0.bin'), new Date(t0 + 120_000), 'llama-slot', {
        modelSha256: modelSha,
        ctxSize: CTX,
      });
      const otherSlot = await putVerifiedBackup(storage, path.join(saveDir, 'slot0.bin'), new Date(t0 + 180_000), 'llama-slot', {
        modelSha256: 'f'.repeat(64),
        ctxSize: CTX,
      });

      const host = '127.0.0.1';
      const readyUrl = `http://${host}:${PORT + 1}/ready`;
      // Readiness as the runner sees it, polled from the start: every 200 must come after the restores.
      const answers: { status: number; phases?: ReplicaPhases }[] = [];
      let polling = true;
      const poller = (async () => {
        while (polling) {
          const res = await fetch(readyUrl, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
          if (res) answers.push({ status: res.status, ...((await res.json()) as { phases: ReplicaPhases }) });
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      const slotDir = await tempDir('fm-replica-slots-');
      const replica = await startReplica({
        llamaServer,
        model: '/nonexistent/used-only-without-a-store.gguf',
        host,
        port: PORT,
        readyPort: PORT + 1,
        ctxSize: CTX,
        parallel: 2,
        slotDir,
        store,
        llamaLog: path.join(work, 'llama-server.log'),
      });
      try {
        const phases = replica.phases;
        const checkpoint = phases.checkpoint as RestoreOutcome;
        assert.equal(checkpoint.name, good.name, JSON.stringify(phases));
        assert.equal(checkpoint.sha256, modelSha);
        assert.deepEqual(
          checkpoint.attempts.map((a) => [a.name, a.ok]),
          [
            [rotten.name, false],
            [good.name, true],
          ],
        );
        assert.match(checkpoint.attempts[0]!.reason!, /sha256/);
        const restoredSlot = phases.slot as RestoreOutcome;
        assert.equal(restoredSlot.name, slot.name, JSON.stringify(phases.slot));
        assert.match(
          (restoredSlot.attempts.find((a) => a.name === otherSlot.name) ?? { reason: '' }).reason ?? '',
          /slot of model ffffffffffff/,
        );
        assert.ok(
          phases.checkpointRestoredMs! <= phases.health200Ms! &&
            phases.health200Ms! <= phases.slotRestoredMs! &&
            phases.slotRestoredMs! <= phases.readyMs!,
          JSON.stringify(phases),
        );

        await new Promise((r) => setTimeout(r, 200));
        polling = false;
        await poller;
        const ok = answers.filter((a) => a.status === 200);
        assert.ok(ok.length > 0, 'never Ready');
        for (const a of ok) assert.equal(a.phases?.readyMs !== undefined && a.phases.slot !== undefined, true);
        assert.ok(
          answers.every((a) => a.status === 200 || a.status === 503),
          JSON.stringify(answers.map((a) => a.status)),
        );

        // The restored slot holds the prompt's KV cache, and the replica serves.
        // A slot that was not restored evaluates the whole prompt; the restored one only its last token.
        process.stderr.write(`# replica phases: ${JSON.stringify(phases)}\n`);
        const answer = await postJson(`http://${host}:${PORT}/completion`, { prompt, n_predict: 4, id_slot: 0, cache_prompt: true }, 60_000);
        assert.equal(answer.status, 200);
        const timings = answer.json.timings as { prompt_n: number };
        assert.ok(timings.prompt_n <= 1, `the prompt was evaluated again (${timings.prompt_n} tokens): the slot was not restored`);
        // /phases serves the same figures for the drill.
        const served = (await fetch(`http://${host}:${PORT + 1}/phases`).then((r) => r.json())) as ReplicaPhases;
        assert.equal(served.readyMs, phases.readyMs);
      } finally {
        polling = false;
        await poller;
        await replica.stop();
      }
      assert.equal(
        await fetch(readyUrl, { signal: AbortSignal.timeout(1_000) }).then(
          () => 'answered',
          () => 'closed',
        ),
        'closed',
        'the readiness port outlived the replica',
      );
    },
  ); // prettier-ignore

  it('without a verified model in the store it fails, naming each backup and why, and frees its ports', { skip, timeout: 60_000 }, async () => {
    const work = await tempDir('fm-replica-empty-');
    const store = path.join(work, 'store');
    await fs.mkdir(store, { recursive: true });
    const options = {
      llamaServer: artifacts!.llamaServer,
      model: artifacts!.tinyModel,
      host: '127.0.0.1',
      port: PORT + 10,
      readyPort: PORT + 11,
      ctxSize: CTX,
      parallel: 2,
      slotDir: work,
      store,
      llamaLog: path.join(work, 'llama-server.log'),
    };
    await assert.rejects(startReplica(options), /no verified checkpoint of format gguf/);
    // Nothing left listening: the same ports start a replica without a store at once.
    const plain = await startReplica({ ...options, store: undefined });
    try {
      assert.deepEqual(plain.phases.slot, { skipped: 'no checkpoint store' });
    } finally {
      await plain.stop();
    }
  }); // prettier-ignore

  it('refuses an address outside 127.0.0.0/8', async () => {
    await assert.rejects(
      startReplica({
        llamaServer: '/bin/false',
        model: '/m.gguf',
        host: '10.0.0.5',
        port: 1,
        readyPort: 2,
        ctxSize: CTX,
        parallel: 1,
        slotDir: '/tmp',
      }),
      /10\.0\.0\.5/,
    );
  });
});
