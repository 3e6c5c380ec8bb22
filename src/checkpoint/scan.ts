import { createHash } from 'node:crypto';
import { CheckpointCorruptError } from './errors.js';
import { pump, type RandomAccessReader } from './pump.js';
import {
  checkPickleEnvelope,
  readZipDirectory,
  torchLayoutOf,
  ZipStreamVerifier,
  type TorchLayout,
} from './zip.js';

/** Options of {@link scanCheckpoint}. */
export interface ScanOptions {
  /** Size the checkpoint must have (from its manifest or the copy). */
  readonly expectedSize?: number;
  /** sha256 (hex) the checkpoint must have. */
  readonly expectedSha256?: string;
  /** Check the zip structure and every entry's CRC-32; default true. */
  readonly structure?: boolean;
  /** Also require PyTorch's layout (one top-level folder, `data.pkl` a pickle); default true. */
  readonly torchLayout?: boolean;
  /** Accept entries that record no CRC-32; see `ZipVerifyOptions.allowMissingCrc32`. */
  readonly allowMissingCrc32?: boolean;
  readonly chunkSize?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (done: number, total: number) => void;
  /** Receives every chunk after it was hashed and checked (restore writes the copy here). */
  readonly sink?: (chunk: Buffer, position: number) => Promise<void>;
}

/** What a successful scan found. */
export interface ScanReport {
  readonly size: number;
  readonly sha256: string;
  /** Present when the structure was checked. */
  readonly zip?: { readonly entries: number; readonly dataBytes: number; readonly zip64: boolean };
  readonly layout?: TorchLayout;
  readonly durationMs: number;
}

/**
 * Reads a checkpoint once from start to end, computing its sha256 and, in the same pass, checking its zip
 * structure and every entry's CRC-32 (see `ZipStreamVerifier`). A truncated file fails on its missing end
 * record; a single flipped bit fails the CRC-32 of the entry it lands in, a header comparison, the
 * padding check, or the expected sha256.
 *
 * @throws CheckpointCorruptError naming the check that failed; I/O errors as they come.
 * @example
 * const reader = await openFileReader('/ckpt/model.pt');
 * try { console.log((await scanCheckpoint(reader)).sha256); } finally { await reader.close(); }
 */
export async function scanCheckpoint(
  reader: RandomAccessReader,
  options: ScanOptions = {},
): Promise<ScanReport> {
  const started = performance.now();
  const size = reader.size;
  if (options.expectedSize !== undefined && size !== options.expectedSize) {
    throw new CheckpointCorruptError('size', `size is ${size} bytes, expected ${options.expectedSize}`);
  }
  const structure = options.structure ?? true;
  let verifier: ZipStreamVerifier | undefined;
  let layout: TorchLayout | undefined;
  if (structure) {
    const directory = await readZipDirectory(async (position, length) => {
      const buffer = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const n = await reader.read(buffer, got, length - got, position + got);
        if (n === 0) break;
        got += n;
      }
      return buffer.subarray(0, got);
    }, size);
    if (options.torchLayout ?? true) layout = torchLayoutOf(directory.entries);
    verifier = new ZipStreamVerifier(directory, {
      allowMissingCrc32: options.allowMissingCrc32,
      probeEntry: layout?.pickle,
      torchExtrasOnly: layout !== undefined,
    });
  }
  const hash = createHash('sha256');
  await pump(reader, {
    chunkSize: options.chunkSize,
    signal: options.signal,
    onProgress: options.onProgress,
    sink: options.sink,
    onChunk: (chunk) => {
      hash.update(chunk);
      verifier?.update(chunk);
    },
  });
  const zip = verifier?.finish();
  if (verifier && layout) checkPickleEnvelope(layout.pickle, verifier.probe);
  const sha256 = hash.digest('hex');
  if (options.expectedSha256 !== undefined && sha256 !== options.expectedSha256.toLowerCase()) {
    throw new CheckpointCorruptError('sha256', `sha256 is ${sha256}, expected ${options.expectedSha256}`);
  }
  return { size, sha256, zip, layout, durationMs: performance.now() - started };
}
