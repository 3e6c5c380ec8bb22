import { createHash, randomFillSync } from 'node:crypto';
import fs from 'node:fs/promises';
import { crc32 } from 'node:zlib';

// Writes files with the zip layout of `torch.save` (stored entries under one folder, data aligned to 64
// bytes with 'Z' padding in an "FB" extra field, a pickle in data.pkl), for tests, the benchmark and the
// simulated model servers of the embedded stack, where no PyTorch is installed.

/** Options of {@link writeSyntheticCheckpoint} and {@link buildSyntheticCheckpoint}. */
export interface SyntheticCheckpointOptions {
  /** Top-level folder of the entries; torch uses `archive` or the file's stem. Default `archive`. */
  readonly prefix?: string;
  /** Sizes of the tensor storages `<prefix>/data/0`, `1`, ...; default `[4096, 1024]`. */
  readonly tensorSizes?: readonly number[];
  /** Write zip64 records even for a small file (torch does for files over 4 GiB). */
  readonly zip64?: boolean;
  /** Put CRC and sizes in data descriptors after each entry instead of the local headers. */
  readonly dataDescriptor?: boolean;
  /** Record CRC-32s; false mimics `torch.serialization.config.save.compute_crc32 = False`. */
  readonly recordCrc32?: boolean;
  /** Seed of the tensor bytes, so two files with the same options and seed are identical. */
  readonly seed?: number;
}

/** A minimal pickle (protocol 2) of an empty dict: PROTO 2, EMPTY_DICT, BINPUT 0, STOP. */
const EMPTY_DICT_PICKLE = Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]);
const ALIGNMENT = 64;
const FILL_BLOCK = 1024 * 1024;

interface Sink {
  write(data: Buffer): Promise<void>;
  patch(position: number, data: Buffer): Promise<void>;
}

interface Entry {
  name: Buffer;
  crc: number;
  size: number;
  offset: number;
}

/** Deterministic pseudo-random bytes (xorshift) for one block of a tensor. */
function pattern(seed: number): Buffer {
  const out = Buffer.allocUnsafe(FILL_BLOCK);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < FILL_BLOCK; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

async function emit(sink: Sink, options: SyntheticCheckpointOptions): Promise<number> {
  const prefix = options.prefix ?? 'archive';
  const zip64 = options.zip64 ?? false;
  const descriptor = options.dataDescriptor ?? false;
  const recordCrc = options.recordCrc32 ?? true;
  const seed = options.seed ?? 1;
  const block = pattern(seed);
  const tensors = options.tensorSizes ?? [4096, 1024];
  type Content = { name: string; size: number; fill: (write: (b: Buffer) => Promise<void>) => Promise<void> };
  const constant = (name: string, data: Buffer): Content => ({
    name,
    size: data.length,
    fill: (w) => w(data),
  });
  const contents: Content[] = [
    constant(`${prefix}/data.pkl`, EMPTY_DICT_PICKLE),
    constant(`${prefix}/byteorder`, Buffer.from('little')),
    ...tensors.map((size, index): Content => ({
      name: `${prefix}/data/${index}`,
      size,
      fill: async (write) => {
        for (let done = 0, n = 0; done < size; n++) {
          const part = Buffer.from(block.subarray(0, Math.min(FILL_BLOCK, size - done)));
          // Stamp each block so no two blocks are equal (deduplicating storage would flatter a benchmark).
          if (part.length >= 8) part.writeUInt32LE((index * 1_000_003 + n) >>> 0, 0);
          await write(part);
          done += part.length;
        }
      },
    })),
    constant(`${prefix}/version`, Buffer.from('3\n')),
    constant(`${prefix}/.data/serialization_id`, Buffer.from(`${seed}`.padStart(20, '0'))),
  ];
  const version = zip64 ? 45 : 20;
  const flags = descriptor ? 0x0008 : 0;
  let position = 0;
  const entries: Entry[] = [];
  for (const content of contents) {
    const name = Buffer.from(content.name);
    const offset = position;
    const z64 = zip64 ? Buffer.alloc(20) : Buffer.alloc(0);
    if (zip64) {
      z64.writeUInt16LE(0x0001, 0);
      z64.writeUInt16LE(16, 2);
      z64.writeBigUInt64LE(BigInt(descriptor ? 0 : content.size), 4);
      z64.writeBigUInt64LE(BigInt(descriptor ? 0 : content.size), 12);
    }
    const unpadded = offset + 30 + name.length + z64.length + 4;
    const pad = (ALIGNMENT - (unpadded % ALIGNMENT)) % ALIGNMENT;
    const padding = Buffer.alloc(4 + pad, 'Z');
    padding.write('FB', 0, 'latin1');
    padding.writeUInt16LE(pad, 2);
    const header = Buffer.alloc(30);
    header.writeUInt32LE(0x04034b50, 0);
    header.writeUInt16LE(version, 4);
    header.writeUInt16LE(flags, 6);
    header.writeUInt16LE(0, 8);
    header.writeUInt16LE(0, 10);
    header.writeUInt16LE(0x21, 12); // 1980-01-01, as torch writes
    header.writeUInt32LE(0, 14); // CRC patched after the data
    const sizeField = descriptor ? 0 : zip64 ? 0xffffffff : content.size;
    header.writeUInt32LE(sizeField, 18);
    header.writeUInt32LE(sizeField, 22);
    header.writeUInt16LE(name.length, 26);
    header.writeUInt16LE(z64.length + padding.length, 28);
    await sink.write(Buffer.concat([header, name, z64, padding]));
    position += 30 + name.length + z64.length + padding.length;
    let crc = 0;
    await content.fill(async (b) => {
      crc = crc32(b, crc);
      await sink.write(b);
      position += b.length;
    });
    const recorded = recordCrc ? crc : 0;
    if (descriptor) {
      const d = Buffer.alloc(zip64 ? 24 : 16);
      d.writeUInt32LE(0x08074b50, 0);
      d.writeUInt32LE(recorded, 4);
      if (zip64) {
        d.writeBigUInt64LE(BigInt(content.size), 8);
        d.writeBigUInt64LE(BigInt(content.size), 16);
      } else {
        d.writeUInt32LE(content.size, 8);
        d.writeUInt32LE(content.size, 12);
      }
      await sink.write(d);
      position += d.length;
    } else {
      const crcField = Buffer.alloc(4);
      crcField.writeUInt32LE(recorded, 0);
      await sink.patch(offset + 14, crcField);
    }
    entries.push({ name, crc: recorded, size: content.size, offset });
  }
  const cdOffset = position;
  for (const e of entries) {
    const z64 = zip64 ? Buffer.alloc(28) : Buffer.alloc(0);
    if (zip64) {
      z64.writeUInt16LE(0x0001, 0);
      z64.writeUInt16LE(24, 2);
      z64.writeBigUInt64LE(BigInt(e.size), 4);
      z64.writeBigUInt64LE(BigInt(e.size), 12);
      z64.writeBigUInt64LE(BigInt(e.offset), 20);
    }
    const h = Buffer.alloc(46);
    h.writeUInt32LE(0x02014b50, 0);
    h.writeUInt16LE(version, 4);
    h.writeUInt16LE(version, 6);
    h.writeUInt16LE(flags, 8);
    h.writeUInt16LE(0, 10);
    h.writeUInt16LE(0, 12);
    h.writeUInt16LE(0x21, 14);
    h.writeUInt32LE(e.crc, 16);
    h.writeUInt32LE(zip64 ? 0xffffffff : e.size, 20);
    h.writeUInt32LE(zip64 ? 0xffffffff : e.size, 24);
    h.writeUInt16LE(e.name.length, 28);
    h.writeUInt16LE(z64.length, 30);
    h.writeUInt32LE(zip64 ? 0xffffffff : e.offset, 42);
    await sink.write(Buffer.concat([h, e.name, z64]));
    position += 46 + e.name.length + z64.length;
  }
  const cdSize = position - cdOffset;
  if (zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(entries.length), 24);
    rec.writeBigUInt64LE(BigInt(entries.length), 32);
    rec.writeBigUInt64LE(BigInt(cdSize), 40);
    rec.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(position), 8);
    loc.writeUInt32LE(1, 16);
    await sink.write(Buffer.concat([rec, loc]));
    position += 76;
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(zip64 ? 0xffff : entries.length, 8);
  end.writeUInt16LE(zip64 ? 0xffff : entries.length, 10);
  end.writeUInt32LE(zip64 ? 0xffffffff : cdSize, 12);
  end.writeUInt32LE(zip64 ? 0xffffffff : cdOffset, 16);
  await sink.write(end);
  return position + 22;
}

/**
 * Builds a small synthetic PyTorch-style checkpoint in memory.
 *
 * @example const bytes = await buildSyntheticCheckpoint({ tensorSizes: [1 << 16] });
 */
export async function buildSyntheticCheckpoint(options: SyntheticCheckpointOptions = {}): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  const patches: Array<[number, Buffer]> = [];
  await emit(
    {
      write: (data) => {
        parts.push(data);
        length += data.length;
        return Promise.resolve();
      },
      patch: (position, data) => {
        patches.push([position, data]);
        return Promise.resolve();
      },
    },
    options,
  );
  const out = Buffer.concat(parts, length);
  for (const [position, data] of patches) data.copy(out, position);
  return out;
}

/**
 * Writes a synthetic PyTorch-style checkpoint to `path` in one pass (sizes of GiB are fine), and fsyncs
 * it. Returns its size and sha256.
 */
export async function writeSyntheticCheckpoint(
  path: string,
  options: SyntheticCheckpointOptions = {},
): Promise<{ size: number; sha256: string }> {
  const handle = await fs.open(path, 'w+');
  let position = 0;
  try {
    const size = await emit(
      {
        write: async (data) => {
          await handle.write(data, 0, data.length, position);
          position += data.length;
        },
        patch: async (at, data) => {
          await handle.write(data, 0, data.length, at);
        },
      },
      options,
    );
    await handle.sync();
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(8 * 1024 * 1024);
    for (let at = 0; at < size;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, at);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      at += bytesRead;
    }
    return { size, sha256: hash.digest('hex') };
  } finally {
    await handle.close();
  }
}

/** Random bytes that are not a checkpoint at all, for negative tests. */
export function randomBytes(size: number): Buffer {
  return randomFillSync(Buffer.allocUnsafe(size));
}
