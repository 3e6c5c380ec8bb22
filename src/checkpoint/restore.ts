import path from 'node:path';
import { readCatalog, restorableNewestFirst } from './catalog.js';
import { ErrorCode, FailureType } from '../errors.js';
import { CheckpointError } from './errors.js';
import { manifestFormat, type BackupManifest } from './manifest.js';
import { scanCheckpoint } from './scan.js';
import { FilesystemStorage, type CheckpointStorage, type ObjectWriter } from './storage.js';
import { DEFAULT_CHECKPOINT_FORMAT, type CheckpointFormat, type SlotIdentity } from './types.js';
import { describeVerifyFailure, runVerifyCommand } from './verify-command.js';

/** Options of {@link restoreCheckpoint}. */
export interface RestoreOptions {
  /** Which backups to consider: only those of this format (default `torch`); the others are not candidates. */
  readonly format?: CheckpointFormat;
  /**
   * Required for `llama-slot`: the model (sha256 of its GGUF file) and context size of the replica the
   * slot will be loaded into. A slot backup that records other values, or none, is skipped, never read.
   */
  readonly expect?: SlotIdentity;
  /**
   * Absolute path to restore to (written atomically: temporary name, fsync, rename, fsync directory).
   * Without it the backup is verified where it is and its storage path returned, for replicas that load
   * straight from the shared filesystem.
   */
  readonly destination?: string;
  /** The user's verify command (argv, `{path}` placeholder), run on the restored file before it is used. */
  readonly verifyCommand?: readonly string[];
  readonly verifyCommandTimeoutMs?: number;
  /** Require PyTorch's layout as well as a valid zip; default true. */
  readonly requireTorchLayout?: boolean;
  readonly chunkSize?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (name: string, done: number, total: number) => void;
  /** One line per decision (which backup, why one was skipped). */
  readonly log?: (line: string) => void;
}

/** A step of one restore attempt and how long it took. */
export interface RestoreStep {
  /**
   * `match`: the manifest against `expect`; `read`: size, sha256 and structure in one read (and the
   * copy to the destination); `verify-command`; `commit`: the destination's fsync and rename.
   */
  readonly step: 'match' | 'read' | 'verify-command' | 'commit';
  readonly ms: number;
}

/** One backup tried by a restore. */
export interface RestoreAttempt {
  readonly name: string;
  readonly ok: boolean;
  readonly reason?: string;
  /** The steps this attempt ran, in order; the last one failed when `ok` is false. */
  readonly steps: readonly RestoreStep[];
  readonly durationMs: number;
}

/** What {@link restoreCheckpoint} restored. */
export interface RestoreResult {
  readonly name: string;
  readonly manifest: BackupManifest;
  /** The file to load: `destination`, or the backup's own path. */
  readonly path: string;
  /** Every backup tried, newest first; all but the last were skipped or failed re-verification. */
  readonly attempts: readonly RestoreAttempt[];
  /** Listing the backups and reading their manifests. */
  readonly catalogMs: number;
  readonly durationMs: number;
}

/**
 * Restores the newest verified checkpoint of a format: takes the backups of that format whose manifests
 * say verified, newest first, and re-verifies each (size, sha256 against the manifest, the format's
 * structure check, the optional verify command) in the same single read that copies it to
 * `destination`. The first that passes is used; one that fails is skipped with its reason, and the
 * previous one is tried. A slot backup whose recorded model or context size differs from `expect` is
 * skipped without being read. The inference replica calls this on start, before it reports ready;
 * every attempt reports how long each step took.
 *
 * @throws CheckpointError `NO_VERIFIED_CHECKPOINT` (permanent) when no backup passes, listing each reason;
 *   destination errors (ENOSPC, EACCES) as they come, since an older backup would not fix them.
 * @example
 * const { path, name } = await restoreCheckpoint(new FilesystemStorage('/mnt/backups'), {
 *   destination: '/models/model.pt',
 * });
 */
export async function restoreCheckpoint(
  storage: CheckpointStorage,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const started = performance.now();
  const log = options.log ?? (() => undefined);
  if (options.destination !== undefined && !path.isAbsolute(options.destination)) {
    throw new CheckpointError(
      FailureType.InvalidInput,
      `restore destination must be an absolute path, got ${options.destination}`,
    );
  }
  const format = options.format ?? DEFAULT_CHECKPOINT_FORMAT;
  if (format === 'llama-slot' && options.expect === undefined) {
    throw new CheckpointError(
      FailureType.InvalidInput,
      'a llama-slot restore needs expect: { modelSha256, ctxSize } of the replica it restores into',
    );
  }
  const catalogStarted = performance.now();
  const candidates = restorableNewestFirst((await readCatalog(storage)).records).filter(
    (r) => manifestFormat(r.manifest as BackupManifest) === format,
  );
  const catalogMs = performance.now() - catalogStarted;
  const attempts: RestoreAttempt[] = [];
  for (const record of candidates) {
    const manifest = record.manifest as BackupManifest;
    options.signal?.throwIfAborted();
    const attemptStarted = performance.now();
    const steps: RestoreStep[] = [];
    const matchStarted = performance.now();
    const mismatch = options.expect && slotMismatch(manifest, options.expect);
    if (options.expect) steps.push({ step: 'match', ms: performance.now() - matchStarted });
    const reason = mismatch ?? (await tryOne(storage, record.name, manifest, options, steps));
    attempts.push({
      name: record.name,
      ok: reason === undefined,
      reason,
      steps,
      durationMs: performance.now() - attemptStarted,
    });
    if (reason === undefined) {
      const restoredPath =
        options.destination ?? storage.localPath(record.name) ?? storage.describe(record.name);
      log(
        `restored ${record.name} (${manifest.size} bytes, sha256 ${manifest.sha256.slice(0, 12)}) to ${restoredPath}`,
      );
      return {
        name: record.name,
        manifest,
        path: restoredPath,
        attempts,
        catalogMs,
        durationMs: performance.now() - started,
      };
    }
    log(`skipping ${record.name}: ${reason}; trying the previous backup`);
  }
  const tried = attempts.map((a) => `${a.name}: ${a.reason}`).join('; ');
  throw new CheckpointError(
    ErrorCode.NoVerifiedCheckpoint,
    candidates.length === 0
      ? `no verified checkpoint of format ${format} in ${storage.location}`
      : `no checkpoint in ${storage.location} passed re-verification (${tried})`,
    { permanent: true },
  );
}

/**
 * Why a slot backup must not be loaded into a replica serving `expect`, or undefined when it may:
 * llama.cpp restores a slot's KV cache into any model of the same shape, silently wrong.
 *
 * @example slotMismatch(manifest, { modelSha256: 'b179c9...', ctxSize: 2048 }) // 'slot of model 0a1b2c3d4e5f, this replica serves b179c9523d0e'
 */
export function slotMismatch(manifest: BackupManifest, expect: SlotIdentity): string | undefined {
  const slot = manifest.slot;
  if (slot?.modelSha256 === undefined || slot.ctxSize === undefined) {
    return 'slot backup records no model or context size, so it cannot be matched to this replica';
  }
  if (slot.modelSha256 !== expect.modelSha256.toLowerCase()) {
    return `slot of model ${slot.modelSha256.slice(0, 12)}, this replica serves ${expect.modelSha256.toLowerCase().slice(0, 12)}`;
  }
  if (slot.ctxSize !== expect.ctxSize) {
    return `slot of context size ${slot.ctxSize}, this replica runs ${expect.ctxSize}`;
  }
  return undefined;
}

/** Tries one backup; returns why it failed, or undefined when it is restored. Records its steps' times. */
async function tryOne(
  storage: CheckpointStorage,
  name: string,
  manifest: BackupManifest,
  options: RestoreOptions,
  steps: RestoreStep[],
): Promise<string | undefined> {
  let stepStarted = performance.now();
  const step = (done: RestoreStep['step']): void => {
    const now = performance.now();
    steps.push({ step: done, ms: now - stepStarted });
    stepStarted = now;
  };
  let writer: ObjectWriter | undefined;
  let destinationError: unknown;
  const localPath = storage.localPath(name);
  if (!options.destination && !localPath) {
    throw new CheckpointError(
      FailureType.InvalidInput,
      `storage ${storage.location} has no local paths: give a restore destination`,
    );
  }
  if (options.destination) {
    const target = new FilesystemStorage(path.dirname(options.destination));
    writer = await target.openWrite(path.basename(options.destination));
  }
  const partialWriter = writer;
  let current: RestoreStep['step'] = 'read';
  stepStarted = performance.now();
  try {
    const reader = await storage.openRead(name);
    try {
      await scanCheckpoint(reader, {
        format: manifestFormat(manifest),
        expectedSize: manifest.size,
        expectedSha256: manifest.sha256,
        torchLayout: options.requireTorchLayout ?? true,
        chunkSize: options.chunkSize,
        signal: options.signal,
        onProgress: options.onProgress && ((done, total) => options.onProgress?.(name, done, total)),
        sink:
          partialWriter &&
          (async (chunk, position) => {
            try {
              await partialWriter.write(chunk, position);
            } catch (err) {
              destinationError = err;
              throw err;
            }
          }),
      });
    } finally {
      await reader.close().catch(() => undefined);
    }
    step('read');
    if (options.verifyCommand) {
      current = 'verify-command';
      // The command checks the bytes that will be used: the restored file, not the backup.
      const checked = writer?.partialPath ?? localPath;
      if (!checked)
        throw new CheckpointError(
          FailureType.InvalidInput,
          'the verify command needs a local path to the checkpoint',
        );
      const result = await runVerifyCommand(options.verifyCommand, checked, {
        timeoutMs: options.verifyCommandTimeoutMs,
        signal: options.signal,
      });
      if (!result.ok) {
        await writer?.abort();
        step('verify-command');
        return describeVerifyFailure(result);
      }
      step('verify-command');
    }
    current = 'commit';
    try {
      await writer?.commit();
    } catch (err) {
      destinationError = err;
      throw err;
    }
    if (writer) step('commit');
    return undefined;
  } catch (err) {
    step(current);
    await writer?.abort().catch(() => undefined);
    if (destinationError !== undefined || options.signal?.aborted) throw err;
    if (err instanceof CheckpointError && err.code === ErrorCode.VerifyCommand) throw err;
    return err instanceof Error ? err.message : String(err);
  }
}
