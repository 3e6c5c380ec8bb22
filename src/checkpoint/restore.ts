import path from 'node:path';
import { readCatalog, restorableNewestFirst } from './catalog.js';
import { CheckpointError } from './errors.js';
import type { BackupManifest } from './manifest.js';
import { scanCheckpoint } from './scan.js';
import { FilesystemStorage, type CheckpointStorage, type ObjectWriter } from './storage.js';
import { describeVerifyFailure, runVerifyCommand } from './verify-command.js';

/** Options of {@link restoreCheckpoint}. */
export interface RestoreOptions {
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

/** One backup tried by a restore. */
export interface RestoreAttempt {
  readonly name: string;
  readonly ok: boolean;
  readonly reason?: string;
}

/** What {@link restoreCheckpoint} restored. */
export interface RestoreResult {
  readonly name: string;
  readonly manifest: BackupManifest;
  /** The file to load: `destination`, or the backup's own path. */
  readonly path: string;
  /** Every backup tried, newest first; all but the last failed re-verification. */
  readonly attempts: readonly RestoreAttempt[];
  readonly durationMs: number;
}

/**
 * Restores the newest verified checkpoint: takes the backups whose manifests say verified, newest first,
 * and re-verifies each (size, sha256 against the manifest, zip structure and CRC-32s, the optional verify
 * command) in the same single read that copies it to `destination`. The first that passes is used; one
 * that fails is skipped with its reason, and the previous one is tried. The inference replica calls this
 * on start, before it reports ready.
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
      'INVALID_INPUT',
      `restore destination must be an absolute path, got ${options.destination}`,
    );
  }
  const candidates = restorableNewestFirst((await readCatalog(storage)).records);
  const attempts: RestoreAttempt[] = [];
  for (const record of candidates) {
    const manifest = record.manifest as BackupManifest;
    options.signal?.throwIfAborted();
    const reason = await tryOne(storage, record.name, manifest, options);
    attempts.push({ name: record.name, ok: reason === undefined, reason });
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
        durationMs: performance.now() - started,
      };
    }
    log(`skipping ${record.name}: ${reason}; trying the previous backup`);
  }
  const tried = attempts.map((a) => `${a.name}: ${a.reason}`).join('; ');
  throw new CheckpointError(
    'NO_VERIFIED_CHECKPOINT',
    candidates.length === 0
      ? `no verified checkpoint in ${storage.location}`
      : `no checkpoint in ${storage.location} passed re-verification (${tried})`,
    { permanent: true },
  );
}

/** Tries one backup; returns why it failed, or undefined when it is restored. */
async function tryOne(
  storage: CheckpointStorage,
  name: string,
  manifest: BackupManifest,
  options: RestoreOptions,
): Promise<string | undefined> {
  let writer: ObjectWriter | undefined;
  let destinationError: unknown;
  const localPath = storage.localPath(name);
  if (!options.destination && !localPath) {
    throw new CheckpointError(
      'INVALID_INPUT',
      `storage ${storage.location} has no local paths: give a restore destination`,
    );
  }
  if (options.destination) {
    const target = new FilesystemStorage(path.dirname(options.destination));
    writer = await target.openWrite(path.basename(options.destination));
  }
  const partialWriter = writer;
  try {
    const reader = await storage.openRead(name);
    try {
      await scanCheckpoint(reader, {
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
    if (options.verifyCommand) {
      // The command checks the bytes that will be used: the restored file, not the backup.
      const checked = writer?.partialPath ?? localPath;
      if (!checked)
        throw new CheckpointError('INVALID_INPUT', 'the verify command needs a local path to the checkpoint');
      const result = await runVerifyCommand(options.verifyCommand, checked, {
        timeoutMs: options.verifyCommandTimeoutMs,
        signal: options.signal,
      });
      if (!result.ok) {
        await writer?.abort();
        return describeVerifyFailure(result);
      }
    }
    try {
      await writer?.commit();
    } catch (err) {
      destinationError = err;
      throw err;
    }
    return undefined;
  } catch (err) {
    await writer?.abort().catch(() => undefined);
    if (destinationError !== undefined || options.signal?.aborted) throw err;
    if (err instanceof CheckpointError && err.code === 'VERIFY_COMMAND') throw err;
    return err instanceof Error ? err.message : String(err);
  }
}
