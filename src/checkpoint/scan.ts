import { createHash } from 'node:crypto';
import { CheckpointCorruptError } from './errors.js';
import { ggufVerifier, type GgufSummary } from './gguf.js';
import { llamaSlotVerifier, type LlamaSlotSummary } from './llama-slot.js';
import { pump, type RandomAccessReader } from './pump.js';
import { DEFAULT_CHECKPOINT_FORMAT, type CheckpointFormat } from './types.js';
import {
  checkPickleEnvelope,
  readZipDirectory,
  torchLayoutOf,
  ZipStreamVerifier,
  type TorchLayout,
} from './zip.js';

/** Options of {@link scanCheckpoint}. */
export interface ScanOptions {
  /** What the file is: a PyTorch zip (default), a GGUF model, or a llama.cpp slot file. */
  readonly format?: CheckpointFormat;
  /** Size the checkpoint must have (from its manifest or the copy). */
  readonly expectedSize?: number;
  /** sha256 (hex) the checkpoint must have. */
  readonly expectedSha256?: string;
  /** Check the structure (zip and CRC-32s, GGUF header, slot layout); default true. */
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
  readonly format: CheckpointFormat;
  readonly size: number;
  readonly sha256: string;
  /** Present when the structure of a torch checkpoint was checked. */
  readonly zip?: { readonly entries: number; readonly dataBytes: number; readonly zip64: boolean };
  readonly layout?: TorchLayout;
  /** Present when the header of a GGUF file was checked. */
  readonly gguf?: GgufSummary;
  /** Present when the layout of a llama.cpp slot file was checked. */
  readonly slot?: LlamaSlotSummary;
  readonly durationMs: number;
}

/**
 * Reads a checkpoint once from start to end, computing its sha256 and, in the same pass, checking its
 * structure: for `torch`, the zip structure and every entry's CRC-32 (see `ZipStreamVerifier`); for
 * `gguf`, the header, metadata and tensor infos (see `parseGguf`); for `llama-slot`, magic, version,
 * tokens and the KV cache layout to the last byte (see `parseLlamaSlot`). A truncated file fails on its
 * missing end record or a length that reaches past the end; a single flipped bit fails the CRC-32 of
 * the entry it lands in, a header check, or the expected sha256.
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
  const format = options.format ?? DEFAULT_CHECKPOINT_FORMAT;
  const structure = options.structure ?? true;
  let verifier: ZipStreamVerifier | undefined;
  let layout: TorchLayout | undefined;
  const header =
    !structure || format === 'torch'
      ? undefined
      : format === 'gguf'
        ? { gguf: ggufVerifier(size) }
        : { slot: llamaSlotVerifier(size) };
  const parser = header?.gguf ?? header?.slot;
  if (structure && format === 'torch') {
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
      parser?.update(chunk);
    },
  });
  const zip = verifier?.finish();
  if (verifier && layout) checkPickleEnvelope(layout.pickle, verifier.probe);
  const gguf = header?.gguf?.finish();
  const slot = header?.slot?.finish();
  const sha256 = hash.digest('hex');
  if (options.expectedSha256 !== undefined && sha256 !== options.expectedSha256.toLowerCase()) {
    throw new CheckpointCorruptError('sha256', `sha256 is ${sha256}, expected ${options.expectedSha256}`);
  }
  return {
    format,
    size,
    sha256,
    zip,
    layout,
    ...(gguf && { gguf }),
    ...(slot && { slot }),
    durationMs: performance.now() - started,
  };
}
