import { ErrorCode, FleetmedicError, type CheckpointErrorCode } from '../errors.js';

/**
 * Stable codes of checkpoint errors (defined with the other codes in src/errors.ts). They become the
 * `type` of the Temporal failure at the activity boundary, so operators and workflows can tell a
 * corrupt checkpoint from a full disk without parsing text.
 */
export type { CheckpointErrorCode };

/**
 * An error of the checkpoint backup and restore procedure. `permanent` errors become non-retryable
 * Temporal failures; the others retry with the activity's retry policy.
 */
export class CheckpointError extends FleetmedicError {
  declare readonly code: CheckpointErrorCode;

  constructor(
    code: CheckpointErrorCode,
    message: string,
    options: { permanent?: boolean; cause?: unknown } = {},
  ) {
    super(code, message, options);
  }
}

/**
 * Which check found a checkpoint bad: `magic` and `version` (a GGUF or llama.cpp slot file's first
 * bytes), `structure` (zip records, GGUF header, slot layout), `crc32`, `layout` (a torch zip's
 * layout, a GGUF without `general.architecture`), `size`, `sha256`.
 */
export type CorruptionCheck = 'size' | 'sha256' | 'magic' | 'version' | 'structure' | 'crc32' | 'layout';

/**
 * A checkpoint failed verification: wrong size or digest, a broken zip structure, an entry whose
 * CRC-32 does not match, a layout that is not a PyTorch checkpoint, or a GGUF or slot file whose
 * header does not parse. Never retryable: the bytes
 * will not get better by reading them again.
 */
export class CheckpointCorruptError extends CheckpointError {
  constructor(
    readonly check: CorruptionCheck,
    message: string,
    readonly offset?: number,
  ) {
    super(ErrorCode.CheckpointCorrupt, message, { permanent: true });
  }
}

/**
 * errno codes that retrying cannot fix. A full disk is listed on purpose: retrying a 1 GiB copy into a
 * full volume every few seconds makes things worse, and an operator has to free space anyway.
 */
const PERMANENT_ERRNO = new Set([
  'EACCES',
  'EPERM',
  'EROFS',
  'ENOSPC',
  'EDQUOT',
  'EFBIG',
  'ENOTDIR',
  'EISDIR',
  'ENAMETOOLONG',
  'ELOOP',
]);

/** The errno code of a Node.js system error, if it is one. */
export function errnoCode(err: unknown): string | undefined {
  if (err instanceof Error && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

/**
 * Wraps a file-system error of the backup storage in a {@link CheckpointError} whose message names the
 * operation and the path, and whose `permanent` flag follows the errno (EACCES, ENOSPC, EROFS: permanent;
 * EIO, EAGAIN and the like: retryable).
 *
 * @example storageErrorFrom(err, 'write', '/backups/.ckpt.partial') // STORAGE_FULL for ENOSPC
 */
export function storageErrorFrom(err: unknown, operation: string, path: string): CheckpointError {
  if (err instanceof CheckpointError) return err;
  const code = errnoCode(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') {
    return new CheckpointError(
      ErrorCode.StorageFull,
      `backup storage is full: ${operation} ${path}: ${detail}`,
      {
        permanent: true,
        cause: err,
      },
    );
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new CheckpointError(
      ErrorCode.StorageDenied,
      `permission denied by backup storage: ${operation} ${path}: ${detail}`,
      { permanent: true, cause: err },
    );
  }
  return new CheckpointError(ErrorCode.StorageIo, `backup storage ${operation} ${path} failed: ${detail}`, {
    permanent: code !== undefined && PERMANENT_ERRNO.has(code),
    cause: err,
  });
}

/**
 * Wraps an error reading the checkpoint source (the model server's file). Permission problems are
 * permanent; a missing file is not (the model server may be renaming a fresh checkpoint into place).
 */
export function sourceErrorFrom(err: unknown, operation: string, path: string): CheckpointError {
  if (err instanceof CheckpointError) return err;
  const code = errnoCode(err);
  const detail = err instanceof Error ? err.message : String(err);
  return new CheckpointError(
    ErrorCode.CheckpointSource,
    `checkpoint source ${operation} ${path} failed: ${detail}`,
    {
      permanent: code !== undefined && PERMANENT_ERRNO.has(code),
      cause: err,
    },
  );
}
