// Input and result types of the checkpoint backup workflow, plus their validation. Imported by the
// workflow bundle, so no Node builtins and no heavy dependencies here.

/** The name of a configured verifier (same as `VERIFIER_NAME` in verifiers.ts, which the bundle cannot import). */
const VERIFIER_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * What a checkpoint file is, which decides what verification checks besides size and sha256:
 * `torch` a PyTorch zip (`torch.save`; zip structure, CRC-32s, layout), `gguf` a llama.cpp model
 * (GGUF header, metadata, tensor extents), `llama-slot` a llama.cpp slot state file (`POST
 * /slots/<id>?action=save`; magic, version, tokens, KV cache layout).
 */
export type CheckpointFormat = 'torch' | 'gguf' | 'llama-slot';

/** Every {@link CheckpointFormat}. */
export const CHECKPOINT_FORMATS: readonly CheckpointFormat[] = ['torch', 'gguf', 'llama-slot'];

/** The format of a backup input or manifest that names none (everything written before formats). */
export const DEFAULT_CHECKPOINT_FORMAT: CheckpointFormat = 'torch';

/** What a slot file must match to be restored: the model it was computed with and the context size. */
export interface SlotIdentity {
  /** sha256 (hex) of the GGUF model file the server runs. */
  readonly modelSha256: string;
  /** The server's `--ctx-size`. */
  readonly ctxSize: number;
}

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
    }
  | ({
      /**
       * Ask llama-server to save a slot's KV cache (`POST <url>/slots/<slot>?action=save` with a fresh
       * file name); the server writes it into its `--slot-save-path`, `directory`.
       */
      readonly kind: 'llama-slot';
      /** llama-server's base URL, e.g. `http://127.0.0.1:8080`; loopback only in simulated mode. */
      readonly url: string;
      readonly slot: number;
      /** The server's `--slot-save-path`; must be under the worker's checkpoint root. */
      readonly directory: string;
      /** How long the save may take; default 10 minutes. */
      readonly timeoutMs?: number;
    } & SlotIdentity);

/** Input of {@link checkpointBackupWorkflow}: one backup run. */
export interface CheckpointBackupInput {
  readonly source: CheckpointSource;
  /**
   * What the checkpoint is; default `llama-slot` for a `llama-slot` source and `torch` otherwise
   * (see {@link checkpointFormatOf}).
   */
  readonly format?: CheckpointFormat;
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

/** The format a backup input's checkpoint has: `format`, else what its source implies. */
export function checkpointFormatOf(
  input: Pick<CheckpointBackupInput, 'format' | 'source'>,
): CheckpointFormat {
  return input.format ?? (input.source.kind === 'llama-slot' ? 'llama-slot' : DEFAULT_CHECKPOINT_FORMAT);
}

/** A sha256 as manifests and inputs carry it. */
export const SHA256_PATTERN = /^[0-9a-f]{64}$/;

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
  } else if (source.kind === 'llama-slot') {
    if (typeof source.url !== 'string' || !/^https?:\/\/[^\s/]+\/?$/.test(source.url)) {
      problems.push(
        `source.url: expected llama-server's base URL (http://host:port), got ${got(source.url)}`,
      );
    }
    if (!(positiveInt(source.slot) || source.slot === 0) || (source.slot as number) > 255) {
      problems.push(`source.slot: expected a slot id from 0 to 255, got ${got(source.slot)}`);
    }
    if (typeof source.directory !== 'string' || !source.directory.startsWith('/')) {
      problems.push(`source.directory: expected the absolute --slot-save-path, got ${got(source.directory)}`);
    }
    if (typeof source.modelSha256 !== 'string' || !SHA256_PATTERN.test(source.modelSha256)) {
      problems.push(`source.modelSha256: expected a lowercase hex sha256, got ${got(source.modelSha256)}`);
    }
    if (!positiveInt(source.ctxSize)) {
      problems.push(`source.ctxSize: expected a positive integer, got ${got(source.ctxSize)}`);
    }
    if (source.timeoutMs !== undefined && !positiveInt(source.timeoutMs)) {
      problems.push(`source.timeoutMs: expected a positive integer, got ${got(source.timeoutMs)}`);
    }
    if (i.format !== undefined && i.format !== 'llama-slot') {
      problems.push(`format: a llama-slot source saves llama-slot files, got ${got(i.format)}`);
    }
  } else {
    problems.push(
      `source.kind: expected "admin-endpoint", "newest-file" or "llama-slot", got ${got(source.kind)}`,
    );
  }
  if (i.format !== undefined && !CHECKPOINT_FORMATS.includes(i.format as CheckpointFormat)) {
    problems.push(`format: expected one of ${CHECKPOINT_FORMATS.join(', ')}, got ${got(i.format)}`);
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
