import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import { ErrorCode } from '../errors.js';
import { CheckpointError, sourceErrorFrom } from './errors.js';
import { openFileReader, pump, type FileReader, type RandomAccessReader } from './pump.js';
import type { CheckpointStorage } from './storage.js';

/** Options of {@link copyFileToStorage}. */
export interface CopyOptions {
  readonly chunkSize?: number;
  readonly signal?: AbortSignal;
  /** Called after each chunk with bytes copied and the total (the activity heartbeats from here). */
  readonly onProgress?: (done: number, total: number) => void;
}

/** What {@link copyFileToStorage} wrote. */
export interface CopyResult {
  readonly name: string;
  readonly size: number;
  /** sha256 of the bytes written, computed while copying. */
  readonly sha256: string;
  readonly source: { readonly path: string; readonly size: number; readonly mtimeMs: number };
  readonly durationMs: number;
}

/**
 * Copies a local checkpoint file into backup storage under `name`, computing its sha256 on the way.
 * On a filesystem storage the kernel copies while this thread hashes; otherwise each chunk is read
 * once, hashed, and written. The object becomes visible only when complete and durable (see
 * {@link ObjectWriter.commit}); on any failure the partial upload is removed, so a failed or retried
 * copy never leaves something that looks like a backup.
 *
 * @throws CheckpointError `SOURCE_CHANGED` (retryable) when the source's size or mtime changed during
 *   the copy (the model server wrote a new checkpoint over it); storage errors as
 *   {@link storageErrorFrom} maps them (ENOSPC, EACCES permanent).
 */
export async function copyFileToStorage(
  sourcePath: string,
  storage: CheckpointStorage,
  name: string,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const started = performance.now();
  let reader: FileReader;
  try {
    reader = await openFileReader(sourcePath);
  } catch (err) {
    throw sourceErrorFrom(err, 'open', sourcePath);
  }
  try {
    const before = { size: reader.size, mtimeMs: reader.mtimeMs };
    const writer = await storage.openWrite(name);
    try {
      const hash = createHash('sha256');
      const source: RandomAccessReader = {
        size: reader.size,
        close: () => Promise.resolve(),
        read: async (buffer, offset, length, position) => {
          try {
            return await reader.read(buffer, offset, length, position);
          } catch (err) {
            throw sourceErrorFrom(err, 'read', sourcePath);
          }
        },
      };
      if (writer.copyFromLocalFile) {
        // The kernel copies (copy_file_range, no user-space round trip) while this thread hashes the
        // same file: on 2 cores the two overlap instead of adding up. The hash is of the source bytes,
        // not of the written ones; verification reads the backup back and compares, so a copy that
        // differs from what was hashed is rejected, never promoted.
        let copied = 0;
        let hashed = 0;
        const report = (): void => options.onProgress?.(Math.min(copied, hashed), before.size);
        const copying = writer.copyFromLocalFile(sourcePath, (bytes) => {
          copied = bytes;
          report();
        });
        copying.catch(() => undefined);
        try {
          await pump(source, {
            chunkSize: options.chunkSize,
            signal: options.signal,
            onChunk: (chunk) => hash.update(chunk),
            onProgress: (done) => {
              hashed = done;
              report();
            },
          });
        } finally {
          await copying.catch(() => undefined);
        }
        await copying;
        copied = before.size;
        report();
        // The kernel copy opened the path again: make sure it found the same file we hashed.
        let now: { size: number; mtimeMs: number; ino: number };
        try {
          now = await fs.stat(sourcePath);
        } catch (err) {
          throw sourceErrorFrom(err, 'stat', sourcePath);
        }
        if (now.ino !== reader.ino) {
          throw changed(sourcePath, before, { size: now.size, mtimeMs: now.mtimeMs }, 'replaced');
        }
      } else {
        await pump(source, {
          chunkSize: options.chunkSize,
          signal: options.signal,
          onProgress: options.onProgress,
          onChunk: (chunk) => hash.update(chunk),
          sink: (chunk, position) => writer.write(chunk, position),
        });
      }
      const after = await reader.stat();
      if (after.size !== before.size || after.mtimeMs !== before.mtimeMs)
        throw changed(sourcePath, before, after);
      await writer.commit();
      return {
        name,
        size: before.size,
        sha256: hash.digest('hex'),
        source: { path: sourcePath, ...before },
        durationMs: performance.now() - started,
      };
    } catch (err) {
      await writer.abort().catch(() => undefined);
      throw err;
    }
  } finally {
    await reader.close().catch(() => undefined);
  }
}

function changed(
  file: string,
  before: { size: number; mtimeMs: number },
  after: { size: number; mtimeMs: number },
  how = 'changed',
): CheckpointError {
  return new CheckpointError(
    ErrorCode.SourceChanged,
    `${file} was ${how} while it was being backed up (size ${before.size} -> ${after.size}, mtime ${before.mtimeMs} -> ${after.mtimeMs}); a later attempt copies the new file`,
    { permanent: false },
  );
}
