import { crc32 } from 'node:zlib';
import { CheckpointCorruptError } from './errors.js';

// A PyTorch checkpoint (`torch.save` since 1.6, `torch.jit.save`) is a zip archive of *stored*
// (uncompressed) entries: `<prefix>/data.pkl`, `<prefix>/data/0`, ..., `<prefix>/version`, with each
// entry's data aligned to 64 bytes by an extra field of 'Z' padding. This module checks that structure
// in one sequential pass, so the same read that computes the sha256 also checks every entry's CRC-32:
// nothing here buffers an entry, which keeps a 100 GiB checkpoint at a few MiB of memory.
//
// Why not a zip library: the common readers (yauzl, unzipper) do not check CRC-32 themselves and read
// entries through their own streams; verifying in the hashing pass would mean reading the file twice.

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_DESCRIPTOR = 0x08074b50;
const EOCD_SIZE = 22;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_SIZE = 56;
const LOCAL_HEADER_SIZE = 30;
const CENTRAL_HEADER_SIZE = 46;
const EXTRA_ZIP64 = 0x0001;
/** torch's alignment padding: extra field id "FB", filled with 'Z'. */
const EXTRA_TORCH_PADDING = 0x4246;
const TORCH_PAD_BYTE = 0x5a;
const FLAG_ENCRYPTED = 0x0001;
const FLAG_DESCRIPTOR = 0x0008;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

/** How many bytes at the end of a file can hold the end-of-central-directory records. */
export const ZIP_TAIL_BYTES = EOCD_SIZE + U16_MAX + ZIP64_LOCATOR_SIZE + ZIP64_EOCD_SIZE;
/** A central directory larger than this is refused (a million entries is ~100 MiB; torch writes far fewer). */
export const MAX_CENTRAL_DIRECTORY_BYTES = 256 * 1024 * 1024;

/** One entry of the central directory. */
export interface ZipEntry {
  readonly name: string;
  readonly rawName: Buffer;
  readonly versionNeeded: number;
  readonly flags: number;
  readonly method: number;
  readonly modTime: number;
  readonly modDate: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
}

/** The parsed central directory of an archive, plus the raw bytes it came from. */
export interface ZipDirectory {
  readonly fileSize: number;
  readonly entries: readonly ZipEntry[];
  /** Offset of the first central directory header (the end of the entries' data). */
  readonly centralDirectoryOffset: number;
  /** The bytes from {@link centralDirectoryOffset} to the end of the file, as parsed. */
  readonly trailer: Buffer;
  readonly zip64: boolean;
}

/** Reads `length` bytes at `position`; fewer only at the end of the file. */
export type ReadAt = (position: number, length: number) => Promise<Buffer>;

function corrupt(message: string, offset?: number): CheckpointCorruptError {
  return new CheckpointCorruptError('structure', message, offset);
}

function u64(buf: Buffer, at: number, what: string): number {
  const value = buf.readBigUInt64LE(at);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`${what} ${value} is out of range`);
  return Number(value);
}

/**
 * Reads and checks the central directory: finds the end-of-central-directory record (zip64 too), checks
 * that the directory, the zip64 records and the end record are contiguous and end exactly at the end of
 * the file, and parses every entry header.
 *
 * @throws CheckpointCorruptError when the file is truncated, is not a zip archive, or its directory is
 *   inconsistent.
 */
export async function readZipDirectory(readAt: ReadAt, fileSize: number): Promise<ZipDirectory> {
  if (fileSize < EOCD_SIZE) {
    throw corrupt(`${fileSize} bytes is too short for a zip archive (truncated or not a checkpoint)`);
  }
  const tailStart = Math.max(0, fileSize - ZIP_TAIL_BYTES);
  const tail = await readAt(tailStart, fileSize - tailStart);
  if (tail.length !== fileSize - tailStart) throw corrupt('file is shorter than its size while reading');

  // Scan back for an end record whose comment runs exactly to the end of the file: a random match of
  // the signature inside data would not also satisfy that.
  let eocd = -1;
  for (let at = tail.length - EOCD_SIZE; at >= 0; at--) {
    if (tail.readUInt32LE(at) === SIG_EOCD && at + EOCD_SIZE + tail.readUInt16LE(at + 20) === tail.length) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) {
    throw corrupt('end of central directory record not found: the file is truncated or not a zip archive');
  }
  const eocdOffset = tailStart + eocd;
  const diskNumber = tail.readUInt16LE(eocd + 4);
  const cdDisk = tail.readUInt16LE(eocd + 6);
  let entriesOnDisk = tail.readUInt16LE(eocd + 8);
  let entryCount = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  let directoryEnd = eocdOffset;
  let zip64 = false;

  const locator = eocd - ZIP64_LOCATOR_SIZE;
  if (locator >= 0 && tail.readUInt32LE(locator) === SIG_ZIP64_LOCATOR) {
    zip64 = true;
    const z64Offset = u64(tail, locator + 8, 'zip64 end record offset');
    if (tail.readUInt32LE(locator + 4) !== 0 || tail.readUInt32LE(locator + 16) !== 1) {
      throw corrupt('multi-disk zip archives are not supported', tailStart + locator);
    }
    if (z64Offset + ZIP64_EOCD_SIZE > tailStart + locator) {
      throw corrupt(`zip64 end record offset ${z64Offset} points past its locator`, tailStart + locator);
    }
    const z64 = await readAt(z64Offset, tailStart + locator - z64Offset);
    if (z64.readUInt32LE(0) !== SIG_ZIP64_EOCD) {
      throw corrupt(`no zip64 end record at offset ${z64Offset}`, z64Offset);
    }
    const recordSize = u64(z64, 4, 'zip64 end record size') + 12;
    if (z64Offset + recordSize !== tailStart + locator) {
      throw corrupt('zip64 end record does not end at its locator', z64Offset);
    }
    if (z64.readUInt32LE(16) !== 0 || z64.readUInt32LE(20) !== 0) {
      throw corrupt('multi-disk zip archives are not supported', z64Offset);
    }
    const z64EntriesOnDisk = u64(z64, 24, 'entry count');
    const z64EntryCount = u64(z64, 32, 'entry count');
    const z64CdSize = u64(z64, 40, 'central directory size');
    const z64CdOffset = u64(z64, 48, 'central directory offset');
    // The classic end record must either escape a field or agree with the zip64 record.
    const agrees = (classic: number, escape: number, value: number): boolean =>
      classic === escape || classic === value;
    if (
      !agrees(entriesOnDisk, U16_MAX, z64EntriesOnDisk) ||
      !agrees(entryCount, U16_MAX, z64EntryCount) ||
      !agrees(cdSize, U32_MAX, z64CdSize) ||
      !agrees(cdOffset, U32_MAX, z64CdOffset) ||
      (diskNumber !== 0 && diskNumber !== U16_MAX) ||
      (cdDisk !== 0 && cdDisk !== U16_MAX)
    ) {
      throw corrupt('end of central directory record disagrees with the zip64 end record', eocdOffset);
    }
    entriesOnDisk = z64EntriesOnDisk;
    entryCount = z64EntryCount;
    cdSize = z64CdSize;
    cdOffset = z64CdOffset;
    directoryEnd = z64Offset;
  } else if (
    entryCount === U16_MAX ||
    entriesOnDisk === U16_MAX ||
    cdSize === U32_MAX ||
    cdOffset === U32_MAX
  ) {
    throw corrupt('end record asks for zip64 but the zip64 locator is missing', eocdOffset);
  } else if (diskNumber !== 0 || cdDisk !== 0) {
    throw corrupt('multi-disk zip archives are not supported', eocdOffset);
  }
  if (entriesOnDisk !== entryCount) throw corrupt('multi-disk zip archives are not supported', eocdOffset);
  if (cdOffset + cdSize !== directoryEnd) {
    throw corrupt(
      `central directory (offset ${cdOffset}, ${cdSize} bytes) does not end where the end records start (${directoryEnd})`,
      eocdOffset,
    );
  }
  if (fileSize - cdOffset > MAX_CENTRAL_DIRECTORY_BYTES) {
    throw corrupt(`central directory of ${fileSize - cdOffset} bytes is larger than allowed`, cdOffset);
  }
  const trailer =
    cdOffset >= tailStart ? tail.subarray(cdOffset - tailStart) : await readAt(cdOffset, fileSize - cdOffset);
  if (trailer.length !== fileSize - cdOffset) throw corrupt('file is shorter than its size while reading');

  const entries: ZipEntry[] = [];
  const names = new Set<string>();
  let at = 0;
  for (let i = 0; i < entryCount; i++) {
    if (at + CENTRAL_HEADER_SIZE > cdSize || trailer.readUInt32LE(at) !== SIG_CENTRAL) {
      throw corrupt(`central directory entry ${i} of ${entryCount} is missing or damaged`, cdOffset + at);
    }
    const nameLength = trailer.readUInt16LE(at + 28);
    const extraLength = trailer.readUInt16LE(at + 30);
    const commentLength = trailer.readUInt16LE(at + 32);
    const end = at + CENTRAL_HEADER_SIZE + nameLength + extraLength + commentLength;
    if (end > cdSize) throw corrupt(`central directory entry ${i} runs past the directory`, cdOffset + at);
    const rawName = Buffer.from(
      trailer.subarray(at + CENTRAL_HEADER_SIZE, at + CENTRAL_HEADER_SIZE + nameLength),
    );
    const name = rawName.toString('utf8');
    let compressedSize = trailer.readUInt32LE(at + 20);
    let size = trailer.readUInt32LE(at + 24);
    let localHeaderOffset = trailer.readUInt32LE(at + 42);
    const diskStart = trailer.readUInt16LE(at + 34);
    const extra = trailer.subarray(
      at + CENTRAL_HEADER_SIZE + nameLength,
      at + CENTRAL_HEADER_SIZE + nameLength + extraLength,
    );
    const fields = parseExtra(extra, cdOffset + at);
    const z64 = fields.get(EXTRA_ZIP64);
    if (
      size === U32_MAX ||
      compressedSize === U32_MAX ||
      localHeaderOffset === U32_MAX ||
      diskStart === U16_MAX
    ) {
      if (!z64) throw corrupt(`entry ${name}: sizes ask for zip64 but the zip64 extra field is missing`);
      let p = 0;
      const take = (what: string): number => {
        if (p + 8 > z64.length) throw corrupt(`entry ${name}: zip64 extra field too short for ${what}`);
        const v = u64(z64, p, what);
        p += 8;
        return v;
      };
      if (size === U32_MAX) size = take('size');
      if (compressedSize === U32_MAX) compressedSize = take('compressed size');
      if (localHeaderOffset === U32_MAX) localHeaderOffset = take('local header offset');
    }
    if (diskStart !== 0 && diskStart !== U16_MAX) throw corrupt('multi-disk zip archives are not supported');
    const entry: ZipEntry = {
      name,
      rawName,
      versionNeeded: trailer.readUInt16LE(at + 6),
      flags: trailer.readUInt16LE(at + 8),
      method: trailer.readUInt16LE(at + 10),
      modTime: trailer.readUInt16LE(at + 12),
      modDate: trailer.readUInt16LE(at + 14),
      crc32: trailer.readUInt32LE(at + 16),
      compressedSize,
      size,
      localHeaderOffset,
    };
    if (entry.flags & FLAG_ENCRYPTED) throw corrupt(`entry ${name} is encrypted`);
    if (entry.method !== 0) {
      throw corrupt(
        `entry ${name} uses compression method ${entry.method}; PyTorch checkpoints store entries uncompressed (method 0)`,
      );
    }
    if (entry.compressedSize !== entry.size) {
      throw corrupt(
        `entry ${name} is stored but its sizes differ (${entry.compressedSize} vs ${entry.size})`,
      );
    }
    if (names.has(name)) throw corrupt(`entry ${name} appears twice in the central directory`);
    names.add(name);
    entries.push(entry);
    at = end;
  }
  if (at !== cdSize)
    throw corrupt(`central directory has ${cdSize - at} bytes after its last entry`, cdOffset + at);
  return { fileSize, entries, centralDirectoryOffset: cdOffset, trailer, zip64 };
}

/** Parses an extra field into its blocks; the blocks must fill it exactly. */
function parseExtra(extra: Buffer, offset: number): Map<number, Buffer> {
  const fields = new Map<number, Buffer>();
  let p = 0;
  while (p < extra.length) {
    if (p + 4 > extra.length) throw corrupt('extra field ends inside a block header', offset);
    const id = extra.readUInt16LE(p);
    const length = extra.readUInt16LE(p + 2);
    if (p + 4 + length > extra.length) throw corrupt('extra field block runs past the field', offset);
    fields.set(id, extra.subarray(p + 4, p + 4 + length));
    p += 4 + length;
  }
  return fields;
}

/** What a successful structural check found. */
export interface ZipReport {
  readonly entries: number;
  /** Bytes of entry data (the tensors and pickles). */
  readonly dataBytes: number;
  readonly zip64: boolean;
}

/** Options of {@link ZipStreamVerifier}. */
export interface ZipVerifyOptions {
  /**
   * torch can be told not to compute CRC-32s (`torch.serialization.config.save.compute_crc32 = False`);
   * its entries then record 0. Such a file cannot be checked for bit flips inside entries, so by default
   * it is refused; allow it to accept it on size and structure alone.
   */
  readonly allowMissingCrc32?: boolean;
  /** Name of an entry whose first and last bytes to keep (see {@link ZipStreamVerifier.probe}). */
  readonly probeEntry?: string;
  /**
   * Refuse local extra fields other than zip64 and torch's padding. torch writes no others, and without
   * this rule a flipped bit in the padding's id would turn the padding into an unchecked unknown field.
   */
  readonly torchExtrasOnly?: boolean;
}

type Phase = 'local' | 'data' | 'descriptor' | 'trailer';

/**
 * Checks a zip archive's bytes as they stream past, in file order: every local header agrees with its
 * central directory entry, entries follow each other with no gaps or overlaps, each entry's data has the
 * CRC-32 the directory records, torch's padding is intact, and the central directory and end records
 * read in this pass are byte for byte the ones parsed by {@link readZipDirectory} (so a file that changed
 * between the two reads is caught). With that, a flipped bit anywhere is caught except in the few fields
 * no reader uses: "version made by" and the file attributes of central directory headers, and the
 * version fields of the zip64 end record. The manifest's sha256 covers those for backups.
 *
 * @example
 * const verifier = new ZipStreamVerifier(await readZipDirectory(readAt, size));
 * for await (const chunk of stream) verifier.update(chunk);
 * const report = verifier.finish();
 */
export class ZipStreamVerifier {
  private readonly ordered: readonly ZipEntry[];
  private position = 0;
  private index = 0;
  private phase: Phase = 'local';
  private readonly scratch = Buffer.allocUnsafe(LOCAL_HEADER_SIZE + 2 * U16_MAX);
  private filled = 0;
  private need = LOCAL_HEADER_SIZE;
  private crc = 0;
  private remaining = 0;
  private dataBytes = 0;
  private entryZip64 = false;
  private readonly probeHead: number[] = [];
  private probeTail: number | undefined;
  private probing = false;
  private inTrailer = false;

  constructor(
    private readonly directory: ZipDirectory,
    private readonly options: ZipVerifyOptions = {},
  ) {
    this.ordered = [...directory.entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
    if (this.ordered.length === 0) this.phase = 'trailer';
  }

  /** First (up to 2) and last byte of the probed entry, once it has streamed past. */
  get probe(): { head: readonly number[]; last: number | undefined } {
    return { head: this.probeHead, last: this.probeTail };
  }

  /** Feeds the next bytes of the file. @throws CheckpointCorruptError at the first inconsistency. */
  update(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      switch (this.phase) {
        case 'local':
        case 'descriptor':
          at += this.fill(chunk, at);
          break;
        case 'data':
          at += this.data(chunk, at);
          break;
        case 'trailer':
          at += this.trailer(chunk, at);
          break;
      }
    }
  }

  /**
   * Declares the end of the file. @throws CheckpointCorruptError when the file ended early.
   * @returns what was checked.
   */
  finish(): ZipReport {
    if (this.phase !== 'trailer' || this.position !== this.directory.fileSize) {
      if (this.phase === 'trailer' && this.position > this.directory.centralDirectoryOffset) {
        throw corrupt(`file ended at ${this.position} bytes, inside its central directory`, this.position);
      }
      throw corrupt(
        `file ended at ${this.position} bytes, before its ${this.phase} was complete`,
        this.position,
      );
    }
    return { entries: this.ordered.length, dataBytes: this.dataBytes, zip64: this.directory.zip64 };
  }

  private get entry(): ZipEntry {
    const entry = this.ordered[this.index];
    if (!entry) throw new Error('ZipStreamVerifier: no current entry');
    return entry;
  }

  /** Accumulates a header (local or data descriptor) into `scratch`, then checks it. */
  private fill(chunk: Uint8Array, at: number): number {
    if (this.filled === 0 && this.phase === 'local' && this.position !== this.entry.localHeaderOffset) {
      throw corrupt(
        `entry ${this.entry.name} should start at offset ${this.entry.localHeaderOffset} but the previous one ends at ${this.position}`,
        this.position,
      );
    }
    const take = Math.min(this.need - this.filled, chunk.length - at);
    this.scratch.set(chunk.subarray(at, at + take), this.filled);
    this.filled += take;
    this.position += take;
    if (this.filled === this.need) {
      if (this.phase === 'local') this.localHeader();
      else this.descriptor();
    }
    return take;
  }

  private localHeader(): void {
    const h = this.scratch;
    const entry = this.entry;
    const where = entry.localHeaderOffset;
    if (this.need === LOCAL_HEADER_SIZE) {
      if (h.readUInt32LE(0) !== SIG_LOCAL) throw corrupt(`no local header for entry ${entry.name}`, where);
      this.need = LOCAL_HEADER_SIZE + h.readUInt16LE(26) + h.readUInt16LE(28);
      if (this.need > LOCAL_HEADER_SIZE) return;
    }
    const nameLength = h.readUInt16LE(26);
    const name = h.subarray(LOCAL_HEADER_SIZE, LOCAL_HEADER_SIZE + nameLength);
    if (!name.equals(entry.rawName)) {
      throw corrupt(
        `local header names ${JSON.stringify(name.toString('utf8'))}, directory says ${entry.name}`,
        where,
      );
    }
    const mismatch = (field: string, local: number, central: number): never => {
      throw corrupt(
        `entry ${entry.name}: local header ${field} ${local} differs from the directory's ${central}`,
        where,
      );
    };
    const check = (field: string, local: number, central: number): void => {
      if (local !== central) mismatch(field, local, central);
    };
    check('flags', h.readUInt16LE(6), entry.flags);
    check('method', h.readUInt16LE(8), entry.method);
    check('time', h.readUInt16LE(10), entry.modTime);
    check('date', h.readUInt16LE(12), entry.modDate);
    const fields = parseExtra(h.subarray(LOCAL_HEADER_SIZE + nameLength, this.need), where);
    if (this.options.torchExtrasOnly) {
      const foreign = [...fields.keys()].find((id) => id !== EXTRA_ZIP64 && id !== EXTRA_TORCH_PADDING);
      if (foreign !== undefined) {
        throw corrupt(
          `entry ${entry.name}: local header has extra field 0x${foreign.toString(16)}, which torch never writes`,
          where,
        );
      }
    }
    let compressed = h.readUInt32LE(18);
    let size = h.readUInt32LE(22);
    const z64 = fields.get(EXTRA_ZIP64);
    this.entryZip64 = z64 !== undefined;
    // Writers raise the directory's "version needed" to 4.5 for a zip64 offset that the local header
    // (without a zip64 field) does not need; any other difference is an inconsistency.
    const versionNeeded = h.readUInt16LE(4);
    if (versionNeeded !== entry.versionNeeded && (z64 || entry.versionNeeded !== 45 || versionNeeded > 45)) {
      mismatch('version needed', versionNeeded, entry.versionNeeded);
    }
    if (z64 && this.options.torchExtrasOnly && z64.length !== 16) {
      throw corrupt(`entry ${entry.name}: local zip64 field has ${z64.length} bytes, expected 16`, where);
    }
    if (z64 && (size === U32_MAX || compressed === U32_MAX)) {
      // A local zip64 extra holds both sizes, in this order; a header field that is not escaped must
      // still match on its own.
      if (z64.length < 16) throw corrupt(`entry ${entry.name}: local zip64 extra field too short`, where);
      if (size === U32_MAX) size = u64(z64, 0, 'size');
      if (compressed === U32_MAX) compressed = u64(z64, 8, 'compressed size');
    }
    const descriptor = (entry.flags & FLAG_DESCRIPTOR) !== 0;
    if (!descriptor || h.readUInt32LE(14) !== 0 || compressed !== 0 || size !== 0) {
      check('crc32', h.readUInt32LE(14), entry.crc32);
      check('compressed size', compressed, entry.compressedSize);
      check('size', size, entry.size);
    }
    const padding = fields.get(EXTRA_TORCH_PADDING);
    if (padding && padding.some((b) => b !== TORCH_PAD_BYTE)) {
      throw corrupt(`entry ${entry.name}: alignment padding is damaged`, where);
    }
    this.phase = 'data';
    this.remaining = entry.compressedSize;
    this.crc = 0;
    this.filled = 0;
    this.probing = entry.name === this.options.probeEntry;
    if (this.remaining === 0) this.endOfData();
  }

  private data(chunk: Uint8Array, at: number): number {
    const take = Math.min(this.remaining, chunk.length - at);
    const slice = chunk.subarray(at, at + take);
    this.crc = crc32(slice, this.crc);
    if (this.probing) {
      for (let i = 0; i < slice.length && this.probeHead.length < 2; i++) this.probeHead.push(slice[i] ?? 0);
      this.probeTail = slice[slice.length - 1];
    }
    this.remaining -= take;
    this.position += take;
    this.dataBytes += take;
    if (this.remaining === 0) this.endOfData();
    return take;
  }

  private endOfData(): void {
    const entry = this.entry;
    if (this.crc !== entry.crc32) {
      if (entry.crc32 === 0 && this.options.allowMissingCrc32) {
        // Nothing recorded to compare with: accepted on purpose, see ZipVerifyOptions.
      } else if (entry.crc32 === 0) {
        throw new CheckpointCorruptError(
          'crc32',
          `entry ${entry.name} records no CRC-32 (saved with torch.serialization.config.save.compute_crc32 = False?); its data cannot be checked`,
          this.position,
        );
      } else {
        throw new CheckpointCorruptError(
          'crc32',
          `entry ${entry.name}: CRC-32 of its data is ${hex(this.crc)}, the archive records ${hex(entry.crc32)}`,
          this.position,
        );
      }
    }
    if (entry.flags & FLAG_DESCRIPTOR) {
      this.phase = 'descriptor';
      this.need = 4;
      this.filled = 0;
    } else {
      this.nextEntry();
    }
  }

  private descriptor(): void {
    const entry = this.entry;
    const d = this.scratch;
    const sizes = this.entryZip64 ? 16 : 8;
    const hasSignature = d.readUInt32LE(0) === SIG_DESCRIPTOR;
    const total = (hasSignature ? 4 : 0) + 4 + sizes;
    if (this.need < total) {
      this.need = total;
      return;
    }
    const base = hasSignature ? 4 : 0;
    const crc = d.readUInt32LE(base);
    const compressed = this.entryZip64 ? u64(d, base + 4, 'size') : d.readUInt32LE(base + 4);
    const size = this.entryZip64 ? u64(d, base + 12, 'size') : d.readUInt32LE(base + 8);
    if (crc !== entry.crc32 || compressed !== entry.compressedSize || size !== entry.size) {
      throw corrupt(`entry ${entry.name}: data descriptor differs from the directory`, this.position - total);
    }
    this.nextEntry();
  }

  private nextEntry(): void {
    this.index++;
    this.filled = 0;
    this.need = LOCAL_HEADER_SIZE;
    this.probing = false;
    this.phase = this.index < this.ordered.length ? 'local' : 'trailer';
  }

  private trailer(chunk: Uint8Array, at: number): number {
    const start = this.directory.centralDirectoryOffset;
    if (!this.inTrailer) {
      if (this.position < start) {
        throw corrupt(
          `${start - this.position} unexplained bytes after the last entry, at offset ${this.position}`,
          this.position,
        );
      }
      if (this.position > start) {
        throw corrupt(`entry data runs ${this.position - start} bytes into the central directory`, start);
      }
      this.inTrailer = true;
    }
    const take = chunk.length - at;
    const offset = this.position - start;
    if (offset + take > this.directory.trailer.length) {
      throw corrupt(
        `file is longer than the ${this.directory.fileSize} bytes it had when its directory was read`,
      );
    }
    if (!this.directory.trailer.subarray(offset, offset + take).equals(chunk.subarray(at, at + take))) {
      throw corrupt('central directory changed between the two reads of the file', this.position);
    }
    this.position += take;
    return take;
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** Where a checkpoint's entries live: the single top-level folder torch writes them under. */
export interface TorchLayout {
  readonly prefix: string;
  readonly pickle: string;
}

/**
 * Checks that the archive has PyTorch's layout: every entry under one top-level folder (`archive/` for
 * `torch.save` to a buffer, the file's stem for a path) and a `<prefix>/data.pkl` pickle.
 *
 * @throws CheckpointCorruptError (check `layout`) otherwise.
 */
export function torchLayoutOf(entries: readonly ZipEntry[]): TorchLayout {
  const first = entries[0];
  if (!first) throw new CheckpointCorruptError('layout', 'archive has no entries: not a PyTorch checkpoint');
  const prefix = first.name.split('/')[0] ?? '';
  const stray = entries.find((e) => !e.name.startsWith(`${prefix}/`));
  if (!prefix || stray) {
    throw new CheckpointCorruptError(
      'layout',
      `entries are not all under one top-level folder (${JSON.stringify(stray?.name ?? first.name)}): not a PyTorch checkpoint`,
    );
  }
  const pickle = `${prefix}/data.pkl`;
  if (!entries.some((e) => e.name === pickle)) {
    throw new CheckpointCorruptError('layout', `archive has no ${pickle}: not a PyTorch checkpoint`);
  }
  return { prefix, pickle };
}

/**
 * Checks the first and last bytes of `data.pkl`: a pickle of protocol 2 or later starts with PROTO
 * (0x80) and its protocol number, and ends with STOP ('.').
 *
 * @throws CheckpointCorruptError (check `layout`) otherwise.
 */
export function checkPickleEnvelope(
  name: string,
  probe: { head: readonly number[]; last: number | undefined },
): void {
  const [opcode, protocol] = probe.head;
  if (opcode !== 0x80 || protocol === undefined || protocol < 2 || protocol > 5 || probe.last !== 0x2e) {
    throw new CheckpointCorruptError('layout', `${name} is not a pickle (protocol 2-5, ending with STOP)`);
  }
}
