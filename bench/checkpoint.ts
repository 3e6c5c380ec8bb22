// Benchmark of the checkpoint backup path (`npm run bench:checkpoint`), against the durable-copy and
// hashing baselines of coreutils, in the same run:
// - backup: our copy (read, sha256 while copying, write, fsync, rename, fsync the directory) vs
//   `cp src dst && sync dst` (coreutils cp uses copy_file_range: the copy happens in the kernel);
// - verify: our read-back check (sha256 + zip structure + every entry's CRC-32, one pass) vs `sha256sum`;
// - restore: picking the newest verified backup, re-verifying it and writing it to a destination
//   atomically, end to end.
// Rounds are interleaved (A B, then B A, ...) after a warm-up round; figures are medians. Cache state is
// the same for both sides: the file a side reads is read once right before it (warm page cache), and
// `sync` runs before each side so neither inherits the other's dirty pages. Last line: key=value pairs.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { copyFileToStorage } from '../src/checkpoint/copy.js';
import { serializeManifest } from '../src/checkpoint/manifest.js';
import { backupBaseName, manifestNameFor } from '../src/checkpoint/names.js';
import { DEFAULT_CHUNK_SIZE } from '../src/checkpoint/pump.js';
import { restoreCheckpoint } from '../src/checkpoint/restore.js';
import { scanCheckpoint } from '../src/checkpoint/scan.js';
import { FilesystemStorage } from '../src/checkpoint/storage.js';
import { writeSyntheticCheckpoint } from '../src/checkpoint/synthetic.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const TENSORS = [256 * MiB, 256 * MiB, 256 * MiB, 256 * MiB - 64 * 1024];
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);

const median = (values: number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};

async function warm(file: string): Promise<void> {
  const handle = await fs.open(file, 'r');
  const buffer = Buffer.allocUnsafe(16 * MiB);
  try {
    for (let at = 0; ; at += buffer.length) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, at);
      if (bytesRead === 0) break;
    }
  } finally {
    await handle.close();
  }
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-bench-ckpt-'));
  try {
    const source = path.join(dir, 'model.pt');
    const made = performance.now();
    const { size, sha256 } = await writeSyntheticCheckpoint(source, { tensorSizes: TENSORS, seed: 7 });
    const fsType = (await run('stat', ['-f', '-c', '%T', dir])).stdout.trim();
    console.log(
      `checkpoint: ${size} bytes (${(size / MiB).toFixed(1)} MiB), ${TENSORS.length} stored tensor entries, made in ${((performance.now() - made) / 1000).toFixed(1)} s`,
    );
    console.log(
      `parameters: rounds=${ROUNDS} (+1 warm-up), chunk=${DEFAULT_CHUNK_SIZE / MiB} MiB, cpus=${os.cpus().length}, dir=${dir} (${fsType}), node ${process.version}`,
    );
    console.log('cache: the file each side reads is read once just before it (warm); sync before each side');

    const ours = new FilesystemStorage(path.join(dir, 'ours'));
    const cpDir = path.join(dir, 'cp');
    await fs.mkdir(cpDir);
    const cpTarget = path.join(cpDir, 'model.pt');
    const name = backupBaseName(new Date('2025-01-01T00:00:00Z'), 'bench');

    const backupOurs = async (): Promise<number> => {
      await ours.remove(name);
      await run('sync');
      await warm(source);
      return timed(async () => {
        const copy = await copyFileToStorage(source, ours, name);
        if (copy.sha256 !== sha256) throw new Error('copy sha256 mismatch');
      });
    };
    const backupCp = async (): Promise<number> => {
      await fs.rm(cpTarget, { force: true });
      await run('sync');
      await warm(source);
      return timed(() => run('sh', ['-c', 'cp "$1" "$2" && sync "$2"', 'cp', source, cpTarget]));
    };
    const backupFile = path.join(ours.location, name);
    const verifyOurs = async (): Promise<number> => {
      await run('sync');
      await warm(backupFile);
      return timed(async () => {
        const reader = await ours.openRead(name);
        try {
          await scanCheckpoint(reader, { expectedSha256: sha256, expectedSize: size });
        } finally {
          await reader.close();
        }
      });
    };
    const verifySha256sum = async (): Promise<number> => {
      await run('sync');
      await warm(backupFile);
      return timed(async () => {
        const { stdout } = await run('sha256sum', [backupFile]);
        if (!stdout.startsWith(sha256)) throw new Error('sha256sum disagrees');
      });
    };

    const t = {
      backupOurs: [] as number[],
      backupCp: [] as number[],
      verifyOurs: [] as number[],
      verifySha: [] as number[],
    };
    const gbps = (ms: number): string => `${(size / 1e9 / (ms / 1000)).toFixed(2)} GB/s`;
    for (let round = 0; round <= ROUNDS; round++) {
      const warmup = round === 0;
      const oursFirst = round % 2 === 1;
      const b1 = oursFirst ? await backupOurs() : await backupCp();
      const b2 = oursFirst ? await backupCp() : await backupOurs();
      const [bo, bc] = oursFirst ? [b1, b2] : [b2, b1];
      const v1 = oursFirst ? await verifyOurs() : await verifySha256sum();
      const v2 = oursFirst ? await verifySha256sum() : await verifyOurs();
      const [vo, vs] = oursFirst ? [v1, v2] : [v2, v1];
      console.log(
        `${warmup ? 'warm-up' : `round ${round}`}  (${oursFirst ? 'ours first' : 'baseline first'})  ` +
          `backup ours ${bo.toFixed(0)} ms (${gbps(bo)}) cp+sync ${bc.toFixed(0)} ms (${gbps(bc)}) ratio ${(bc / bo).toFixed(2)}  |  ` +
          `verify ours ${vo.toFixed(0)} ms (${gbps(vo)}) sha256sum ${vs.toFixed(0)} ms (${gbps(vs)}) ratio ${(vs / vo).toFixed(2)}`,
      );
      if (warmup) continue;
      t.backupOurs.push(bo);
      t.backupCp.push(bc);
      t.verifyOurs.push(vo);
      t.verifySha.push(vs);
    }

    // Restore: a manifest makes the backup restorable; the destination is replaced atomically each time.
    const copy = await copyFileToStorage(source, ours, name);
    await ours.writeSmall(
      manifestNameFor(name),
      serializeManifest({
        schemaVersion: 1,
        name,
        location: backupFile,
        size: copy.size,
        sha256: copy.sha256,
        createdAt: '2025-01-01T00:00:00.000Z',
        verifiedAt: '2025-01-01T00:00:01.000Z',
        verified: true,
        source: { kind: 'newest-file', ...copy.source },
        checks: { size: true, sha256: true, structure: true, command: 'skipped' },
      }),
    );
    const restores: number[] = [];
    const destination = path.join(dir, 'replica', 'model.pt');
    for (let i = 0; i < 3; i++) {
      await run('sync');
      await warm(backupFile);
      restores.push(await timed(() => restoreCheckpoint(ours, { destination })));
    }
    console.log(
      `restore (re-verify + atomic write of ${(size / MiB).toFixed(0)} MiB, warm cache): ${restores.map((r) => r.toFixed(0)).join(', ')} ms`,
    );

    const backupRatio = median(t.backupCp) / median(t.backupOurs);
    const verifyRatio = median(t.verifySha) / median(t.verifyOurs);
    console.log(
      `medians: backup ours ${median(t.backupOurs).toFixed(0)} ms, cp+sync ${median(t.backupCp).toFixed(0)} ms; ` +
        `verify ours ${median(t.verifyOurs).toFixed(0)} ms, sha256sum ${median(t.verifySha).toFixed(0)} ms; ` +
        `ratio = baseline time / our time = our throughput / baseline throughput`,
    );
    console.log(
      `size_mb=${Math.round(size / MiB)} backup_vs_cp=${backupRatio.toFixed(2)} verify_vs_sha256sum=${verifyRatio.toFixed(2)} restore_ms=${median(restores).toFixed(0)}`,
    );
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
