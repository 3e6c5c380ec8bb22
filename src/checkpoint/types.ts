// Input and result types of the checkpoint backup workflow, plus their validation. Imported by the
// workflow bundle, so no Node builtins and no heavy dependencies here.

/** The name of a configured verifier (same as `VERIFIER_NAME` in verifiers.ts, which the bundle cannot import). */
const VERIFIER_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Where the workflow gets the checkpoint to back up. */
export type CheckpointSource =
  | {
      /** Ask the model server to write a checkpoint now (HTTP POST, see `requestAdminCheckpoint`). */
      readonly kind: 'admin-endpoint';
      /** e.g. `http://127.0.0.1:8000/admin/checkpoint`; loopback only in simulated mode. */
      readonly url: string;
      /** How long the model server may take to write the checkpoint; default 10 minutes. */
      readonly timeoutMs?: number;
    }
  | {
      /** Take the newest file in a directory the model server writes to (the seed's `torch.save`). */
      readonly kind: 'newest-file';
      readonly directory: string;
      /** File name suffix to consider; default `.pt`. */
      readonly suffix?: string;
      /**
       * A file modified less than this long ago may still be being written (torch.save writes in
       * place); the attempt fails and retries later. Default 5 seconds.
       */
      readonly settleMs?: number;
    };

/** Input of {@link checkpointBackupWorkflow}: one backup run. */
export interface CheckpointBackupInput {
  readonly source: CheckpointSource;
  /** Retention: how many verified backups to keep (at least 1); default {@link DEFAULT_KEEP}. */
  readonly keep?: number;
  /**
   * A verifier configured on the worker (`FLEETMEDIC_CHECKPOINT_VERIFIERS`) to run against the copy;
   * input names it and never carries a command.
   */
  readonly verifier?: string;
  /**
   * Partial files and unmanifested copies older than this are leftovers of killed attempts and get
   * removed; default 1 hour (a live copy keeps its file's mtime fresh).
   */
  readonly staleAfterMs?: number;
  /** Skip the copy when the source is the one the newest verified backup came from; default true. */
  readonly skipUnchanged?: boolean;
  /** Require the PyTorch layout (`<prefix>/data.pkl`) and not just a valid zip; default true. */
  readonly requireTorchLayout?: boolean;
  /** Heartbeat timeout of the copy and verify activities; default 30 seconds. */
  readonly heartbeatTimeoutMs?: number;
}

/** What one backup run did. */
export interface CheckpointBackupResult {
  readonly outcome: 'backed-up' | 'unchanged';
  /** The new backup, or for `unchanged` the existing one that already holds this source. */
  readonly name: string;
  readonly location?: string;
  readonly size?: number;
  readonly sha256?: string;
  readonly sourcePath: string;
  readonly retention: RetentionSummary;
}

/** What retention kept and removed in one run. */
export interface RetentionSummary {
  /** Verified backups kept, newest first. */
  readonly kept: readonly string[];
  /** Objects removed (backups, manifests, partial files). */
  readonly removed: readonly string[];
  /** Objects retention could not classify and therefore left alone. */
  readonly leftAlone: readonly string[];
}

/** Verified backups kept by default. */
export const DEFAULT_KEEP = 5;
/** Age after which leftovers of killed attempts are removed. */
export const DEFAULT_STALE_AFTER_MS = 60 * 60 * 1000;
/** Heartbeat timeout of the long activities (copy, verify). */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 30_000;
/** How long the model server may take to answer the admin checkpoint call. */
export const DEFAULT_ADMIN_TIMEOUT_MS = 10 * 60 * 1000;
/** How long the user's verify command may run. */
export const DEFAULT_VERIFY_COMMAND_TIMEOUT_MS = 10 * 60 * 1000;
/** A checkpoint file modified more recently than this may still be being written. */
export const DEFAULT_SETTLE_MS = 5_000;

function positiveInt(value: unknown): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value > 0;
}

/**
 * Every problem with a backup input, each naming the field, the value received and what was
 * expected; empty when the input is valid. The CLI and the workflow both use it, so a bad schedule is
 * refused when it is created and a bad direct start fails at once instead of retrying.
 *
 * @example checkpointBackupInputProblems({ source: { kind: 'newest-file', directory: 'rel' }, keep: 0 })
 * // ['source.directory: expected an absolute path, got "rel"', 'keep: expected an integer >= 1, got 0']
 */
export function checkpointBackupInputProblems(input: unknown): string[] {
  const problems: string[] = [];
  const got = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v));
  if (typeof input !== 'object' || input === null) return [`input: expected an object, got ${got(input)}`];
  const i = input as Record<string, unknown>;
  const source = i.source as Record<string, unknown> | undefined;
  if (typeof source !== 'object' || source === null) {
    problems.push(`source: expected an object, got ${got(source)}`);
  } else if (source.kind === 'admin-endpoint') {
    if (typeof source.url !== 'string' || !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(source.url)) {
      problems.push(`source.url: expected an http(s) URL, got ${got(source.url)}`);
    }
    if (source.timeoutMs !== undefined && !positiveInt(source.timeoutMs)) {
      problems.push(`source.timeoutMs: expected a positive integer, got ${got(source.timeoutMs)}`);
    }
  } else if (source.kind === 'newest-file') {
    if (typeof source.directory !== 'string' || !source.directory.startsWith('/')) {
      problems.push(`source.directory: expected an absolute path, got ${got(source.directory)}`);
    }
    if (source.suffix !== undefined && (typeof source.suffix !== 'string' || source.suffix.includes('/'))) {
      problems.push(`source.suffix: expected a file name suffix such as ".pt", got ${got(source.suffix)}`);
    }
    if (source.settleMs !== undefined && !(positiveInt(source.settleMs) || source.settleMs === 0)) {
      problems.push(`source.settleMs: expected an integer >= 0, got ${got(source.settleMs)}`);
    }
  } else {
    problems.push(`source.kind: expected "admin-endpoint" or "newest-file", got ${got(source.kind)}`);
  }
  if (i.keep !== undefined && !positiveInt(i.keep)) {
    problems.push(`keep: expected an integer >= 1, got ${got(i.keep)}`);
  }
  const legacy = i as { verifyCommand?: unknown; verifyCommandTimeoutMs?: unknown };
  if (legacy.verifyCommand !== undefined || legacy.verifyCommandTimeoutMs !== undefined) {
    problems.push(
      'verifyCommand: a command is not accepted in workflow input; name a verifier configured on the ' +
        'worker (FLEETMEDIC_CHECKPOINT_VERIFIERS) with verifier',
    );
  }
  if (
    i.verifier !== undefined &&
    (typeof i.verifier !== 'string' || !VERIFIER_NAME_PATTERN.test(i.verifier))
  ) {
    problems.push(
      `verifier: expected the name of a configured verifier (a-z, 0-9, -), got ${got(i.verifier)}`,
    );
  }
  for (const key of ['staleAfterMs', 'heartbeatTimeoutMs'] as const) {
    if (i[key] !== undefined && !positiveInt(i[key])) {
      problems.push(`${key}: expected a positive integer (milliseconds), got ${got(i[key])}`);
    }
  }
  for (const key of ['skipUnchanged', 'requireTorchLayout'] as const) {
    if (i[key] !== undefined && typeof i[key] !== 'boolean') {
      problems.push(`${key}: expected true or false, got ${got(i[key])}`);
    }
  }
  return problems;
}

/** Where a backup run is, as answered by the workflow's status query. */
export interface CheckpointBackupStatus {
  readonly phase: 'acquire' | 'copy' | 'verify' | 'manifest' | 'retention' | 'done' | 'rejected';
  readonly sourcePath?: string;
  /** The backup being written, once the copy committed it. */
  readonly name?: string;
  /** Why verification failed, for a rejected run. */
  readonly failure?: string;
}
