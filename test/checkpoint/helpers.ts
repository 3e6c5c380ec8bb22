// Shared helpers of the checkpoint tests: temp directories, a fault-injecting file system, and
// synthetic checkpoints with real zip structure (no PyTorch here).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { copyFileToStorage } from '../../src/checkpoint/copy.js';
import { serializeManifest, type BackupManifest } from '../../src/checkpoint/manifest.js';
import { backupBaseName, manifestNameFor } from '../../src/checkpoint/names.js';
import {
  nodeFsOps,
  type CheckpointStorage,
  type FileHandleLike,
  type FsOps,
} from '../../src/checkpoint/storage.js';
import { writeSyntheticCheckpoint } from '../../src/checkpoint/synthetic.js';
import type { CheckpointFormat, SlotIdentity } from '../../src/checkpoint/types.js';

/** A fresh temp directory; remove it with the returned function. */
export async function tempDir(prefix = 'fm-ckpt-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
}

/** Which call a {@link faultyFs} fails, with which errno. */
export interface Fault {
  /** `create`: opening a new file for writing; `write`: a write once `afterBytes` were written. */
  readonly on: 'create' | 'write' | 'rename' | 'fsync';
  readonly code: 'ENOSPC' | 'EACCES' | 'EIO' | 'EROFS' | 'EDQUOT';
  readonly afterBytes?: number;
  /** Delay every write by this many ms (to make a copy slow enough to kill). */
  readonly writeDelayMs?: number;
}

function errno(code: string, syscall: string, file: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: simulated fault, ${syscall} '${file}'`), {
    code,
    syscall,
    path: file,
  });
}

/**
 * Node's fs with one injected fault, shaped like the real error (an Error with `code`, `syscall`,
 * `path`). Tests run as root, where chmod cannot produce EACCES and no test disk is ever full.
 */
export function faultyFs(
  fault: Fault | undefined,
  options: { writeDelayMs?: number; kernelCopy?: boolean } = {},
): FsOps {
  let written = 0;
  const delay = options.writeDelayMs ?? fault?.writeDelayMs ?? 0;
  const ops: FsOps = {
    ...nodeFsOps,
    open: async (file, flags, mode) => {
      const writing = flags.includes('w');
      if (fault?.on === 'create' && writing) throw errno(fault.code, 'open', file);
      const handle = await nodeFsOps.open(file, flags, mode);
      const wrapped: FileHandleLike = {
        read: (b, o, l, p) => handle.read(b, o, l, p),
        stat: () => handle.stat(),
        close: () => handle.close(),
        sync: async () => {
          if (fault?.on === 'fsync' && writing) throw errno(fault.code, 'fsync', file);
          await handle.sync();
        },
        write: async (b, o, l, p) => {
          if (delay) await new Promise((r) => setTimeout(r, delay));
          if (fault?.on === 'write' && written + l > (fault.afterBytes ?? 0)) {
            const room = Math.max(0, (fault.afterBytes ?? 0) - written);
            if (room > 0) {
              written += room;
              return handle.write(b, o, room, p);
            }
            throw errno(fault.code, 'write', file);
          }
          written += l;
          return handle.write(b, o, l, p);
        },
      };
      return wrapped;
    },
    rename: async (from, to) => {
      if (fault?.on === 'rename') throw errno(fault.code, 'rename', from);
      await nodeFsOps.rename(from, to);
    },
  };
  // The kernel copy path (copy_file_range) goes through the same faults: a chunked copy through the
  // wrapped handles, so ENOSPC after N bytes, EACCES and slow writes behave as they would.
  ops.copyFile = async (from, to) => {
    const source = await nodeFsOps.open(from, 'r');
    const target = await ops.open(to, 'w');
    try {
      const buffer = Buffer.allocUnsafe(64 * 1024);
      for (let at = 0; ;) {
        const { bytesRead } = await source.read(buffer, 0, buffer.length, at);
        if (bytesRead === 0) break;
        for (let done = 0; done < bytesRead;) {
          done += (await target.write(buffer, done, bytesRead - done, at + done)).bytesWritten;
        }
        at += bytesRead;
      }
    } finally {
      await source.close();
      await target.close();
    }
  };
  if (options.kernelCopy === false) delete ops.copyFile;
  return ops;
}

/** Flips one bit of a file in place. */
export async function flipBit(file: string, offset: number, bit = 0): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await handle.read(b, 0, 1, offset);
    b[0] = (b[0] ?? 0) ^ (1 << bit);
    await handle.write(b, 0, 1, offset);
  } finally {
    await handle.close();
  }
}

/** Lists a directory, sorted. */
export async function ls(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).sort();
}

/**
 * Puts a backup into storage the way the workflow does (copy, then manifest), with a synthetic
 * checkpoint taken at `createdAt`. Returns its name and manifest.
 */
export async function makeBackup(
  storage: CheckpointStorage,
  scratchDir: string,
  createdAt: Date,
  options: { verified?: boolean; seed?: number; tensorSizes?: number[] } = {},
): Promise<{ name: string; manifest: BackupManifest }> {
  const source = path.join(scratchDir, `src-${createdAt.getTime()}.pt`);
  await writeSyntheticCheckpoint(source, {
    seed: options.seed ?? createdAt.getTime() / 60_000,
    tensorSizes: options.tensorSizes,
  });
  const name = backupBaseName(createdAt, `run${createdAt.getTime() % 100_000}`);
  const copy = await copyFileToStorage(source, storage, name);
  const verified = options.verified ?? true;
  const manifest = {
    schemaVersion: 1 as const,
    name,
    location: storage.describe(name),
    size: copy.size,
    sha256: copy.sha256,
    createdAt: createdAt.toISOString(),
    verifiedAt: createdAt.toISOString(),
    verified,
    source: { kind: 'newest-file' as const, ...copy.source },
    checks: { size: true, sha256: true, structure: verified, command: 'skipped' as const },
  };
  await storage.writeSmall(manifestNameFor(name), serializeManifest(manifest));
  await fs.rm(source);
  return { name, manifest };
}

/**
 * Puts the file `source` into storage as a verified backup of `format` taken at `createdAt`, as the
 * checkpoint workflow does (copy, then manifest); a slot backup records the model and context size.
 */
export async function putVerifiedBackup(
  storage: CheckpointStorage,
  source: string,
  createdAt: Date,
  format: CheckpointFormat,
  slot?: SlotIdentity,
): Promise<{ name: string; manifest: BackupManifest }> {
  const name = backupBaseName(createdAt, `run${createdAt.getTime() % 100_000}`, format);
  const copy = await copyFileToStorage(source, storage, name);
  const manifest: BackupManifest = {
    schemaVersion: 1,
    name,
    location: storage.describe(name),
    format,
    size: copy.size,
    sha256: copy.sha256,
    createdAt: createdAt.toISOString(),
    verifiedAt: createdAt.toISOString(),
    verified: true,
    source: { kind: slot ? 'llama-slot' : 'newest-file', ...copy.source },
    checks: { size: true, sha256: true, structure: true, command: 'skipped' },
    ...(slot && { slot: { id: 0, ...slot } }),
  };
  await storage.writeSmall(manifestNameFor(name), serializeManifest(manifest));
  return { name, manifest };
}
