import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CheckpointCorruptError } from '../../src/checkpoint/errors.js';
import type { RandomAccessReader } from '../../src/checkpoint/pump.js';
import { scanCheckpoint } from '../../src/checkpoint/scan.js';
import {
  buildSyntheticCheckpoint,
  randomBytes,
  type SyntheticCheckpointOptions,
} from '../../src/checkpoint/synthetic.js';
import { readZipDirectory } from '../../src/checkpoint/zip.js';
import { tempDir } from './helpers.js';

function bufferReader(buf: Buffer): RandomAccessReader {
  return {
    size: buf.length,
    read: (b, o, l, p) => Promise.resolve(buf.copy(b, o, p, Math.min(p + l, buf.length))),
    close: () => Promise.resolve(),
  };
}

async function rejectsWith(buf: Buffer, check: CheckpointCorruptError['check'] | undefined, options = {}) {
  await assert.rejects(scanCheckpoint(bufferReader(buf), { chunkSize: 4096, ...options }), (err) => {
    assert.ok(err instanceof CheckpointCorruptError, `expected CheckpointCorruptError, got ${String(err)}`);
    if (check) assert.equal(err.check, check, err.message);
    assert.equal(err.permanent, true);
    return true;
  });
}

const variants: Array<[string, SyntheticCheckpointOptions]> = [
  ['torch.save layout', {}],
  ['zip64 records', { zip64: true }],
  ['data descriptors', { dataDescriptor: true }],
  ['zip64 + data descriptors', { zip64: true, dataDescriptor: true }],
  ['entries larger than a read chunk', { tensorSizes: [300_000, 7, 0, 65_536] }],
  ['a stem prefix instead of archive/', { prefix: 'model' }],
];

describe('scanCheckpoint: valid checkpoints', () => {
  for (const [label, options] of variants) {
    it(`accepts ${label}, whatever the read chunk size`, async () => {
      const buf = await buildSyntheticCheckpoint(options);
      for (const chunkSize of [1, 7, 4096, 1 << 20]) {
        if (chunkSize === 1 && buf.length > 20_000) continue;
        const report = await scanCheckpoint(bufferReader(buf), { chunkSize });
        assert.equal(report.size, buf.length);
        assert.match(report.sha256, /^[0-9a-f]{64}$/);
        assert.equal(report.layout?.prefix, options.prefix ?? 'archive');
        assert.equal(report.zip?.zip64, options.zip64 ?? false);
        assert.equal(report.zip?.entries, 4 + (options.tensorSizes ?? [1, 2]).length);
      }
    });
  }

  it('checks size and sha256 when they are expected', async () => {
    const buf = await buildSyntheticCheckpoint();
    const { sha256 } = await scanCheckpoint(bufferReader(buf));
    await scanCheckpoint(bufferReader(buf), { expectedSha256: sha256, expectedSize: buf.length });
    await rejectsWith(buf, 'sha256', { expectedSha256: '0'.repeat(64) });
    await rejectsWith(buf, 'size', { expectedSize: buf.length + 1 });
  });
});

describe('scanCheckpoint: bad input', () => {
  it('detects a checkpoint truncated anywhere', async () => {
    const buf = await buildSyntheticCheckpoint({ tensorSizes: [20_000] });
    for (let length = 0; length < buf.length; length += 97) {
      await rejectsWith(buf.subarray(0, length), undefined);
    }
    await rejectsWith(buf.subarray(0, buf.length - 1), 'structure');
  });

  it('detects a single flipped bit in tensor data (CRC-32)', async () => {
    const buf = await buildSyntheticCheckpoint({ tensorSizes: [50_000] });
    const dir = await readZipDirectory((p, l) => Promise.resolve(buf.subarray(p, p + l)), buf.length);
    const tensor = dir.entries.find((e) => e.name === 'archive/data/0');
    assert.ok(tensor);
    for (const offset of [0, 1, 12_345, 49_999]) {
      const copy = Buffer.from(buf);
      const header: number = tensor.localHeaderOffset;
      const dataStart: number = header + 30 + copy.readUInt16LE(header + 26) + copy.readUInt16LE(header + 28);
      assert.equal(dataStart % 64, 0, 'torch aligns tensor data to 64 bytes');
      copy[dataStart + offset] = (copy[dataStart + offset] ?? 0) ^ 0x10;
      await rejectsWith(copy, 'crc32');
    }
  });

  it('detects every single-bit flip except in fields no zip reader uses', async () => {
    // Exhaustive over a small file: each of its ~6000 bytes, every bit. The only flips allowed to pass
    // are "version made by" and the file attributes of central directory headers (and the version fields
    // of a zip64 end record); restore still catches those through the manifest's sha256.
    for (const options of [{}, { zip64: true }] as SyntheticCheckpointOptions[]) {
      const buf = await buildSyntheticCheckpoint(options);
      const dir = await readZipDirectory((p, l) => Promise.resolve(buf.subarray(p, p + l)), buf.length);
      const unused = new Set<number>();
      let at = dir.centralDirectoryOffset;
      for (const entry of dir.entries) {
        for (const field of [4, 5, 36, 37, 38, 39, 40, 41]) unused.add(at + field);
        at += 46 + entry.rawName.length + buf.readUInt16LE(at + 30) + buf.readUInt16LE(at + 32);
      }
      if (options.zip64) for (const field of [12, 13, 14, 15]) unused.add(at + field);
      const missed: number[] = [];
      for (let offset = 0; offset < buf.length; offset++) {
        for (let bit = 0; bit < 8; bit++) {
          buf[offset] = (buf[offset] ?? 0) ^ (1 << bit);
          try {
            await scanCheckpoint(bufferReader(buf), { chunkSize: 1 << 20 });
            if (!unused.has(offset)) missed.push(offset);
          } catch (err) {
            assert.ok(err instanceof CheckpointCorruptError, String(err));
          } finally {
            buf[offset] = (buf[offset] ?? 0) ^ (1 << bit);
          }
        }
      }
      assert.deepEqual(missed, [], `undetected flips at ${missed.join(', ')} (${JSON.stringify(options)})`);
    }
  });

  it('refuses random bytes, an empty file, and a zip that is not a PyTorch checkpoint', async () => {
    await rejectsWith(randomBytes(100_000), 'structure');
    await rejectsWith(Buffer.alloc(0), 'structure');
    const notTorch = await buildSyntheticCheckpoint();
    // Rename data.pkl in both headers: a valid zip without the pickle torch needs.
    const renamed = Buffer.from(
      notTorch.toString('latin1').replaceAll('archive/data.pkl', 'archive/data.txt'),
      'latin1',
    );
    await rejectsWith(renamed, 'layout');
    const report = await scanCheckpoint(bufferReader(renamed), { torchLayout: false });
    assert.equal(report.layout, undefined);
  });

  it('refuses entries without CRC-32s unless allowed', async () => {
    const buf = await buildSyntheticCheckpoint({ recordCrc32: false });
    await rejectsWith(buf, 'crc32');
    await scanCheckpoint(bufferReader(buf), { allowMissingCrc32: true });
  });

  it('refuses a file whose central directory changed between the two reads', async () => {
    const buf = await buildSyntheticCheckpoint();
    const changed = Buffer.from(buf);
    const dir = await readZipDirectory((p, l) => Promise.resolve(buf.subarray(p, p + l)), buf.length);
    let reads = 0;
    const reader: RandomAccessReader = {
      size: buf.length,
      read: (b, o, l, p) => {
        // The first reads (end records, directory) see the original; the streaming pass sees a change.
        reads++;
        const source = reads > 1 ? changed : buf;
        return Promise.resolve(source.copy(b, o, p, Math.min(p + l, source.length)));
      },
      close: () => Promise.resolve(),
    };
    changed[dir.centralDirectoryOffset + 4] = (changed[dir.centralDirectoryOffset + 4] ?? 0) ^ 1;
    await assert.rejects(scanCheckpoint(reader, { chunkSize: 1 << 20 }), /central directory changed/);
  });
});

describe('synthetic checkpoints are real zip archives', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await tempDir()));
  after(() => cleanup());

  const python = (() => {
    try {
      execFileSync('python3', ['-c', 'import zipfile'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it(
    'python zipfile reads them and checks every CRC',
    { skip: !python && 'python3 not installed' },
    async () => {
      for (const [label, options] of variants) {
        const file = path.join(dir, `${label.replace(/\W+/g, '-')}.pt`);
        await fs.writeFile(file, await buildSyntheticCheckpoint(options));
        const out = execFileSync('python3', [
          '-c',
          'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(len(z.infolist()))',
          file,
        ]).toString();
        assert.equal(Number(out), 4 + (options.tensorSizes ?? [1, 2]).length, label);
      }
    },
  );
});
