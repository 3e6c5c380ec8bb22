import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  createCheckpointActivities,
  type BackupCopy,
  type CheckpointActivityDeps,
} from '../../src/activities/checkpoint.js';
import { readCatalog, restorableNewestFirst } from '../../src/checkpoint/catalog.js';
import { parseManifest } from '../../src/checkpoint/manifest.js';
import { backupBaseName, manifestNameFor } from '../../src/checkpoint/names.js';
import { FilesystemStorage } from '../../src/checkpoint/storage.js';
import { writeSyntheticCheckpoint } from '../../src/checkpoint/synthetic.js';
import { FailureType } from '../../src/errors.js';
import { restoreCheckpoint } from '../../src/checkpoint/restore.js';
import { ggufBytes, slotBytes } from '../checkpoint/formats.js';
import { faultyFs, flipBit, ls, makeBackup, tempDir } from '../checkpoint/helpers.js';

const NOW = new Date('2025-06-01T12:00:00Z');
const quiet = { logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } };

/** Runs an activity in the mock environment, keeping its types (MockActivityEnvironment.run loses them). */
function call<A extends unknown[], R>(
  env: MockActivityEnvironment,
  fn: (...args: A) => Promise<R>,
  ...args: A
): Promise<R> {
  return env.run<A, R, (...args: A) => Promise<R>>(fn, ...args);
}

describe('checkpoint activities', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let sourceDir: string;
  let backups: string;
  let storage: FilesystemStorage;
  let deps: CheckpointActivityDeps;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    sourceDir = path.join(dir, 'ckpt');
    backups = path.join(dir, 'backups');
    await fs.mkdir(sourceDir);
    storage = new FilesystemStorage(backups);
    deps = { storage, simulated: true, checkpointRoot: sourceDir, clock: () => NOW, chunkSize: 16 * 1024 };
  });
  afterEach(() => cleanup());

  /** Writes model.pt with an mtime a minute before NOW (settled). */
  async function checkpoint(options: { tensorSizes?: number[]; seed?: number } = {}): Promise<string> {
    const file = path.join(sourceDir, 'model.pt');
    await writeSyntheticCheckpoint(file, options);
    const t = new Date(NOW.getTime() - 60_000);
    await fs.utimes(file, t, t);
    return file;
  }

  async function backUp(env: MockActivityEnvironment, file: string): Promise<BackupCopy> {
    const a = createCheckpointActivities(deps);
    return call(env, a.copyCheckpointToBackup, { sourcePath: file, baseName: backupBaseName(NOW, 'run1') });
  }

  it('copy heartbeats byte progress and commits under the attempt name', async () => {
    const file = await checkpoint({ tensorSizes: [200_000] });
    const env = new MockActivityEnvironment({ attempt: 2 }, quiet);
    const beats: Array<{ phase: string; bytes: number; total: number }> = [];
    env.on('heartbeat', (d: { phase: string; bytes: number; total: number }) => beats.push(d));
    const copy = await backUp(env, file);
    assert.equal(copy.name, 'ckpt-20250601T120000Z-run1-2.pt');
    assert.equal(copy.location, path.join(backups, copy.name));
    const size = (await fs.stat(file)).size;
    assert.equal(copy.size, size);
    assert.ok(beats.length >= 10, `heartbeats: ${beats.length}`);
    assert.deepEqual(beats.at(-1), { phase: 'copy', bytes: size, total: size });
    assert.deepEqual(await ls(backups), [copy.name]);
  });

  it('verify passes a good copy and returns a verdict (not an error) for a flipped bit or a truncation', async () => {
    const file = await checkpoint({ tensorSizes: [100_000] });
    const env = new MockActivityEnvironment(undefined, quiet);
    const a = createCheckpointActivities(deps);
    const copy = await backUp(env, file);
    const ok = await call(env, a.verifyCheckpointBackup, { copy, requireTorchLayout: true });
    assert.equal(ok.ok, true);
    assert.deepEqual(ok.checks, { size: true, sha256: true, structure: true, command: 'skipped' });

    // The model server's file was already bad (a bit flipped before the copy): sha256 of the copy matches
    // what was read, so only the structure check can catch it.
    await flipBit(file, 60_000, 5);
    const flipped = await backUp(env, file);
    const v1 = await call(env, a.verifyCheckpointBackup, { copy: flipped, requireTorchLayout: true });
    assert.equal(v1.ok, false);
    assert.ok(!v1.ok && v1.failure.code === 'CHECKPOINT_CORRUPT' && /CRC-32/.test(v1.failure.message));
    assert.equal(v1.checks.structure, false);

    await fs.truncate(file, 50_000);
    const truncated = await backUp(env, file);
    const v2 = await call(env, a.verifyCheckpointBackup, { copy: truncated, requireTorchLayout: true });
    assert.ok(!v2.ok && /truncated/.test(v2.failure.message), JSON.stringify(v2));
  });

  it('verify catches a copy that differs from what was hashed, and a model-server sha256 mismatch', async () => {
    const file = await checkpoint();
    const env = new MockActivityEnvironment(undefined, quiet);
    const a = createCheckpointActivities(deps);
    const copy = await backUp(env, file);
    const wrong = await call(env, a.verifyCheckpointBackup, {
      copy: { ...copy, sha256: '0'.repeat(64) },
      requireTorchLayout: true,
    });
    assert.ok(!wrong.ok && wrong.checks.sha256 === false && wrong.checks.structure === true);
    const mismatch = await call(env, a.verifyCheckpointBackup, {
      copy,
      sourceSha256: 'f'.repeat(64),
      requireTorchLayout: true,
    });
    assert.ok(!mismatch.ok && /model server's/.test(mismatch.failure.message));
  });

  it('verify runs a verifier configured on the worker with the path, and fails the checkpoint on a non-zero exit', async () => {
    const file = await checkpoint();
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 3000 }, quiet);
    const seen = path.join(dir, 'seen');
    const a = createCheckpointActivities({
      ...deps,
      verifiers: new Map([
        ['records', { argv: ['sh', '-c', 'echo "$1" > "$2"', 'v', '{path}', seen] }],
        ['strict', { argv: ['sh', '-c', 'echo "missing key: lm_head.weight"; exit 2'] }],
        ['absent', { argv: ['/nonexistent/verify'] }],
      ]),
    });
    const copy = await backUp(env, file);
    const pass = await call(env, a.verifyCheckpointBackup, {
      copy,
      requireTorchLayout: true,
      verifier: 'records',
    });
    assert.equal(pass.ok && pass.checks.command, 'passed');
    assert.equal((await fs.readFile(seen, 'utf8')).trim(), copy.location);
    const fail = await call(env, a.verifyCheckpointBackup, {
      copy,
      requireTorchLayout: true,
      verifier: 'strict',
    });
    assert.ok(!fail.ok && fail.failure.code === 'VERIFY_COMMAND');
    assert.match(!fail.ok ? fail.failure.message : '', /exited with 2: missing key: lm_head.weight/);
    await assert.rejects(
      call(env, a.verifyCheckpointBackup, { copy, requireTorchLayout: true, verifier: 'absent' }),
      (err) => err instanceof ApplicationFailure && err.nonRetryable && err.type === 'VERIFY_COMMAND',
    );
  });

  it('verify refuses a verifier the worker does not configure, naming the ones it has, and runs nothing', async () => {
    const file = await checkpoint();
    const env = new MockActivityEnvironment(undefined, quiet);
    const ran = path.join(dir, 'ran');
    const a = createCheckpointActivities({
      ...deps,
      verifiers: new Map([['records', { argv: ['touch', ran] }]]),
    });
    const copy = await backUp(env, file);
    await assert.rejects(
      call(env, a.verifyCheckpointBackup, { copy, requireTorchLayout: true, verifier: 'rm-rf' }),
      (err) =>
        err instanceof ApplicationFailure &&
        err.nonRetryable &&
        /verifier "rm-rf" is not configured on this worker \(FLEETMEDIC_CHECKPOINT_VERIFIERS lists records\)/.test(
          err.message,
        ),
    );
    await assert.rejects(fs.stat(ran), /ENOENT/);
  });

  it('writes a manifest that makes the backup restorable, and detects an unchanged source', async () => {
    const file = await checkpoint();
    const env = new MockActivityEnvironment(undefined, quiet);
    const a = createCheckpointActivities(deps);
    const first = await call(env, a.acquireCheckpoint, {
      source: { kind: 'newest-file', directory: sourceDir },
      skipUnchanged: true,
    });
    assert.equal(first.unchangedFrom, undefined);
    assert.equal(first.candidate.path, file);
    const copy = await backUp(env, file);
    const verdict = await call(env, a.verifyCheckpointBackup, { copy, requireTorchLayout: true });
    const { manifest } = await call(env, a.writeCheckpointManifest, {
      copy,
      candidate: first.candidate,
      verdict,
      createdAt: NOW.toISOString(),
      workflow: { workflowId: 'wf', runId: 'run' },
    });
    assert.equal(manifest, manifestNameFor(copy.name));
    const parsed = parseManifest(await fs.readFile(path.join(backups, manifest)), manifest);
    assert.equal(parsed.verified, true);
    assert.equal(parsed.sha256, copy.sha256);
    assert.equal(parsed.source.path, file);
    assert.deepEqual(parsed.zip, { entries: 6, prefix: 'archive', zip64: false });
    assert.deepEqual(
      restorableNewestFirst((await readCatalog(storage)).records).map((r) => r.name),
      [copy.name],
    );
    const again = await call(env, a.acquireCheckpoint, {
      source: { kind: 'newest-file', directory: sourceDir },
      skipUnchanged: true,
    });
    assert.equal(again.unchangedFrom?.name, copy.name);
    const forced = await call(env, a.acquireCheckpoint, {
      source: { kind: 'newest-file', directory: sourceDir },
      skipUnchanged: false,
    });
    assert.equal(forced.unchangedFrom, undefined);
  });

  it('acquire asks the model server over HTTP and checks the file it names', async () => {
    const file = await checkpoint();
    const server = http.createServer((_req, res) => res.end(JSON.stringify({ path: file })));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/checkpoint`;
      const env = new MockActivityEnvironment(undefined, quiet);
      const a = createCheckpointActivities(deps);
      const { candidate } = await call(env, a.acquireCheckpoint, {
        source: { kind: 'admin-endpoint', url },
        skipUnchanged: true,
      });
      assert.equal(candidate.kind, 'admin-endpoint');
      assert.equal(candidate.path, file);
      assert.equal(candidate.url, url);
      await assert.rejects(
        call(env, a.acquireCheckpoint, {
          source: { kind: 'admin-endpoint', url: 'http://10.1.2.3/x' },
          skipUnchanged: true,
        }),
        (err) => err instanceof ApplicationFailure && err.nonRetryable && err.type === 'NON_LOOPBACK_ADDRESS',
      );
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('a llama-slot source: llama-server saves the slot, the backup is verified, its manifest records model and context size', async () => {
    const slotDir = path.join(sourceDir, 'slots');
    await fs.mkdir(slotDir);
    const leftover = path.join(slotDir, 'fleetmedic-slot0-20250601T100000Z-00000000.bin');
    await fs.writeFile(leftover, 'an earlier save, already backed up');
    const old = new Date(NOW.getTime() - 2 * 3600_000);
    await fs.utimes(leftover, old, old);
    const requests: string[] = [];
    let status = 200;
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        requests.push(`${req.method} ${req.url}`);
        if (status !== 200) return res.writeHead(status).end('{"error":{"message":"no --slot-save-path"}}');
        const { filename } = JSON.parse(body) as { filename: string };
        const bytes = slotBytes();
        void fs.writeFile(path.join(slotDir, filename), bytes).then(() =>
          res.end(JSON.stringify({ id_slot: 0, filename, n_saved: 7, n_written: bytes.length })),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const modelSha256 = 'ab'.repeat(32);
      const source = { kind: 'llama-slot', url, slot: 0, directory: slotDir, modelSha256, ctxSize: 2048 } as const;
      const env = new MockActivityEnvironment(undefined, quiet);
      const a = createCheckpointActivities(deps);
      const { candidate } = await call(env, a.acquireCheckpoint, { source, skipUnchanged: true, format: 'llama-slot' });
      assert.deepEqual(requests, ['POST /slots/0?action=save']);
      assert.match(path.basename(candidate.path), /^fleetmedic-slot0-20250601T120000Z-[0-9a-f]{8}\.bin$/);
      assert.deepEqual(candidate.slot, { id: 0, modelSha256, ctxSize: 2048, tokens: 7 });
      assert.deepEqual(await ls(slotDir), [path.basename(candidate.path)], 'the earlier save was removed');
      const copy = await call(env, a.copyCheckpointToBackup, {
        sourcePath: candidate.path,
        baseName: backupBaseName(NOW, 'run1', 'llama-slot'),
      });
      assert.equal(copy.name, 'ckpt-20250601T120000Z-run1.slot');
      const verdict = await call(env, a.verifyCheckpointBackup, { copy, requireTorchLayout: true, format: 'llama-slot' });
      assert.equal(verdict.ok, true, JSON.stringify(verdict));
      await call(env, a.writeCheckpointManifest, {
        format: 'llama-slot',
        copy,
        candidate,
        verdict,
        createdAt: NOW.toISOString(),
      });
      const manifest = parseManifest(await storage.readSmall(manifestNameFor(copy.name)), 'm');
      assert.equal(manifest.format, 'llama-slot');
      assert.deepEqual(manifest.slot, { id: 0, modelSha256, ctxSize: 2048, tokens: 7, cells: 7 });
      const restored = await restoreCheckpoint(storage, { format: 'llama-slot', expect: { modelSha256, ctxSize: 2048 } });
      assert.equal(restored.name, copy.name);

      status = 501;
      await assert.rejects(
        call(env, a.acquireCheckpoint, { source, skipUnchanged: true }),
        (err) => err instanceof ApplicationFailure && err.nonRetryable && /answered 501/.test(err.message),
      );
      await assert.rejects(
        call(env, a.acquireCheckpoint, { source: { ...source, url: 'http://10.1.2.3:8080' }, skipUnchanged: true }),
        (err) => err instanceof ApplicationFailure && err.type === 'NON_LOOPBACK_ADDRESS',
      );
      await assert.rejects(
        call(env, a.acquireCheckpoint, { source: { ...source, directory: dir }, skipUnchanged: true }),
        /not under the checkpoint root/,
      );
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }); // prettier-ignore

  it('a gguf backup is verified by its header and its manifest records the format and the architecture', async () => {
    const file = path.join(sourceDir, 'model.gguf');
    await fs.writeFile(file, ggufBytes());
    const t = new Date(NOW.getTime() - 60_000);
    await fs.utimes(file, t, t);
    const env = new MockActivityEnvironment(undefined, quiet);
    const a = createCheckpointActivities(deps);
    const { candidate } = await call(env, a.acquireCheckpoint, {
      source: { kind: 'newest-file', directory: sourceDir },
      skipUnchanged: true,
      format: 'gguf',
    });
    assert.equal(candidate.path, file, 'the default suffix follows the format');
    const copy = await call(env, a.copyCheckpointToBackup, {
      sourcePath: file,
      baseName: backupBaseName(NOW, 'run1', 'gguf'),
    });
    const verdict = await call(env, a.verifyCheckpointBackup, { copy, requireTorchLayout: true, format: 'gguf' });
    assert.ok(verdict.ok && verdict.gguf?.architecture === 'llama', JSON.stringify(verdict));
    await call(env, a.writeCheckpointManifest, { format: 'gguf', copy, candidate, verdict, createdAt: NOW.toISOString() });
    const manifest = parseManifest(await storage.readSmall(manifestNameFor(copy.name)), 'm');
    assert.deepEqual([manifest.format, manifest.gguf?.architecture, manifest.zip], ['gguf', 'llama', undefined]);
    await flipBit(copy.location, 0);
    const bad = await call(env, a.verifyCheckpointBackup, { copy, requireTorchLayout: true, format: 'gguf' });
    assert.ok(!bad.ok && /magic is/.test(bad.failure.message), JSON.stringify(bad));
    assert.deepEqual(bad.checks, { size: true, sha256: false, structure: false, command: 'skipped' });
  }); // prettier-ignore

  describe('the checkpoint root (FLEETMEDIC_CHECKPOINT_ROOT)', () => {
    const refusedSource = (err: unknown) =>
      err instanceof ApplicationFailure &&
      err.nonRetryable &&
      err.type === 'CHECKPOINT_SOURCE' &&
      /not under the checkpoint root/.test(err.message);

    it('refuses a file the model server names outside the root, also through a symlink, and copies nothing', async () => {
      await checkpoint();
      const outside = path.join(dir, 'elsewhere.pt');
      await writeSyntheticCheckpoint(outside, {});
      const link = path.join(sourceDir, 'link.pt');
      await fs.symlink(outside, link);
      for (const named of [outside, link, path.join(sourceDir, '..', 'elsewhere.pt')]) {
        const server = http.createServer((_req, res) => res.end(JSON.stringify({ path: named })));
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        try {
          const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/checkpoint`;
          const a = createCheckpointActivities(deps);
          await assert.rejects(
            call(new MockActivityEnvironment(undefined, quiet), a.acquireCheckpoint, {
              source: { kind: 'admin-endpoint', url },
              skipUnchanged: true,
            }),
            refusedSource,
            named,
          );
        } finally {
          await new Promise<void>((resolve) => server.close(() => resolve()));
        }
      }
      const a = createCheckpointActivities(deps);
      await assert.rejects(
        call(new MockActivityEnvironment(undefined, quiet), a.copyCheckpointToBackup, {
          sourcePath: outside,
          baseName: backupBaseName(NOW, 'run3'),
        }),
        refusedSource,
      );
      await assert.rejects(fs.readdir(backups), /ENOENT/, 'nothing was written');
    });

    it('refuses a newest-file source outside the root, and every source when no root is configured', async () => {
      const file = await checkpoint();
      const other = path.join(dir, 'other');
      await fs.mkdir(other);
      await fs.copyFile(file, path.join(other, 'model.pt'));
      await fs.utimes(
        path.join(other, 'model.pt'),
        new Date(NOW.getTime() - 60_000),
        new Date(NOW.getTime() - 60_000),
      );
      const a = createCheckpointActivities(deps);
      await assert.rejects(
        call(new MockActivityEnvironment(undefined, quiet), a.acquireCheckpoint, {
          source: { kind: 'newest-file', directory: other },
          skipUnchanged: false,
        }),
        refusedSource,
      );
      const unconfigured = createCheckpointActivities({ ...deps, checkpointRoot: undefined });
      await assert.rejects(
        call(new MockActivityEnvironment(undefined, quiet), unconfigured.acquireCheckpoint, {
          source: { kind: 'newest-file', directory: sourceDir },
          skipUnchanged: false,
        }),
        (err) =>
          err instanceof ApplicationFailure &&
          err.nonRetryable &&
          /set FLEETMEDIC_CHECKPOINT_ROOT/.test(err.message),
      );
    });

    it('writes backups readable by the worker only (0600)', async () => {
      const file = await checkpoint();
      const copy = await backUp(new MockActivityEnvironment(undefined, quiet), file);
      assert.equal((await fs.stat(copy.location)).mode & 0o777, 0o600);
    });
  });

  it('ENOSPC and EACCES become non-retryable failures naming the cause; previous backups stay', async () => {
    const file = await checkpoint({ tensorSizes: [100_000] });
    const previous = await makeBackup(storage, dir, new Date('2025-06-01T11:00:00Z'));
    const before = await ls(backups);
    for (const [fault, type] of [
      [{ on: 'write', code: 'ENOSPC', afterBytes: 40_000 }, 'STORAGE_FULL'],
      [{ on: 'create', code: 'EACCES' }, 'STORAGE_DENIED'],
    ] as const) {
      const a = createCheckpointActivities({
        ...deps,
        storage: new FilesystemStorage(backups, { fs: faultyFs(fault) }),
      });
      const env = new MockActivityEnvironment(undefined, quiet);
      await assert.rejects(
        call(env, a.copyCheckpointToBackup, { sourcePath: file, baseName: backupBaseName(NOW, 'run2') }),
        (err) => {
          assert.ok(err instanceof ApplicationFailure, String(err));
          assert.equal(err.nonRetryable, true);
          assert.equal(err.type, type);
          assert.match(err.message, new RegExp(fault.code));
          return true;
        },
      );
      assert.deepEqual(await ls(backups), before);
    }
    assert.equal(restorableNewestFirst((await readCatalog(storage)).records)[0]?.name, previous.name);
  });

  it('retention keeps K verified, removes stale leftovers, and protects the current run', async () => {
    const names: string[] = [];
    for (let minute = 0; minute < 4; minute++) {
      names.push((await makeBackup(storage, dir, new Date(Date.UTC(2025, 5, 1, 11, minute)))).name);
    }
    const stale = path.join(backups, '.ckpt-20250601T110500Z-run9.pt.0123456789ab.partial');
    await fs.writeFile(stale, 'partial');
    await fs.utimes(stale, new Date(NOW.getTime() - 7_200_000), new Date(NOW.getTime() - 7_200_000));
    const env = new MockActivityEnvironment(undefined, quiet);
    const a = createCheckpointActivities(deps);
    const summary = await call(env, a.applyCheckpointRetention, {
      keep: 2,
      staleAfterMs: 3_600_000,
      protect: [names[0] ?? ''],
    });
    // The protected backup (the run in progress) is kept on top of the newest K.
    assert.deepEqual(summary.kept, [names[3], names[2], names[0]]);
    assert.ok(summary.removed.includes(names[1] ?? '') && summary.removed.includes(path.basename(stale)));
    assert.ok(!summary.removed.includes(names[0] ?? ''), 'protected');
    for (const keep of [0, 1.5, Number.NaN, '2']) {
      await assert.rejects(
        call(env, a.applyCheckpointRetention, { keep: keep as number, staleAfterMs: 1, protect: [] }),
        (err) =>
          err instanceof ApplicationFailure &&
          err.nonRetryable &&
          err.type === FailureType.InvalidInput &&
          err.message.startsWith('applyCheckpointRetention: input.keep: '),
      );
    }
  });

  it('invalid input of a checkpoint activity is a non-retryable InvalidInput, as for every activity', async () => {
    const env = new MockActivityEnvironment(undefined, quiet);
    const a = createCheckpointActivities(deps);
    // The storage refuses the name (a CheckpointError); the activity boundary keeps its type.
    await assert.rejects(
      call(env, a.discardCheckpointBackup, { name: '../outside.pt' }),
      (err) =>
        err instanceof ApplicationFailure &&
        err.nonRetryable &&
        err.type === FailureType.InvalidInput &&
        /invalid backup object name/.test(err.message),
    );
  });
});
