import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';
import { ErrorCode, FleetmedicError } from '../errors.js';
import { readCatalog, restorableNewestFirst } from '../checkpoint/catalog.js';
import { copyFileToStorage } from '../checkpoint/copy.js';
import { CheckpointCorruptError, CheckpointError } from '../checkpoint/errors.js';
import type { GgufSummary } from '../checkpoint/gguf.js';
import type { LlamaSlotSummary } from '../checkpoint/llama-slot.js';
import { serializeManifest, type BackupManifest } from '../checkpoint/manifest.js';
import { attemptName, manifestNameFor } from '../checkpoint/names.js';
import { openFileReader } from '../checkpoint/pump.js';
import { planRetention } from '../checkpoint/retention.js';
import { scanCheckpoint } from '../checkpoint/scan.js';
import {
  findNewestCheckpoint,
  removeOldSlotFiles,
  requestAdminCheckpoint,
  requestSlotSave,
  resolveUnderRoot,
  slotFileName,
  type CheckpointCandidate,
} from '../checkpoint/source.js';
import type { CheckpointStorage } from '../checkpoint/storage.js';
import {
  DEFAULT_CHECKPOINT_FORMAT,
  DEFAULT_STALE_AFTER_MS,
  type CheckpointFormat,
  type CheckpointSource,
  type RetentionSummary,
} from '../checkpoint/types.js';
import { describeVerifyFailure, runVerifyCommand } from '../checkpoint/verify-command.js';
import type { Verifier } from '../checkpoint/verifiers.js';
import { validateInput } from './input.js';

/** What the checkpoint activities need from the outside world. */
export interface CheckpointActivityDeps {
  /** Where backups go (the shared backup directory, later an object store). */
  readonly storage: CheckpointStorage;
  /** HTTP client for the model server's admin checkpoint endpoint; default the global fetch. */
  readonly fetch?: typeof globalThis.fetch;
  /** Wall clock; tests pass a fixed one. */
  readonly clock?: () => Date;
  /** Simulated cluster: the admin endpoint must be a loopback address. */
  readonly simulated: boolean;
  /**
   * The only directory checkpoints are read from (`FLEETMEDIC_CHECKPOINT_ROOT`): every source file
   * must resolve under it. Without one, every backup is refused.
   */
  readonly checkpointRoot: string | undefined;
  /** The verifiers workflow input may name (`FLEETMEDIC_CHECKPOINT_VERIFIERS`); none: only the built-in checks. */
  readonly verifiers?: ReadonlyMap<string, Verifier>;
  /** Bytes per read/write when copying and verifying; default 8 MiB. */
  readonly chunkSize?: number;
}

/** Result of {@link CheckpointActivities.acquireCheckpoint}. */
export interface AcquireResult {
  readonly candidate: CheckpointCandidate;
  /** Set when the newest verified backup was taken from exactly this file (same path, size, mtime). */
  readonly unchangedFrom?: {
    readonly name: string;
    readonly location: string;
    readonly size: number;
    readonly sha256: string;
  };
}

/** Result of {@link CheckpointActivities.copyCheckpointToBackup}. */
export interface BackupCopy {
  /** The name this attempt committed (a retry commits under its own name). */
  readonly name: string;
  readonly location: string;
  readonly size: number;
  readonly sha256: string;
  /** The source as it was copied (stable for the whole copy). */
  readonly source: { readonly path: string; readonly size: number; readonly mtimeMs: number };
}

/** Which checks a backup passed. */
export interface BackupChecks {
  readonly size: boolean;
  readonly sha256: boolean;
  readonly structure: boolean;
  readonly command: 'passed' | 'failed' | 'skipped';
}

/** Result of {@link CheckpointActivities.verifyCheckpointBackup}: a verdict, not an error. */
export type VerifyVerdict =
  | {
      readonly ok: true;
      readonly checks: BackupChecks;
      /** What the structure check found: `zip` for torch, `gguf` or `slot` for those formats. */
      readonly zip?: { readonly entries: number; readonly prefix?: string; readonly zip64: boolean };
      readonly gguf?: GgufSummary;
      readonly slot?: LlamaSlotSummary;
      readonly verifiedAt: string;
    }
  | {
      readonly ok: false;
      readonly checks: BackupChecks;
      readonly failure: { readonly code: string; readonly message: string };
      readonly verifiedAt: string;
    };

/** Input of {@link CheckpointActivities.verifyCheckpointBackup}. */
export interface VerifyBackupInput {
  readonly copy: BackupCopy;
  /** sha256 the model server reported for its file, if any. */
  readonly sourceSha256?: string;
  /** The name of a verifier configured on this worker. */
  readonly verifier?: string;
  readonly requireTorchLayout: boolean;
  /** What the checkpoint is; default `torch`. */
  readonly format?: CheckpointFormat;
}

/** Input of {@link CheckpointActivities.writeCheckpointManifest}. */
export interface ManifestInput {
  /** Recorded in the manifest; default `torch` (then not recorded, as before formats existed). */
  readonly format?: CheckpointFormat;
  readonly copy: BackupCopy;
  readonly candidate: CheckpointCandidate;
  readonly verdict: VerifyVerdict;
  /** When the run took the checkpoint (workflow time, ISO 8601). */
  readonly createdAt: string;
  readonly workflow?: { readonly workflowId: string; readonly runId: string };
}

const retentionSchema = z.object({
  keep: z.number().int().min(1),
  staleAfterMs: z.number().int().min(0),
  protect: z.array(z.string()),
});

/** Converts errors at the activity boundary: permanent fleetmedic errors must not be retried. */
function toActivityFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure || !(err instanceof FleetmedicError)) return err;
  return ApplicationFailure.create({
    message: err.message,
    type: err.code,
    nonRetryable: err.permanent,
    cause: err,
  });
}

async function boundary<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toActivityFailure(err);
  }
}

/** Heartbeats byte progress; the SDK throttles the actual calls to the server. */
function heartbeatProgress(phase: string): (done: number, total: number) => void {
  const context = Context.current();
  return (done, total) => context.heartbeat({ phase, bytes: done, total });
}

/** Keeps heartbeating while a step without progress of its own runs (the user's verify command). */
async function keepAlive<T>(phase: string, work: Promise<T>): Promise<T> {
  const context = Context.current();
  const every = Math.max(1_000, Math.min(10_000, (context.info.heartbeatTimeoutMs ?? 30_000) / 3));
  const timer = setInterval(() => context.heartbeat({ phase }), every);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

/** The file suffix `newest-file` looks for when the input names none. */
const DEFAULT_SUFFIX: Readonly<Record<CheckpointFormat, string>> = {
  torch: '.pt',
  gguf: '.gguf',
  'llama-slot': '.bin',
};

/**
 * Has llama-server save a slot into its slot directory under a fresh name, and returns that file as
 * the candidate; removes the files of earlier saves older than `staleAfterMs` (already backed up).
 */
async function saveSlot(
  source: Extract<CheckpointSource, { kind: 'llama-slot' }>,
  deps: CheckpointActivityDeps,
  now: Date,
  staleAfterMs: number,
): Promise<CheckpointCandidate> {
  const directory = await resolveUnderRoot(source.directory, deps.checkpointRoot);
  const filename = slotFileName(source.slot, now, randomBytes(4).toString('hex'));
  const answer = await requestSlotSave(source.url, source.slot, filename, {
    fetch: deps.fetch,
    timeoutMs: source.timeoutMs,
    signal: Context.current().cancellationSignal,
    simulated: deps.simulated,
  });
  const file = await resolveUnderRoot(path.join(directory, filename), deps.checkpointRoot).catch(
    (err: unknown) => {
      throw new CheckpointError(
        ErrorCode.CheckpointSource,
        `llama-server at ${source.url} saved slot ${source.slot} as ${filename}, but it is not in ${source.directory} ` +
          `as this worker sees it (is --slot-save-path that directory, and is it mounted here?): ${String(err)}`,
        { permanent: false, cause: err },
      );
    },
  );
  const reader = await openFileReader(file);
  const stat = { size: reader.size, mtimeMs: reader.mtimeMs };
  await reader.close();
  if (answer.n_written !== undefined && answer.n_written !== stat.size) {
    throw new CheckpointError(
      ErrorCode.SourceChanged,
      `llama-server reported ${answer.n_written} bytes for ${file}, the file has ${stat.size}`,
      { permanent: false },
    );
  }
  await removeOldSlotFiles(directory, { before: now.getTime() - staleAfterMs, keep: filename });
  return {
    kind: 'llama-slot',
    url: source.url,
    path: file,
    ...stat,
    slot: {
      id: source.slot,
      modelSha256: source.modelSha256,
      ctxSize: source.ctxSize,
      ...(answer.n_saved !== undefined && { tokens: answer.n_saved }),
    },
  };
}

/**
 * The activities of the checkpoint backup workflow. Register them on the control worker (task queue
 * `fleetmedic`), which must see the checkpoint source and the backup location on its filesystem.
 *
 * @example
 * const activities = createCheckpointActivities({
 *   storage: new FilesystemStorage('/mnt/backups/llama'),
 *   simulated: true,
 *   checkpointRoot: '/mnt/checkpoints',
 * });
 * await Worker.create({ taskQueue: 'fleetmedic', activities, workflowsPath });
 */
export function createCheckpointActivities(deps: CheckpointActivityDeps) {
  const clock = deps.clock ?? (() => new Date());
  const { storage } = deps;

  return {
    /**
     * Gets the checkpoint to back up: asks the model server to write one, or finds the newest file.
     * Also reports when the newest verified backup already holds this exact file.
     */
    acquireCheckpoint: async (input: {
      source: CheckpointSource;
      skipUnchanged: boolean;
      /** Decides the default file suffix of a `newest-file` source. */
      format?: CheckpointFormat;
      /** Slot files of earlier saves older than this are removed; default 1 hour. */
      staleAfterMs?: number;
    }): Promise<AcquireResult> => {
      return boundary(async () => {
        const { source } = input;
        let candidate: CheckpointCandidate;
        if (source.kind === 'admin-endpoint') {
          const answer = await requestAdminCheckpoint(source.url, {
            fetch: deps.fetch,
            timeoutMs: source.timeoutMs,
            signal: Context.current().cancellationSignal,
            simulated: deps.simulated,
            reason: `fleetmedic backup ${Context.current().info.workflowExecution?.workflowId ?? 'run'}`,
          });
          await resolveUnderRoot(answer.path, deps.checkpointRoot);
          let stat: { size: number; mtimeMs: number };
          try {
            const reader = await openFileReader(answer.path);
            stat = { size: reader.size, mtimeMs: reader.mtimeMs };
            await reader.close();
          } catch (err) {
            throw new CheckpointError(
              ErrorCode.CheckpointSource,
              `model server reported ${answer.path}, but this worker cannot read it (is the checkpoint volume mounted here?): ${String(err)}`,
              { permanent: false, cause: err },
            );
          }
          if (answer.size !== undefined && answer.size !== stat.size) {
            throw new CheckpointError(
              ErrorCode.SourceChanged,
              `model server reported ${answer.size} bytes for ${answer.path}, the file has ${stat.size}`,
              { permanent: false },
            );
          }
          candidate = {
            kind: 'admin-endpoint',
            url: source.url,
            path: answer.path,
            sha256: answer.sha256,
            ...stat,
          };
        } else if (source.kind === 'llama-slot') {
          candidate = await saveSlot(source, deps, clock(), input.staleAfterMs ?? DEFAULT_STALE_AFTER_MS);
        } else {
          candidate = await findNewestCheckpoint(source.directory, {
            suffix: source.suffix ?? DEFAULT_SUFFIX[input.format ?? DEFAULT_CHECKPOINT_FORMAT],
            settleMs: source.settleMs,
            now: clock(),
          });
          await resolveUnderRoot(candidate.path, deps.checkpointRoot);
        }
        if (input.skipUnchanged) {
          const newest = restorableNewestFirst((await readCatalog(storage)).records)[0]?.manifest;
          if (
            newest &&
            newest.source.path === candidate.path &&
            newest.source.size === candidate.size &&
            newest.source.mtimeMs === candidate.mtimeMs
          ) {
            return {
              candidate,
              unchangedFrom: {
                name: newest.name,
                location: newest.location,
                size: newest.size,
                sha256: newest.sha256,
              },
            };
          }
        }
        return { candidate };
      });
    },

    /**
     * Copies the checkpoint into backup storage atomically, hashing it on the way, heartbeating byte
     * progress. Each attempt commits under its own name (see `attemptName`), so an attempt that lost its
     * worker but still finishes later cannot overwrite another attempt's verified file; its leftovers
     * are removed by retention.
     */
    copyCheckpointToBackup: async (input: { sourcePath: string; baseName: string }): Promise<BackupCopy> => {
      return boundary(async () => {
        const context = Context.current();
        const name = attemptName(input.baseName, context.info.attempt);
        await resolveUnderRoot(input.sourcePath, deps.checkpointRoot);
        const result = await copyFileToStorage(input.sourcePath, storage, name, {
          chunkSize: deps.chunkSize,
          signal: context.cancellationSignal,
          onProgress: heartbeatProgress('copy'),
        });
        return {
          name,
          location: storage.describe(name),
          size: result.size,
          sha256: result.sha256,
          source: result.source,
        };
      });
    },

    /**
     * Reads the backup back and verifies it: size and sha256 against the copy (and against the model
     * server's sha256 when it sent one), the format's structure (zip with every entry's CRC-32 and
     * PyTorch layout; GGUF header; slot layout), and the user's verify command. A failed check is a
     * verdict (`ok: false`), not an error.
     */
    verifyCheckpointBackup: async (input: VerifyBackupInput): Promise<VerifyVerdict> => {
      return boundary(async () => {
        const context = Context.current();
        const { copy } = input;
        const failed = (checks: BackupChecks, code: string, message: string): VerifyVerdict => ({
          ok: false,
          checks,
          failure: { code, message },
          verifiedAt: clock().toISOString(),
        });
        if (input.sourceSha256 !== undefined && input.sourceSha256 !== copy.sha256) {
          return failed(
            { size: true, sha256: false, structure: false, command: 'skipped' },
            ErrorCode.CheckpointCorrupt,
            `sha256 of the copy (${copy.sha256}) differs from the model server's (${input.sourceSha256})`,
          );
        }
        const reader = await storage.openRead(copy.name);
        const format = input.format ?? DEFAULT_CHECKPOINT_FORMAT;
        let found: Pick<Extract<VerifyVerdict, { ok: true }>, 'zip' | 'gguf' | 'slot'>;
        try {
          const report = await scanCheckpoint(reader, {
            format,
            expectedSize: copy.size,
            expectedSha256: copy.sha256,
            torchLayout: input.requireTorchLayout,
            chunkSize: deps.chunkSize,
            signal: context.cancellationSignal,
            onProgress: heartbeatProgress('verify'),
          });
          found =
            format === 'torch'
              ? {
                  zip: {
                    entries: report.zip?.entries ?? 0,
                    prefix: report.layout?.prefix,
                    zip64: report.zip?.zip64 ?? false,
                  },
                }
              : { ...(report.gguf && { gguf: report.gguf }), ...(report.slot && { slot: report.slot }) };
        } catch (err) {
          if (!(err instanceof CheckpointCorruptError)) throw err;
          const structural = err.check !== 'size' && err.check !== 'sha256';
          return failed(
            {
              size: err.check !== 'size',
              sha256: err.check !== 'sha256' && !structural && err.check !== 'size',
              structure: !structural && err.check !== 'size',
              command: 'skipped',
            },
            err.code,
            err.message,
          );
        } finally {
          await reader.close().catch(() => undefined);
        }
        let command: BackupChecks['command'] = 'skipped';
        if (input.verifier !== undefined) {
          const verifier = deps.verifiers?.get(input.verifier);
          if (!verifier) {
            const known = [...(deps.verifiers?.keys() ?? [])];
            throw new CheckpointError(
              ErrorCode.VerifyCommand,
              `verifier ${JSON.stringify(input.verifier)} is not configured on this worker ` +
                `(FLEETMEDIC_CHECKPOINT_VERIFIERS lists ${known.length > 0 ? known.join(', ') : 'none'})`,
              { permanent: true },
            );
          }
          const local = storage.localPath(copy.name);
          if (!local) {
            throw new CheckpointError(
              ErrorCode.VerifyCommand,
              `storage ${storage.location} has no local path for the verify command`,
            );
          }
          const result = await keepAlive(
            'verify-command',
            runVerifyCommand(verifier.argv, local, {
              timeoutMs: verifier.timeoutMs,
              signal: context.cancellationSignal,
            }),
          );
          if (!result.ok) {
            return failed(
              { size: true, sha256: true, structure: true, command: 'failed' },
              ErrorCode.VerifyCommand,
              describeVerifyFailure(result),
            );
          }
          command = 'passed';
        }
        return {
          ok: true,
          checks: { size: true, sha256: true, structure: true, command },
          ...found,
          verifiedAt: clock().toISOString(),
        };
      });
    },

    /** Writes the backup's manifest (atomically); from then on a verified backup is restorable. */
    writeCheckpointManifest: async (input: ManifestInput): Promise<{ manifest: string }> => {
      return boundary(async () => {
        const { copy, candidate, verdict } = input;
        const slot = verdict.ok ? verdict.slot : undefined;
        const manifest: BackupManifest = {
          schemaVersion: 1,
          name: copy.name,
          location: copy.location,
          ...(input.format !== undefined && input.format !== 'torch' && { format: input.format }),
          size: copy.size,
          sha256: copy.sha256,
          createdAt: input.createdAt,
          verifiedAt: verdict.verifiedAt,
          verified: verdict.ok,
          source: {
            kind: candidate.kind,
            path: copy.source.path,
            size: copy.source.size,
            mtimeMs: copy.source.mtimeMs,
            ...(candidate.url !== undefined && { url: candidate.url }),
            ...(candidate.sha256 !== undefined && { sha256: candidate.sha256 }),
          },
          checks: verdict.checks,
          ...(verdict.ok ? verdict.zip && { zip: verdict.zip } : { failure: verdict.failure }),
          ...(verdict.ok &&
            verdict.gguf && {
              gguf: {
                version: verdict.gguf.version,
                tensors: verdict.gguf.tensors,
                metadataKeys: verdict.gguf.metadataKeys,
                architecture: verdict.gguf.architecture,
              },
            }),
          ...((candidate.slot || slot) && {
            slot: {
              ...(candidate.slot && {
                id: candidate.slot.id,
                modelSha256: candidate.slot.modelSha256,
                ctxSize: candidate.slot.ctxSize,
              }),
              ...(slot && { tokens: slot.tokens, cells: slot.cells }),
            },
          }),
          ...(input.workflow && { workflow: input.workflow }),
        };
        const name = manifestNameFor(copy.name);
        await storage.writeSmall(name, serializeManifest(manifest));
        return { manifest: name };
      });
    },

    /** Removes the data of a backup that failed verification (its manifest stays as the record). */
    discardCheckpointBackup: async (input: { name: string }): Promise<void> => {
      return boundary(() => storage.remove(input.name));
    },

    /** Applies retention (see `planRetention`) and reports what it kept and removed. */
    applyCheckpointRetention: async (input: {
      keep: number;
      staleAfterMs: number;
      protect: readonly string[];
    }): Promise<RetentionSummary> => {
      const policy = validateInput('applyCheckpointRetention', retentionSchema, input);
      return boundary(async () => {
        const plan = planRetention(await readCatalog(storage), policy, clock());
        const removed: string[] = [];
        for (const { object } of plan.remove) {
          await storage.remove(object);
          removed.push(object);
        }
        return { kept: plan.keep, removed, leftAlone: plan.leftAlone.map((l) => `${l.name}: ${l.reason}`) };
      });
    },
  };
}

/** The checkpoint activities, as the workflow sees them through `proxyActivities`. */
export type CheckpointActivities = ReturnType<typeof createCheckpointActivities>;
