import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CheckpointError } from '../checkpoint/errors.js';
import { restoreCheckpoint, type RestoreAttempt } from '../checkpoint/restore.js';
import { FilesystemStorage } from '../checkpoint/storage.js';
import { assertLoopbackAddress } from '../k8s/loopback.js';

/** How the replica wrapper starts one llama.cpp replica. */
export interface ReplicaOptions {
  /** The llama-server binary. */
  readonly llamaServer: string;
  /** The model to serve when there is no checkpoint store (the toolchain's GGUF). */
  readonly model: string;
  /** The pod's IP (loopback only) and llama-server's port on it. */
  readonly host: string;
  readonly port: number;
  /** The port of the wrapper's own readiness endpoint (`GET /ready`, `GET /phases`), on the same IP. */
  readonly readyPort: number;
  readonly ctxSize: number;
  readonly parallel: number;
  /** llama-server's `--slot-save-path`: the pod's own directory. */
  readonly slotDir: string;
  /**
   * The checkpoint store (a directory of verified backups): the model is the newest verified `gguf`
   * backup there, the KV cache of slot 0 the newest verified `llama-slot` backup of that model and
   * context size. Absent: the toolchain's model, no slot.
   */
  readonly store?: string;
  /** A file for llama-server's output (appended); default: this process's stdout and stderr. */
  readonly llamaLog?: string;
  readonly log?: (line: string) => void;
}

/** One restore as the replica did it (the drill reports these). */
export interface RestoreOutcome {
  readonly name: string;
  readonly sha256: string;
  /** Every backup tried, newest first: a corrupted newest one shows here, skipped with its reason. */
  readonly attempts: readonly Pick<RestoreAttempt, 'name' | 'ok' | 'reason' | 'durationMs'>[];
  readonly ms: number;
}

/** What the replica has done so far, served at `GET /phases`; times in ms from the wrapper's start. */
export interface ReplicaPhases {
  readonly startedAt: string;
  /** The model: restored from the store, or the toolchain's file. */
  checkpoint?: RestoreOutcome | { readonly model: string; readonly reason: string };
  checkpointRestoredMs?: number;
  /** llama-server answered `/health` 200: the model is loaded. */
  health200Ms?: number;
  slot?: RestoreOutcome | { readonly skipped: string };
  slotRestoredMs?: number;
  readyMs?: number;
  /** Why the replica failed to start, when it did. */
  failed?: string;
}

/**
 * A llama.cpp replica as the issue asks for it: restore the newest verified checkpoint (re-verified),
 * start llama-server on it, wait for the model to load, restore the slot's KV cache from the newest
 * verified slot backup of the same model and context size (one that does not match is skipped with
 * its reason, never loaded), and only then answer Ready. Readiness is served by the wrapper on its own
 * port (`/ready`: 200 once all of that is done and while llama-server's `/health` answers 200), as a
 * readiness sidecar would on a real cluster; `/phases` tells how long each step took.
 *
 * Resolves with a handle once llama-server runs; its `exited` settles when llama-server exits.
 */
export async function startReplica(options: ReplicaOptions): Promise<{
  readonly phases: ReplicaPhases;
  readonly exited: Promise<number>;
  stop(): Promise<void>;
}> {
  const host = assertLoopbackAddress(options.host);
  const log = options.log ?? (() => undefined);
  const started = performance.now();
  const at = () => Math.round(performance.now() - started);
  const phases: ReplicaPhases = { startedAt: new Date().toISOString() };
  let ready = false;
  const llamaUrl = `http://${host}:${options.port}`;
  const readiness = http.createServer((req, res) => {
    void (async () => {
      if (req.url === '/phases') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(phases));
        return;
      }
      if (req.url !== '/ready') {
        res.writeHead(404).end();
        return;
      }
      const healthy = ready && (await healthStatus(llamaUrl, 1_000)) === 200;
      res
        .writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ready: healthy, phases }));
    })();
  });
  await new Promise<void>((resolve, reject) => {
    readiness.once('error', reject);
    readiness.listen(options.readyPort, host, resolve);
  });

  let child: ChildProcess | undefined;
  const closeReadiness = () => new Promise<void>((resolve) => readiness.close(() => resolve()));
  try {
    const storage = options.store ? new FilesystemStorage(options.store) : undefined;
    let model = options.model;
    let modelSha256: string | undefined;
    if (storage) {
      const t = performance.now();
      const restored = await restoreCheckpoint(storage, { format: 'gguf', log });
      model = restored.path;
      modelSha256 = restored.manifest.sha256;
      phases.checkpoint = outcome(restored.name, restored.manifest.sha256, restored.attempts, t);
      log(`model restored from ${restored.name} in ${phases.checkpoint.ms} ms`);
    } else {
      phases.checkpoint = { model, reason: 'no checkpoint store: the toolchain model' };
    }
    phases.checkpointRestoredMs = at();

    const output = options.llamaLog ? await fs.open(options.llamaLog, 'a') : undefined;
    child = spawn(
      options.llamaServer,
      [
        ...['--model', model, '--host', host, '--port', String(options.port)],
        ...['--threads', '1', '--threads-batch', '1', '--ctx-size', String(options.ctxSize)],
        ...['--parallel', String(options.parallel), '--no-warmup', '--slot-save-path', options.slotDir],
      ],
      { stdio: ['ignore', output?.fd ?? 'inherit', output?.fd ?? 'inherit'] },
    );
    await output?.close();
    const exited = new Promise<number>((resolve) =>
      child!.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))),
    );
    let gone = false;
    void exited.then(() => (gone = true));
    while ((await healthStatus(llamaUrl, 1_000)) !== 200) {
      if (gone) throw new Error(`llama-server exited before its model loaded (${model})`);
      await sleep(50);
    }
    phases.health200Ms = at();

    if (storage && modelSha256) {
      const t = performance.now();
      phases.slot = await restoreSlot(storage, llamaUrl, options, modelSha256, log);
      if ('name' in phases.slot) phases.slot = { ...phases.slot, ms: Math.round(performance.now() - t) };
      phases.slotRestoredMs = at();
    } else {
      phases.slot = { skipped: 'no checkpoint store' };
    }
    ready = true;
    phases.readyMs = at();
    log(`ready after ${phases.readyMs} ms`);
    const running = child;
    return {
      phases,
      exited: exited.finally(closeReadiness),
      async stop() {
        if (running.exitCode === null && running.signalCode === null) running.kill('SIGTERM');
        await exited;
        await closeReadiness();
      },
    };
  } catch (err) {
    phases.failed = (err as Error).message;
    child?.kill('SIGKILL');
    await closeReadiness();
    throw err;
  }
}

/** Restores slot 0's KV cache; anything that prevents it is a skip with its reason (the replica serves without). */
async function restoreSlot(
  storage: FilesystemStorage,
  llamaUrl: string,
  options: ReplicaOptions,
  modelSha256: string,
  log: (line: string) => void,
): Promise<RestoreOutcome | { skipped: string }> {
  const file = 'restored-slot0.bin';
  const t = performance.now();
  try {
    const restored = await restoreCheckpoint(storage, {
      format: 'llama-slot',
      expect: { modelSha256, ctxSize: options.ctxSize },
      destination: path.join(options.slotDir, file),
      log,
    });
    const res = await fetch(`${llamaUrl}/slots/0?action=restore`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ filename: file }),
      signal: AbortSignal.timeout(30_000),
    });
    const body = await res.text();
    if (!res.ok) return { skipped: `llama-server refused the slot (${res.status}: ${body.slice(0, 200)})` };
    log(`slot 0 restored from ${restored.name}`);
    return outcome(restored.name, restored.manifest.sha256, restored.attempts, t);
  } catch (err) {
    const reason =
      err instanceof CheckpointError && err.code === 'NO_VERIFIED_CHECKPOINT'
        ? err.message
        : `slot restore failed: ${(err as Error).message}`;
    log(`slot not restored: ${reason}`);
    return { skipped: reason };
  }
}

function outcome(
  name: string,
  sha256: string,
  attempts: readonly RestoreAttempt[],
  startedAt: number,
): RestoreOutcome {
  return {
    name,
    sha256,
    attempts: attempts.map(({ name: n, ok, reason, durationMs }) => ({
      name: n,
      ok,
      ...(reason !== undefined && { reason }),
      durationMs: Math.round(durationMs),
    })),
    ms: Math.round(performance.now() - startedAt),
  };
}

async function healthStatus(url: string, timeoutMs: number): Promise<number> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}
