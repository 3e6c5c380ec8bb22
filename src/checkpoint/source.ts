import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ErrorCode, NonLoopbackAddressError } from '../errors.js';
import { isLoopbackAddress } from '../k8s/loopback.js';
import { CheckpointError, errnoCode, sourceErrorFrom } from './errors.js';
import { DEFAULT_ADMIN_TIMEOUT_MS, DEFAULT_SETTLE_MS } from './types.js';

/** The checkpoint file a backup run will copy. */
export interface CheckpointCandidate {
  readonly kind: 'admin-endpoint' | 'newest-file' | 'llama-slot';
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly url?: string;
  /** sha256 the model server reported for the file, if it did. */
  readonly sha256?: string;
  /** For a `llama-slot` source: the slot, its model and context size, the tokens the server saved. */
  readonly slot?: {
    readonly id: number;
    readonly modelSha256: string;
    readonly ctxSize: number;
    readonly tokens?: number;
  };
}

/**
 * Finds the newest regular file ending in `suffix` in `directory` (dot files and partial names are
 * skipped).
 *
 * @throws CheckpointError `CHECKPOINT_SOURCE`: permanent when the directory is missing, unreadable, or
 *   holds no checkpoint; retryable when the newest file was modified less than `settleMs` ago (it may
 *   still be being written; `torch.save` writes in place).
 */
export async function findNewestCheckpoint(
  directory: string,
  options: { suffix?: string; settleMs?: number; now: Date },
): Promise<CheckpointCandidate> {
  const suffix = options.suffix ?? '.pt';
  let names: string[];
  try {
    names = await fs.readdir(directory);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      throw new CheckpointError(
        ErrorCode.CheckpointSource,
        `checkpoint directory ${directory} does not exist`,
        {
          permanent: true,
          cause: err,
        },
      );
    }
    throw sourceErrorFrom(err, 'list', directory);
  }
  let newest: CheckpointCandidate | undefined;
  for (const name of names) {
    if (name.startsWith('.') || !name.endsWith(suffix)) continue;
    const file = path.join(directory, name);
    try {
      const stat = await fs.stat(file);
      if (!stat.isFile()) continue;
      if (!newest || stat.mtimeMs > newest.mtimeMs) {
        newest = { kind: 'newest-file', path: file, size: stat.size, mtimeMs: stat.mtimeMs };
      }
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw sourceErrorFrom(err, 'stat', file);
    }
  }
  if (!newest) {
    throw new CheckpointError(ErrorCode.CheckpointSource, `no *${suffix} checkpoint in ${directory}`, {
      permanent: true,
    });
  }
  const age = options.now.getTime() - newest.mtimeMs;
  const settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;
  if (age < settleMs) {
    throw new CheckpointError(
      ErrorCode.CheckpointSource,
      `${newest.path} was modified ${Math.max(0, Math.round(age))} ms ago and may still be being written; retrying later`,
      { permanent: false },
    );
  }
  return newest;
}

const adminResponseSchema = z.object({
  path: z.string().refine((p) => path.isAbsolute(p), 'an absolute path'),
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/)
    .transform((s) => s.toLowerCase())
    .optional(),
  size: z.number().int().nonnegative().optional(),
});

/**
 * The real path of a checkpoint file, refused unless it lies under the worker's configured checkpoint
 * root once symlinks are resolved on both sides: a model server's answer, or a workflow's input, may
 * not make the worker copy any other file it can read into the backups.
 *
 * @throws CheckpointError `CHECKPOINT_SOURCE` (permanent) when no root is configured or the file is
 *   outside it; (transient) when the file cannot be resolved.
 */
export async function resolveUnderRoot(file: string, root: string | undefined): Promise<string> {
  if (root === undefined) {
    throw new CheckpointError(
      ErrorCode.CheckpointSource,
      'no checkpoint root is configured: set FLEETMEDIC_CHECKPOINT_ROOT on the control worker to the ' +
        'directory the model servers write checkpoints to',
      { permanent: true },
    );
  }
  let real: string;
  let realRoot: string;
  try {
    [real, realRoot] = await Promise.all([fs.realpath(file), fs.realpath(root)]);
  } catch (err) {
    throw new CheckpointError(
      ErrorCode.CheckpointSource,
      `cannot resolve ${file} under ${root}: ${String(err)}`,
      {
        permanent: false,
        cause: err,
      },
    );
  }
  const relative = path.relative(realRoot, real);
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) {
    throw new CheckpointError(
      ErrorCode.CheckpointSource,
      `refusing ${file}${real !== file ? ` (${real})` : ''}: it is not under the checkpoint root ${root}`,
      { permanent: true },
    );
  }
  return real;
}

/** What the model server's admin endpoint returns after writing a checkpoint. */
export type AdminCheckpointResponse = z.infer<typeof adminResponseSchema>;

/**
 * POSTs JSON to a model server and returns the answer's text. 4xx answers (but 408 and 429) and 501
 * are permanent failures; other 5xx, 408, 429 and network errors retry.
 *
 * @throws NonLoopbackAddressError in simulated mode for a non-loopback URL; CheckpointError `ADMIN_ENDPOINT`.
 */
async function postToModelServer(
  label: string,
  url: string,
  options: Omit<AdminRequestOptions, 'reason'> & { readonly body: unknown },
): Promise<string> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    throw new CheckpointError(ErrorCode.AdminEndpoint, `${label} URL ${JSON.stringify(url)} is not a URL`, {
      cause: err,
    });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new CheckpointError(
      ErrorCode.AdminEndpoint,
      `${label} URL must be http(s), got ${parsed.protocol}`,
    );
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (options.simulated && !isLoopbackAddress(host)) throw new NonLoopbackAddressError(host);
  const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let response: Response;
  try {
    response = await (options.fetch ?? globalThis.fetch)(parsed, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(options.body),
      signal,
      redirect: 'error',
    });
  } catch (err) {
    options.signal?.throwIfAborted();
    const why = timeout.aborted
      ? `timed out after ${options.timeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS} ms`
      : String(err);
    throw new CheckpointError(ErrorCode.AdminEndpoint, `${label} to ${url} failed: ${why}`, {
      permanent: false,
      cause: err,
    });
  }
  const text = await response.text().catch(() => '');
  if (!response.ok) {
    // 501: llama-server without --slot-save-path; retrying cannot add the flag.
    const retryable =
      (response.status >= 500 && response.status !== 501) ||
      response.status === 408 ||
      response.status === 429;
    throw new CheckpointError(
      ErrorCode.AdminEndpoint,
      `${label} to ${url} answered ${response.status}: ${text.slice(0, 300)}`,
      { permanent: !retryable },
    );
  }
  return text;
}

/** Options of {@link requestAdminCheckpoint}. */
export interface AdminRequestOptions {
  readonly fetch?: typeof globalThis.fetch;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** In simulated mode only literal loopback addresses may be dialled (no hostnames). */
  readonly simulated: boolean;
  /** Sent as the body's `reason`, for the model server's logs. */
  readonly reason?: string;
}

/**
 * Asks the model server to write a checkpoint now: `POST <url>` with `{"reason": ...}`; the server
 * answers 200 with `{"path": "/abs/ckpt.pt", "sha256"?: "...", "size"?: n}` once the file is complete.
 * 4xx answers (but 408 and 429) are permanent failures; 5xx, 408, 429 and network errors retry.
 *
 * @throws NonLoopbackAddressError in simulated mode for a non-loopback URL; CheckpointError `ADMIN_ENDPOINT`.
 */
export async function requestAdminCheckpoint(
  url: string,
  options: AdminRequestOptions,
): Promise<AdminCheckpointResponse> {
  const text = await postToModelServer('admin checkpoint call', url, {
    ...options,
    body: { reason: options.reason ?? 'fleetmedic backup' },
  });
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const result = adminResponseSchema.safeParse(body);
  if (!result.success) {
    throw new CheckpointError(
      ErrorCode.AdminEndpoint,
      `admin checkpoint call to ${url} answered ${JSON.stringify(text.slice(0, 300))}, expected {"path": "<absolute path>", "sha256"?: "<hex>", "size"?: <bytes>}`,
      { permanent: true },
    );
  }
  return result.data;
}

const slotSaveSchema = z.object({
  filename: z.string().min(1),
  n_saved: z.number().int().nonnegative().optional(),
  n_written: z.number().int().nonnegative().optional(),
});

/** What llama-server answers to a slot save (the fields fleetmedic uses). */
export type SlotSaveResponse = z.infer<typeof slotSaveSchema>;

/** The name prefix of slot files fleetmedic asks for; only these are ever removed from the slot directory. */
export const SLOT_FILE_PREFIX = 'fleetmedic-slot';

/**
 * A fresh slot file name (llama-server accepts plain file names only), unique per call.
 *
 * @example slotFileName(0, new Date('2025-01-02T03:04:05Z'), 'a1b2c3') // 'fleetmedic-slot0-20250102T030405Z-a1b2c3.bin'
 */
export function slotFileName(slot: number, at: Date, nonce: string): string {
  const stamp = at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  return `${SLOT_FILE_PREFIX}${slot}-${stamp}-${nonce}.bin`;
}

/**
 * Asks llama-server to save a slot's KV cache: `POST <url>/slots/<slot>?action=save` with
 * `{"filename": ...}`; it answers `{"id_slot", "filename", "n_saved", "n_written", ...}` once the file
 * is written into its `--slot-save-path`. A server started without that flag answers 501 (permanent).
 *
 * @throws NonLoopbackAddressError in simulated mode for a non-loopback URL; CheckpointError `ADMIN_ENDPOINT`.
 */
export async function requestSlotSave(
  baseUrl: string,
  slot: number,
  filename: string,
  options: Omit<AdminRequestOptions, 'reason'>,
): Promise<SlotSaveResponse> {
  const url = `${baseUrl.replace(/\/+$/, '')}/slots/${slot}?action=save`;
  const text = await postToModelServer('slot save call', url, { ...options, body: { filename } });
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const result = slotSaveSchema.safeParse(body);
  if (!result.success || result.data.filename !== filename) {
    throw new CheckpointError(
      ErrorCode.AdminEndpoint,
      `slot save call to ${url} answered ${JSON.stringify(text.slice(0, 300))}, expected {"filename": ${JSON.stringify(filename)}, "n_written": <bytes>, ...}`,
      { permanent: true },
    );
  }
  return result.data;
}

/**
 * Removes slot files fleetmedic asked for (named {@link SLOT_FILE_PREFIX}...) last modified before
 * `before`, except `keep`: each backup copied its file already, and llama-server never removes them.
 * Returns the names removed; files that vanish meanwhile are skipped.
 */
export async function removeOldSlotFiles(
  directory: string,
  options: { before: number; keep: string },
): Promise<string[]> {
  const removed: string[] = [];
  let names: string[];
  try {
    names = await fs.readdir(directory);
  } catch (err) {
    throw sourceErrorFrom(err, 'list', directory);
  }
  for (const name of names) {
    if (!name.startsWith(SLOT_FILE_PREFIX) || !name.endsWith('.bin') || name === options.keep) continue;
    const file = path.join(directory, name);
    try {
      const stat = await fs.lstat(file);
      if (!stat.isFile() || stat.mtimeMs >= options.before) continue;
      await fs.rm(file);
      removed.push(name);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw sourceErrorFrom(err, 'remove', file);
    }
  }
  return removed;
}
