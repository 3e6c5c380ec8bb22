import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { CheckpointCorruptError } from '../../src/checkpoint/errors.js';
import { openFileReader } from '../../src/checkpoint/pump.js';
import { scanCheckpoint, type ScanOptions, type ScanReport } from '../../src/checkpoint/scan.js';
import { inferencePaths, checkGguf } from '../../src/toolchain/inference.js';
import { DEFAULT_TENSORS, ggufBytes, ggufHeaderEnd, slotBytes } from './formats.js';
import { tempDir } from './helpers.js';

describe('checkpoint formats: gguf and llama-slot', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  async function scan(bytes: Buffer, options: ScanOptions): Promise<ScanReport> {
    const file = path.join(dir, 'file');
    await fs.writeFile(file, bytes);
    return scanFile(file, options);
  }

  async function scanFile(file: string, options: ScanOptions): Promise<ScanReport> {
    const reader = await openFileReader(file);
    try {
      return await scanCheckpoint(reader, options);
    } finally {
      await reader.close();
    }
  }

  /** Asserts the scan fails with a CheckpointCorruptError of `check` whose message matches. */
  async function refused(bytes: Buffer, options: ScanOptions, check: string, message: RegExp): Promise<void> {
    await assert.rejects(scan(bytes, options), (err: unknown) => {
      assert.ok(err instanceof CheckpointCorruptError, String(err));
      assert.equal(err.check, check, err.message);
      assert.match(err.message, message);
      return true;
    });
  }

  const gguf = { format: 'gguf' } as const;
  const slot = { format: 'llama-slot' } as const;

  it('a GGUF written in the test passes, whatever the chunk size, and reports its header', async () => {
    const bytes = ggufBytes();
    for (const chunkSize of [1, 7, 100, 8 * 1024 * 1024]) {
      const report = await scan(bytes, { ...gguf, chunkSize });
      assert.equal(report.format, 'gguf');
      assert.equal(report.sha256, createHash('sha256').update(bytes).digest('hex'));
      assert.deepEqual(report.gguf, {
        version: 3,
        tensors: 2,
        metadataKeys: 4,
        architecture: 'llama',
        alignment: 32,
        dataOffset: report.gguf?.dataOffset,
        dataBytes: 164,
      });
      assert.equal(report.zip, undefined, 'no zip check on a GGUF');
    }
  });

  it('GGUF version 2 passes too', async () => {
    assert.equal((await scan(ggufBytes({ version: 2 }), gguf)).gguf?.version, 2);
  });

  it('the torch check refuses a GGUF and the GGUF check a torch zip (format decides)', async () => {
    await assert.rejects(scan(ggufBytes(), {}), CheckpointCorruptError);
    await refused(Buffer.from('PK\x03\x04' + 'x'.repeat(60)), gguf, 'magic', /"PK/);
  });

  describe('refuses a broken GGUF, naming the check', () => {
    const good = ggufBytes();
    const cases: Array<[string, () => Buffer, string, RegExp]> = [
      ['bad magic', () => Buffer.concat([Buffer.from('GGUX'), good.subarray(4)]), 'magic', /"GGUX", expected "GGUF"/],
      ['version 1', () => withU32(good, 4, 1), 'version', /version is 1, expected 2 or 3/],
      ['a big-endian version', () => withU32(good, 4, 0x03000000), 'version', /big-endian/],
      ['a tensor count no file of this size holds', () => withU64(good, 8, 1n << 40n), 'structure', /more than a \d+-byte file holds/],
      ['truncated inside the metadata', () => good.subarray(0, 200), 'structure', /needs \d+ bytes, but the file ends at 200/],
      ['truncated inside the tensor data', () => good.subarray(0, good.length - 40), 'structure', /blk\.0\.attn_q\.weight .* beyond the end of the file/],
      ['a tensor offset beyond the end', () => ggufBytes({ offsetOf: (i, o) => (i === 1 ? o + 4096 : o) }), 'structure', /has data offset 4224, expected 128/],
      ['an unknown ggml type', () => ggufBytes({ tensors: [{ ...DEFAULT_TENSORS[0]!, type: 4 }] }), 'structure', /type 4, not a ggml type/],
      ['a row that is not whole blocks', () => ggufBytes({ tensors: [{ name: 'q', shape: [16, 2], type: 2, bytes: 18 }] }), 'structure', /not a multiple of its type's block \(32\)/],
      ['no general.architecture', () => ggufBytes({ architecture: null }), 'layout', /general\.architecture is missing/],
      ['a metadata value type that does not exist', () => withU32(good, 24 + 8 + 'general.architecture'.length, 13), 'structure', /value type 13/],
    ]; // prettier-ignore
    for (const [name, bytes, check, message] of cases) {
      it(name, () => refused(bytes(), gguf, check, message));
    }

    it('one flipped byte in the tensor data: structure passes, the recorded sha256 does not', async () => {
      const sha256 = createHash('sha256').update(good).digest('hex');
      const flipped = Buffer.from(good);
      flipped[flipped.length - 100]! ^= 0x10;
      await scan(flipped, gguf);
      await refused(flipped, { ...gguf, expectedSha256: sha256 }, 'sha256', /expected/);
    });

    it('a flipped byte in a tensor info is caught by the header check', async () => {
      const flipped = Buffer.from(good);
      const at = ggufHeaderEnd(good) + 8 + 'token_embd.weight'.length + 4; // its first dimension
      flipped[at + 1]! ^= 0x01;
      await assert.rejects(scan(flipped, gguf), CheckpointCorruptError);
    });
  });

  it('the inference toolchain models pass as GGUF', async (t) => {
    const paths = inferencePaths(loadConfig().cacheDir);
    let tried = 0;
    for (const model of [paths.tinyModel, paths.smollm2]) {
      if (!(await checkGguf(model)).ok) continue;
      const report = await scanFile(model, gguf);
      assert.equal(report.gguf?.architecture, 'llama', model);
      assert.ok((report.gguf?.tensors ?? 0) > 0);
      const truncated = path.join(dir, 'truncated.gguf');
      await fs.copyFile(model, truncated);
      await fs.truncate(truncated, report.size - 1);
      await assert.rejects(scanFile(truncated, gguf), /beyond the end of the file/);
      tried++;
    }
    if (tried === 0) {
      const why = `no inference models in ${path.dirname(path.dirname(paths.tinyModel))} (npm run toolchain:inference)`;
      process.stderr.write(`# skipping the real GGUF check: ${why}\n`);
      t.skip(why);
    }
  });

  it('a slot file written in the test passes, whatever the chunk size, and reports tokens and cells', async () => {
    const bytes = slotBytes({ tokens: [10, 11, 12], layers: 3 });
    for (const chunkSize of [1, 5, 8 * 1024 * 1024]) {
      const report = await scan(bytes, { ...slot, chunkSize });
      assert.deepEqual(report.slot, { version: 4, tokens: 3, cells: 3, layers: 3, caches: 1 });
    }
  });

  describe('refuses a broken slot file, naming the check', () => {
    const good = slotBytes();
    const cases: Array<[string, () => Buffer, string, RegExp]> = [
      ['bad magic', () => withU32(good, 0, 0x67677372), 'magic', /0x67677372, expected 0x67677371/],
      ['another version', () => slotBytes({ version: 3 }), 'version', /version is 3, expected 4/],
      ['a token count beyond the file', () => withU32(good, 8, 1_000_000), 'structure', /token count 1000000 needs 4000000 bytes/],
      ['truncated', () => good.subarray(0, good.length - 1), 'structure', /needs \d+ bytes, but the file ends/],
      ['a byte too many', () => Buffer.concat([good, Buffer.alloc(1)]), 'structure', /file ends/],
      ['a cell of two sequences', () => withU32(good, 12 + 11 * 4 + 8 + 4, 2), 'structure', /KV cell 0 .* 2 sequence ids/],
    ]; // prettier-ignore
    for (const [name, bytes, check, message] of cases) {
      it(name, () => refused(bytes(), slot, check, message));
    }

    it('one flipped byte in the KV data: the recorded sha256 refuses it', async () => {
      const flipped = Buffer.from(good);
      flipped[flipped.length - 3]! ^= 0x01;
      const sha256 = createHash('sha256').update(good).digest('hex');
      await refused(flipped, { ...slot, expectedSha256: sha256 }, 'sha256', /expected/);
    });
  });
});

function withU32(bytes: Buffer, at: number, value: number): Buffer {
  const copy = Buffer.from(bytes);
  copy.writeUInt32LE(value >>> 0, at);
  return copy;
}

function withU64(bytes: Buffer, at: number, value: bigint): Buffer {
  const copy = Buffer.from(bytes);
  copy.writeBigUInt64LE(value, at);
  return copy;
}
