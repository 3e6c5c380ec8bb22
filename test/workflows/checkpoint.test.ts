import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  bundleWorkflowCode,
  DefaultLogger,
  Runtime,
  Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { createCheckpointActivities } from '../../src/activities/checkpoint.js';
import { readCatalog, restorableNewestFirst } from '../../src/checkpoint/catalog.js';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import { isBackupName, manifestNameFor } from '../../src/checkpoint/names.js';
import { restoreCheckpoint } from '../../src/checkpoint/restore.js';
import {
  createCheckpointSchedule,
  deleteCheckpointSchedule,
  describeCheckpointSchedule,
  listCheckpointSchedules,
  pauseCheckpointSchedule,
  resumeCheckpointSchedule,
  triggerCheckpointSchedule,
} from '../../src/checkpoint/schedule.js';
import { FilesystemStorage, type CheckpointStorage } from '../../src/checkpoint/storage.js';
import { writeSyntheticCheckpoint } from '../../src/checkpoint/synthetic.js';
import type { CheckpointBackupInput } from '../../src/checkpoint/types.js';
import { checkpointBackupStatusQuery, checkpointBackupWorkflow } from '../../src/workflows/checkpoint.js';
import { ggufBytes } from '../checkpoint/formats.js';
import { faultyFs, flipBit, ls, tempDir, type Fault } from '../checkpoint/helpers.js';
import { createTemporalTestEnv } from '../helpers/temporal.js';

const workflowsPath = fileURLToPath(new URL('../../src/workflows/checkpoint.ts', import.meta.url));
const childWorker = fileURLToPath(new URL('../checkpoint/copy-worker-child.ts', import.meta.url));

async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('checkpointBackupWorkflow (real Temporal dev server)', { timeout: 180_000 }, () => {
  let env: TestWorkflowEnvironment;
  let workflowBundle: WorkflowBundleWithSourceMap;
  let dir: string;
  let cleanup: () => Promise<void>;
  let sourceDir: string;
  let backups: string;
  let storage: FilesystemStorage;

  before(async () => {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    [env, workflowBundle] = await Promise.all([
      createTemporalTestEnv(),
      bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('ERROR') }),
    ]);
  });
  after(() => env?.teardown());

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    sourceDir = path.join(dir, 'ckpt');
    backups = path.join(dir, 'backups');
    await fs.mkdir(sourceDir);
    storage = new FilesystemStorage(backups);
  });
  afterEach(() => cleanup());

  /** The seed's torch.save: writes model.pt in place. */
  async function saveCheckpoint(seed: number, tensorSizes = [64 * 1024]): Promise<string> {
    const file = path.join(sourceDir, 'model.pt');
    await writeSyntheticCheckpoint(file, { seed, tensorSizes });
    return file;
  }

  function input(extra: Partial<CheckpointBackupInput> = {}): CheckpointBackupInput {
    return { source: { kind: 'newest-file', directory: sourceDir, settleMs: 0 }, keep: 2, ...extra };
  }

  async function worker(
    taskQueue: string,
    options: { storage?: CheckpointStorage; activities?: boolean; workflows?: boolean } = {},
  ): Promise<Worker> {
    return Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      ...(options.workflows !== false && { workflowBundle }),
      ...(options.activities !== false && {
        activities: createCheckpointActivities({
          storage: options.storage ?? storage,
          simulated: true,
          checkpointRoot: sourceDir,
        }),
      }),
    });
  }

  /** Runs one backup to its end; `recordAs` keeps its history (see {@link recordHistory}), failed or not. */
  async function run(taskQueue: string, backupInput: CheckpointBackupInput, recordAs?: string) {
    const handle = await env.client.workflow.start(checkpointBackupWorkflow, {
      taskQueue,
      workflowId: `ckpt-${randomUUID()}`,
      args: [backupInput],
    });
    try {
      return await handle.result();
    } finally {
      if (recordAs !== undefined) await recordHistory(recordAs, handle);
    }
  }

  /**
   * With FLEETMEDIC_RECORD_HISTORIES=1, keeps the run's history as
   * test/fixtures/histories/checkpoint-<name>.json for the replay test (test/workflows/replay.test.ts).
   */
  async function recordHistory(name: string, handle: WorkflowHandle): Promise<void> {
    if (process.env.FLEETMEDIC_RECORD_HISTORIES !== '1') return;
    const histories = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));
    await fs.writeFile(`${histories}checkpoint-${name}.json`, historyToJSON(await handle.fetchHistory()));
  }

  it('backs up a GGUF model (format gguf): header verified, manifest records the format, restore re-verifies it', async () => {
    const taskQueue = `ckpt-${randomUUID()}`;
    const w = await worker(taskQueue);
    await w.runUntil(async () => {
      await fs.writeFile(path.join(sourceDir, 'model.gguf'), ggufBytes());
      const result = await run(taskQueue, input({ format: 'gguf' }));
      assert.equal(result.outcome, 'backed-up');
      assert.match(result.name, /^ckpt-.*\.gguf$/);
      const manifest = JSON.parse(await fs.readFile(path.join(backups, manifestNameFor(result.name)), 'utf8')) as {
        format: string;
        verified: boolean;
        gguf: { architecture: string; tensors: number };
      };
      assert.deepEqual([manifest.format, manifest.verified, manifest.gguf.architecture], ['gguf', true, 'llama']);
      const restored = await restoreCheckpoint(storage, { format: 'gguf' });
      assert.equal(restored.name, result.name);
      // A model file whose magic is broken is rejected, never promoted.
      const broken = ggufBytes({ architecture: 'qwen2' });
      broken.write('GGUX', 0);
      await fs.writeFile(path.join(sourceDir, 'model.gguf'), broken);
      await assert.rejects(run(taskQueue, input({ format: 'gguf' })), (err: unknown) => {
        assert.ok(err instanceof WorkflowFailedError);
        assert.ok(err.cause instanceof ApplicationFailure && err.cause.type === 'CheckpointRejected');
        assert.match(err.cause.message, /magic is "GGUX"/);
        return true;
      });
    });
  }); // prettier-ignore

  it('backs up, verifies and writes a manifest; skips an unchanged source; applies retention', async () => {
    const taskQueue = `ckpt-${randomUUID()}`;
    const w = await worker(taskQueue);
    await w.runUntil(async () => {
      await saveCheckpoint(1);
      const first = await run(taskQueue, input(), 'backup');
      assert.equal(first.outcome, 'backed-up');
      assert.ok(isBackupName(first.name));
      assert.equal(first.location, path.join(backups, first.name));
      const manifest = JSON.parse(
        await fs.readFile(path.join(backups, manifestNameFor(first.name)), 'utf8'),
      ) as {
        verified: boolean;
        sha256: string;
        source: { path: string };
      };
      assert.equal(manifest.verified, true);
      assert.equal(manifest.sha256, first.sha256);
      assert.equal(manifest.source.path, path.join(sourceDir, 'model.pt'));

      const unchanged = await run(taskQueue, input(), 'unchanged');
      assert.equal(unchanged.outcome, 'unchanged');
      assert.equal(unchanged.name, first.name);

      await saveCheckpoint(2);
      const second = await run(taskQueue, input());
      await saveCheckpoint(3);
      const third = await run(taskQueue, input());
      assert.deepEqual(third.retention.kept, [third.name, second.name]);
      assert.ok(third.retention.removed.includes(first.name));
      assert.deepEqual(
        await ls(backups),
        [second.name, manifestNameFor(second.name), third.name, manifestNameFor(third.name)].sort(),
      );

      const restored = await restoreCheckpoint(storage, { destination: path.join(dir, 'restored.pt') });
      assert.equal(restored.name, third.name);
      assert.deepEqual(
        await fs.readFile(path.join(dir, 'restored.pt')),
        await fs.readFile(path.join(sourceDir, 'model.pt')),
      );
    });
  });

  for (const [label, damage] of [
    ['truncated', (file: string) => fs.truncate(file, 40_000)],
    ['with a single flipped bit', (file: string) => flipBit(file, 30_000, 6)],
  ] as const) {
    it(`a ${label} checkpoint is detected and never promoted`, async () => {
      const taskQueue = `ckpt-${randomUUID()}`;
      const w = await worker(taskQueue);
      await w.runUntil(async () => {
        await saveCheckpoint(1);
        const good = await run(taskQueue, input());
        await saveCheckpoint(2);
        await damage(path.join(sourceDir, 'model.pt'));
        const workflowId = `ckpt-bad-${randomUUID()}`;
        const handle = await env.client.workflow.start(checkpointBackupWorkflow, {
          taskQueue,
          workflowId,
          args: [input()],
        });
        await assert.rejects(handle.result(), (err) => {
          assert.ok(err instanceof WorkflowFailedError, String(err));
          assert.ok(err.cause instanceof ApplicationFailure);
          assert.equal(err.cause.type, 'CheckpointRejected');
          assert.match(err.cause.message, /failed verification and was not promoted/);
          return true;
        });
        if (label === 'truncated') await recordHistory('rejected', handle);
        const status = await handle.query(checkpointBackupStatusQuery);
        assert.equal(status.phase, 'rejected');
        const catalog = await readCatalog(storage);
        assert.deepEqual(
          restorableNewestFirst(catalog.records).map((r) => r.name),
          [good.name],
        );
        const rejected = catalog.records.find((r) => r.manifest?.verified === false);
        assert.ok(rejected, 'the rejection is recorded in a manifest');
        assert.equal(rejected.data, undefined, 'the rejected copy is removed');
        assert.match(
          rejected.manifest?.failure?.message ?? '',
          label === 'truncated' ? /truncated/ : /CRC-32/,
        );
        assert.equal((await restoreCheckpoint(storage)).name, good.name);
      });
    });
  }

  const storageFaults: Array<[Fault, string]> = [
    [{ on: 'create', code: 'EACCES' }, 'STORAGE_DENIED'],
    [{ on: 'write', code: 'ENOSPC', afterBytes: 30_000 }, 'STORAGE_FULL'],
  ];
  for (const [fault, type] of storageFaults) {
    it(`${fault.code} fails the run at once (non-retryable, ${type}); previous backups untouched`, async () => {
      const taskQueue = `ckpt-${randomUUID()}`;
      const healthy = await worker(taskQueue);
      await saveCheckpoint(1);
      const previous = await healthy.runUntil(run(taskQueue, input()));
      const before = new Map<string, Buffer>();
      for (const name of await ls(backups)) before.set(name, await fs.readFile(path.join(backups, name)));

      await saveCheckpoint(2);
      let opens = 0;
      const faulty = new FilesystemStorage(backups, { fs: faultyFs(fault) });
      const counting: CheckpointStorage = Object.assign(Object.create(faulty) as FilesystemStorage, {
        openWrite: (name: string) => {
          opens++;
          return faulty.openWrite(name);
        },
      });
      const broken = await worker(taskQueue, { storage: counting });
      await broken.runUntil(async () => {
        await assert.rejects(run(taskQueue, input()), (err) => {
          assert.ok(err instanceof WorkflowFailedError, String(err));
          assert.ok(err.cause instanceof ActivityFailure, String(err.cause));
          const failure = err.cause.cause;
          assert.ok(failure instanceof ApplicationFailure);
          assert.equal(failure.type, type);
          assert.equal(failure.nonRetryable, true);
          assert.match(failure.message, new RegExp(fault.code));
          return true;
        });
      });
      assert.equal(opens, 1, 'not retried');
      assert.deepEqual(await ls(backups), [...before.keys()]);
      for (const [name, bytes] of before)
        assert.deepEqual(await fs.readFile(path.join(backups, name)), bytes);
      assert.equal((await restoreCheckpoint(storage)).name, previous.name);
    });
  }

  it('the schedule skips a run while one is in progress (overlap policy skip); pause, resume, list, delete', async () => {
    const taskQueue = `ckpt-${randomUUID()}`;
    await saveCheckpoint(1);
    // The model server's admin endpoint holds the first run in "acquire" until released.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const server = http.createServer((req, res) => {
      calls++;
      req.resume();
      void released.then(() => res.end(JSON.stringify({ path: path.join(sourceDir, 'model.pt') })));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/checkpoint`;
    const scheduleId = `ckpt-schedule-${randomUUID()}`;
    const w = await worker(taskQueue);
    try {
      await w.runUntil(async () => {
        await createCheckpointSchedule(env.client, {
          scheduleId,
          every: '1h',
          taskQueue,
          input: { source: { kind: 'admin-endpoint', url }, keep: 2 },
        });
        await triggerCheckpointSchedule(env.client, scheduleId);
        await until('the first run to call the admin endpoint', () => calls === 1);
        // Two more triggers while the first run is held: neither may start a second backup.
        await triggerCheckpointSchedule(env.client, scheduleId);
        await triggerCheckpointSchedule(env.client, scheduleId);
        await until('the schedule to count a skipped run', async () => {
          return (await describeCheckpointSchedule(env.client, scheduleId)).skippedOverlap >= 1;
        });
        const during = await describeCheckpointSchedule(env.client, scheduleId);
        assert.equal(during.running.length, 1);
        assert.equal(calls, 1, 'no second backup started');

        release();
        const [runningId] = during.running;
        assert.ok(runningId);
        const result = (await env.client.workflow.getHandle(runningId).result()) as {
          outcome: string;
          name: string;
        };
        assert.equal(result.outcome, 'backed-up');
        assert.equal(restorableNewestFirst((await readCatalog(storage)).records)[0]?.name, result.name);

        await pauseCheckpointSchedule(env.client, scheduleId, 'maintenance');
        let listed = (await listCheckpointSchedules(env.client)).find((s) => s.scheduleId === scheduleId);
        assert.equal(listed?.paused, true);
        assert.equal(listed?.note, 'maintenance');
        assert.equal(listed?.every, '1h');
        assert.equal(listed?.recentRuns.length, 1);
        await resumeCheckpointSchedule(env.client, scheduleId);
        listed = (await listCheckpointSchedules(env.client)).find((s) => s.scheduleId === scheduleId);
        assert.equal(listed?.paused, false);
      });
    } finally {
      release();
      await deleteCheckpointSchedule(env.client, scheduleId).catch(() => undefined);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    assert.equal(
      (await listCheckpointSchedules(env.client)).some((s) => s.scheduleId === scheduleId),
      false,
    );
  });

  it('a worker killed in the middle of a copy leaves no backup visible, and the run then succeeds', async () => {
    // What is simulated: the control worker is a real separate process (a real Temporal Worker polling the
    // dev server) whose writes are slowed to ~100 ms per 64 KiB so the copy takes seconds; it is killed
    // with SIGKILL mid-copy, as the OOM killer or a node failure would. The file system itself is real;
    // what a power cut does to unflushed pages is not simulated (fsync + rename covers it by design).
    const taskQueue = `ckpt-${randomUUID()}`;
    await saveCheckpoint(1, [2 * 1024 * 1024]);
    const child: ChildProcess = spawn(
      process.execPath,
      ['--import', 'tsx', childWorker, env.address, taskQueue, backups, '100', String(64 * 1024)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        child.once('exit', (code) => reject(new Error(`child worker exited with ${code}`)));
      });
      // Workflows only, for now: the activities go to the child.
      const workflows = await worker(taskQueue, { activities: false });
      await workflows.runUntil(async () => {
        const handle = await env.client.workflow.start(checkpointBackupWorkflow, {
          taskQueue,
          workflowId: `ckpt-kill-${randomUUID()}`,
          args: [input({ heartbeatTimeoutMs: 2000, staleAfterMs: 1000 })],
        });
        await until('the copy to be under way', async () => {
          const partials = (await ls(backups).catch(() => [])).filter((n) => n.endsWith('.partial'));
          if (partials.length === 0) return false;
          return (await fs.stat(path.join(backups, partials[0] ?? ''))).size >= 256 * 1024;
        });
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('exit', resolve));

        // Nothing that looks like a backup: only a dot-named .partial file, which no reader lists.
        const left = await ls(backups);
        assert.equal(left.length, 1);
        assert.match(left[0] ?? '', /^\.ckpt-.*\.partial$/);
        assert.deepEqual((await readCatalog(storage)).records, []);
        await assert.rejects(
          restoreCheckpoint(storage),
          (err) => err instanceof CheckpointError && err.code === 'NO_VERIFIED_CHECKPOINT',
        );

        // A replacement worker picks the copy up once the heartbeat times out; the retry commits under
        // its own name and retention removes the dead attempt's partial file.
        const replacement = await worker(taskQueue, { workflows: false });
        await replacement.runUntil(async () => {
          const result = await handle.result();
          assert.equal(result.outcome, 'backed-up');
          assert.match(result.name, /-2\.pt$/);
          assert.deepEqual(await ls(backups), [result.name, manifestNameFor(result.name)]);
          assert.equal((await restoreCheckpoint(storage)).name, result.name);

          // And the next scheduled run is an ordinary one.
          await saveCheckpoint(2, [2 * 1024 * 1024]);
          const next = await run(taskQueue, input());
          assert.equal(next.outcome, 'backed-up');
          assert.doesNotMatch(next.name, /-\d\.pt$/);
        });
      });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  it('invalid input fails at once without touching storage', async () => {
    const taskQueue = `ckpt-${randomUUID()}`;
    const w = await worker(taskQueue);
    await w.runUntil(async () => {
      await assert.rejects(
        run(taskQueue, { source: { kind: 'newest-file', directory: 'relative' }, keep: 0 }),
        (err) =>
          err instanceof WorkflowFailedError &&
          err.cause instanceof ApplicationFailure &&
          err.cause.type === 'InvalidInput' &&
          /keep: expected an integer >= 1, got 0/.test(err.cause.message),
      );
    });
    assert.deepEqual(await ls(dir), ['ckpt']);
  });
});
