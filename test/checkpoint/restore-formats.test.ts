import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import { serializeManifest, type BackupManifest } from '../../src/checkpoint/manifest.js';
import { manifestNameFor } from '../../src/checkpoint/names.js';
import { openFileReader } from '../../src/checkpoint/pump.js';
import { restoreCheckpoint } from '../../src/checkpoint/restore.js';
import { scanCheckpoint } from '../../src/checkpoint/scan.js';
import { FilesystemStorage } from '../../src/checkpoint/storage.js';
import type { CheckpointFormat, SlotIdentity } from '../../src/checkpoint/types.js';
import {
  inferenceOrSkip,
  postJson,
  startLlamaServer,
  tempDir as llamaTempDir,
} from '../inference/llama-server.js';
import { ggufBytes, slotBytes } from './formats.js';
import { flipBit, makeBackup, putVerifiedBackup, tempDir } from './helpers.js';

const t = (minute: number) => new Date(Date.UTC(2025, 5, 1, 11, minute));
const MODEL_A = createHash('sha256').update('model a').digest('hex');
const MODEL_B = createHash('sha256').update('model b').digest('hex');

describe('restoreCheckpoint of gguf and llama-slot backups', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let storage: FilesystemStorage;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    storage = new FilesystemStorage(path.join(dir, 'backups'));
  });
  afterEach(() => cleanup());

  /** Puts `bytes` into storage as a verified backup of `format` taken at `createdAt`, as the workflow does. */
  async function put(
    createdAt: Date,
    bytes: Buffer,
    format: CheckpointFormat,
    slot?: SlotIdentity,
  ): Promise<{ name: string; manifest: BackupManifest }> {
    const source = path.join(dir, `src-${createdAt.getTime()}`);
    await fs.writeFile(source, bytes);
    return putVerifiedBackup(storage, source, createdAt, format, slot);
  }

  it('restores the newest verified GGUF, re-verified, and ignores backups of other formats', async () => {
    await put(t(1), ggufBytes(), 'gguf');
    const newest = await put(t(2), ggufBytes({ architecture: 'qwen2' }), 'gguf');
    await makeBackup(storage, dir, t(3)); // a newer torch backup in the same place is not a candidate
    const destination = path.join(dir, 'model.gguf');
    const result = await restoreCheckpoint(storage, { format: 'gguf', destination });
    assert.equal(result.name, newest.name);
    assert.match(result.name, /\.gguf$/);
    assert.deepEqual(await fs.readFile(destination), ggufBytes({ architecture: 'qwen2' }));
    assert.deepEqual(
      result.attempts[0]?.steps.map((s) => s.step),
      ['read', 'commit'],
    );
    assert.ok(result.attempts.every((a) => a.durationMs >= 0) && result.catalogMs >= 0);
  });

  it('skips a corrupted newest GGUF (truncated, then a flipped byte) and falls back to the previous one', async () => {
    const previous = await put(t(1), ggufBytes(), 'gguf');
    const flipped = await put(t(2), ggufBytes({ architecture: 'phi3' }), 'gguf');
    const truncated = await put(t(3), ggufBytes({ architecture: 'gemma' }), 'gguf');
    await flipBit(storage.localPath(flipped.name), flipped.manifest.size - 50);
    // Truncated and re-manifested with its new size, so only the structure check can catch it.
    const file = storage.localPath(truncated.name);
    await fs.truncate(file, truncated.manifest.size - 40);
    const bytes = await fs.readFile(file);
    const manifest = {
      ...truncated.manifest,
      size: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    };
    await storage.writeSmall(manifestNameFor(truncated.name), serializeManifest(manifest));
    const lines: string[] = [];
    const result = await restoreCheckpoint(storage, { format: 'gguf', log: (l) => lines.push(l) });
    assert.equal(result.name, previous.name);
    assert.deepEqual(
      result.attempts.map((a) => [a.name, a.ok]),
      [
        [truncated.name, false],
        [flipped.name, false],
        [previous.name, true],
      ],
    );
    assert.match(result.attempts[0]?.reason ?? '', /beyond the end of the file/);
    assert.match(result.attempts[1]?.reason ?? '', /sha256 is/);
    assert.equal(result.attempts[0]?.steps.at(-1)?.step, 'read', 'the step that failed is the last one');
    assert.ok(lines.some((l) => l.startsWith(`skipping ${truncated.name}`)));
  });

  it('skips a slot of another model or context size with the reason, never reading it', async () => {
    const expect = { modelSha256: MODEL_A, ctxSize: 2048 };
    const matching = await put(t(1), slotBytes(), 'llama-slot', expect);
    const otherCtx = await put(t(2), slotBytes(), 'llama-slot', { modelSha256: MODEL_A, ctxSize: 4096 });
    const otherModel = await put(t(3), slotBytes(), 'llama-slot', { modelSha256: MODEL_B, ctxSize: 2048 });
    // Unreadable data proves the mismatched ones are skipped before any read.
    await fs.rm(storage.localPath(otherModel.name));
    await fs.writeFile(storage.localPath(otherModel.name), Buffer.alloc(otherModel.manifest.size));
    const result = await restoreCheckpoint(storage, { format: 'llama-slot', expect });
    assert.equal(result.name, matching.name);
    assert.deepEqual(
      result.attempts.map((a) => [a.name, a.ok, a.reason, a.steps.map((s) => s.step)]),
      [
        [
          otherModel.name,
          false,
          `slot of model ${MODEL_B.slice(0, 12)}, this replica serves ${MODEL_A.slice(0, 12)}`,
          ['match'],
        ],
        [otherCtx.name, false, 'slot of context size 4096, this replica runs 2048', ['match']],
        [matching.name, true, undefined, ['match', 'read']],
      ],
    );
  });

  it('a slot restore without expect is refused, and with no matching slot fails listing the reasons', async () => {
    await put(t(1), slotBytes(), 'llama-slot', { modelSha256: MODEL_B, ctxSize: 2048 });
    await assert.rejects(restoreCheckpoint(storage, { format: 'llama-slot' }), /needs expect/);
    await assert.rejects(
      restoreCheckpoint(storage, { format: 'llama-slot', expect: { modelSha256: MODEL_A, ctxSize: 2048 } }),
      (err: unknown) =>
        err instanceof CheckpointError &&
        err.code === 'NO_VERIFIED_CHECKPOINT' &&
        /slot of model/.test(err.message),
    );
  });

  it('a slot backup that records no model is skipped', async () => {
    await put(t(1), slotBytes(), 'llama-slot');
    await assert.rejects(
      restoreCheckpoint(storage, { format: 'llama-slot', expect: { modelSha256: MODEL_A, ctxSize: 2048 } }),
      /records no model or context size/,
    );
  });
});

describe('slot files of a real llama-server', async () => {
  const { artifacts, skip } = await inferenceOrSkip();

  it('saves slot 0 with --slot-save-path; the file passes the llama-slot check and a cut one fails', { skip, timeout: 120_000 }, async () => {
    const slotDir = await llamaTempDir('fm-slots-');
    const server = await startLlamaServer({ binary: artifacts!.llamaServer, model: artifacts!.tinyModel, slotDir, slots: 1, ctx: 512 });
    const completion = await postJson(`${server.url}/completion`, { prompt: 'The checkpoint of a replica is', n_predict: 8, id_slot: 0, cache_prompt: true }, 60_000);
    assert.equal(completion.status, 200, JSON.stringify(completion.json));
    const saved = await postJson(`${server.url}/slots/0?action=save`, { filename: 'slot0.bin' });
    assert.equal(saved.status, 200, JSON.stringify(saved.json));
    const file = path.join(slotDir, 'slot0.bin');
    const reader = await openFileReader(file);
    const report = await scanCheckpoint(reader, { format: 'llama-slot' }).finally(() => reader.close());
    assert.equal(report.size, saved.json.n_written);
    assert.equal(report.slot?.tokens, saved.json.n_saved);
    assert.ok((report.slot?.cells ?? 0) > 0 && (report.slot?.layers ?? 0) > 0, JSON.stringify(report.slot));
    process.stderr.write(`# real slot file: ${report.size} bytes, ${JSON.stringify(report.slot)}\n`);
    await fs.truncate(file, report.size - 1);
    const cut = await openFileReader(file);
    await assert.rejects(scanCheckpoint(cut, { format: 'llama-slot' }).finally(() => cut.close()), /file ends/);
  }); // prettier-ignore
});
