import fs from 'node:fs/promises';
import { ErrorCode } from '../errors.js';
import { CheckpointError } from './errors.js';

/** A file opened for positioned reads: a local checkpoint, or an object in backup storage. */
export interface RandomAccessReader {
  /** Size when opened; a pump reads exactly this many bytes. */
  readonly size: number;
  /** Reads up to `length` bytes at `position` into `buffer` at `offset`; returns how many were read. */
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

/** Default bytes per read: large enough that syscall and promise overhead vanish next to hashing. */
export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;

/** Options of {@link pump}. */
export interface PumpOptions {
  /** Bytes per read; default {@link DEFAULT_CHUNK_SIZE}. */
  readonly chunkSize?: number;
  /** Buffers in flight (reads ahead + sinks behind); default 4. */
  readonly buffers?: number;
  readonly signal?: AbortSignal;
  /** Called with each chunk in file order, on the main thread (hashing, structure checks). */
  readonly onChunk?: (chunk: Buffer, position: number) => void;
  /**
   * Called with each chunk after `onChunk`; the buffer is reused only once the promise settles. Sinks of
   * consecutive chunks may run concurrently, so a sink must write at the given position.
   */
  readonly sink?: (chunk: Buffer, position: number) => Promise<void>;
  /** Called after each chunk with the bytes done so far and the total. */
  readonly onProgress?: (done: number, total: number) => void;
}

/**
 * Streams all `reader.size` bytes of a reader through `onChunk` and `sink`, keeping the disk busy while
 * the CPU hashes: reads of the next chunks and writes of the previous ones run on libuv's thread pool
 * while the current chunk is hashed. On a 2-core machine this overlaps the hash with the copy instead of
 * adding them up.
 *
 * @returns the number of bytes streamed.
 * @throws CheckpointError `SOURCE_CHANGED` (retryable) when the reader ends before its size; the first
 *   error of a read, a callback or a sink otherwise, after every operation in flight has settled (so the
 *   caller may close handles at once).
 */
export async function pump(reader: RandomAccessReader, options: PumpOptions = {}): Promise<number> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const total = reader.size;
  const chunks = Math.ceil(total / chunkSize);
  const slots = Math.max(2, Math.min(options.buffers ?? 4, chunks || 1));
  const buffers = Array.from({ length: slots }, () =>
    Buffer.allocUnsafeSlow(Math.min(chunkSize, total || 1)),
  );
  const sinks: Array<Promise<void>> = Array.from({ length: slots }, () => Promise.resolve());
  const reads: Array<Promise<number>> = [];
  const inFlight: Array<Promise<unknown>> = [];
  let failed = false;

  const track = <T>(p: Promise<T>): Promise<T> => {
    // Errors are rethrown where the promise is awaited; this only stops an early exit from leaving an
    // unobserved rejection behind.
    inFlight.push(p.catch(() => undefined));
    return p;
  };

  const readChunk = async (index: number): Promise<number> => {
    const slot = index % slots;
    await sinks[slot];
    if (failed) return 0;
    const buffer = buffers[slot] as Buffer;
    const position = index * chunkSize;
    const want = Math.min(chunkSize, total - position);
    let got = 0;
    while (got < want) {
      const n = await reader.read(buffer, got, want - got, position + got);
      if (n === 0) {
        throw new CheckpointError(
          ErrorCode.SourceChanged,
          `file ended at ${position + got} bytes while reading, but it had ${total} when opened`,
          { permanent: false },
        );
      }
      got += n;
    }
    return got;
  };

  try {
    for (let i = 0; i < Math.min(slots - 1, chunks); i++) reads[i] = track(readChunk(i));
    let done = 0;
    for (let i = 0; i < chunks; i++) {
      options.signal?.throwIfAborted();
      const slot = i % slots;
      const n = await (reads[i] as Promise<number>);
      const ahead = i + slots - 1;
      if (ahead < chunks) reads[ahead] = track(readChunk(ahead));
      const chunk = (buffers[slot] as Buffer).subarray(0, n);
      const position = i * chunkSize;
      options.onChunk?.(chunk, position);
      if (options.sink) sinks[slot] = track(options.sink(chunk, position));
      reads[i] = Promise.resolve(0);
      done += n;
      options.onProgress?.(done, total);
    }
    await Promise.all(sinks);
    return done;
  } catch (err) {
    failed = true;
    await Promise.all(inFlight);
    throw err;
  }
}

/** A local file opened for reading, with its size and mtime when opened. */
export interface FileReader extends RandomAccessReader {
  readonly mtimeMs: number;
  /** Inode number, to tell a file rewritten in place from one renamed over the path. */
  readonly ino: number;
  /** Size and mtime now, from the open descriptor (to detect a writer changing the file under us). */
  stat(): Promise<{ size: number; mtimeMs: number }>;
}

/** Opens a local file for {@link pump}. Errors are Node's own (ENOENT, EACCES...). */
export async function openFileReader(path: string): Promise<FileReader> {
  const handle = await fs.open(path, 'r');
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EISDIR' });
    return {
      size: stat.size,
      mtimeMs: stat.mtimeMs,
      ino: stat.ino,
      read: async (buffer, offset, length, position) =>
        (await handle.read(buffer, offset, length, position)).bytesRead,
      stat: async () => {
        const now = await handle.stat();
        return { size: now.size, mtimeMs: now.mtimeMs };
      },
      close: () => handle.close(),
    };
  } catch (err) {
    await handle.close();
    throw err;
  }
}
