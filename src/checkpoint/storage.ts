import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FailureType } from '../errors.js';
import { CheckpointError, errnoCode, storageErrorFrom } from './errors.js';
import type { RandomAccessReader } from './pump.js';

/** An object in backup storage. */
export interface StoredObject {
  readonly name: string;
  readonly size: number;
  readonly modifiedMs: number;
  /** An upload that was never committed (a copy in progress, or left by a killed attempt). */
  readonly partial: boolean;
}

/**
 * A new object being written. Nothing is visible under its name until {@link commit} returns; until
 * then the bytes live under a partial name that no reader treats as a backup.
 */
export interface ObjectWriter {
  readonly name: string;
  /** Where the uncommitted bytes are, when the storage has local paths (a restore verifies them there). */
  readonly partialPath?: string;
  /** Writes `chunk` at `position`; writes of different ranges may run concurrently. */
  write(chunk: Uint8Array, position: number): Promise<void>;
  /**
   * Fills the object with a whole local file copied by the kernel (copy_file_range, or a reflink where
   * the filesystem has them) instead of through user space, and flushes it, calling `onProgress` with
   * the bytes copied so far. Only storages on a local or shared filesystem have it; callers fall back
   * to {@link write}.
   */
  copyFromLocalFile?(sourcePath: string, onProgress?: (bytes: number) => void): Promise<void>;
  /** Makes the object durable and visible under its name, atomically. */
  commit(): Promise<void>;
  /** Drops the partial object; safe to call more than once and after a failed commit. */
  abort(): Promise<void>;
}

/**
 * Where backups live: one small interface so the shared filesystem used now can be swapped for an
 * object store later (multipart upload = {@link ObjectWriter}, ranged GET = {@link RandomAccessReader}).
 * Names are flat (`[A-Za-z0-9][A-Za-z0-9._-]*`), never paths.
 */
export interface CheckpointStorage {
  /** Human-readable location, e.g. `/mnt/backups` or `s3://bucket/prefix`. */
  readonly location: string;
  /** Where a committed object is, for manifests and logs (a path or a URL). */
  describe(name: string): string;
  /** A path a local process (the user's verify command, a replica) can read, if the storage has one. */
  localPath(name: string): string | undefined;
  /** Every object, partial ones included; an empty list when the location does not exist yet. */
  list(): Promise<StoredObject[]>;
  openWrite(name: string): Promise<ObjectWriter>;
  openRead(name: string): Promise<RandomAccessReader>;
  /** Writes a small object (a manifest) atomically and durably. */
  writeSmall(name: string, data: Uint8Array): Promise<void>;
  readSmall(name: string): Promise<Buffer>;
  /** Removes an object; removing a missing object is not an error. */
  remove(name: string): Promise<void>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;
const PARTIAL = /^\.(.+)\.[0-9a-f]{12}\.partial$/;

/** Throws unless `name` is a valid flat object name. */
export function assertObjectName(name: string): void {
  if (!NAME.test(name)) {
    throw new CheckpointError(
      FailureType.InvalidInput,
      `invalid backup object name ${JSON.stringify(name)}: expected [A-Za-z0-9][A-Za-z0-9._-]*, no path separators`,
    );
  }
}

/** The parts of an open file {@link FilesystemStorage} uses; Node's `FileHandle` has them all. */
export interface FileHandleLike {
  write(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesWritten: number }>;
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  sync(): Promise<void>;
  stat(): Promise<{ size: number; mtimeMs: number }>;
  close(): Promise<void>;
}

/**
 * The file-system calls {@link FilesystemStorage} makes. The default is `node:fs/promises`; tests pass
 * a wrapper that injects ENOSPC or EACCES at a chosen call, since they run as root and chmod would not
 * stop them.
 */
export interface FsOps {
  open(file: string, flags: string, mode?: number): Promise<FileHandleLike>;
  rename(from: string, to: string): Promise<void>;
  unlink(file: string): Promise<void>;
  readdir(dir: string): Promise<string[]>;
  stat(file: string): Promise<{ size: number; mtimeMs: number; isFile(): boolean }>;
  mkdir(dir: string, options: { recursive: true }): Promise<unknown>;
  readFile(file: string): Promise<Buffer>;
  /**
   * Copies a whole file in the kernel; without it, writes go through {@link FileHandleLike.write}.
   * The copy takes the source's mode: the caller sets the backup's own afterwards.
   */
  copyFile?(from: string, to: string): Promise<void>;
  chmod(file: string, mode: number): Promise<void>;
}

/** Backups and manifests: a checkpoint is the model's weights; only the worker's user reads them. */
const BACKUP_MODE = 0o600;

/** `node:fs/promises` as {@link FsOps}. */
export const nodeFsOps: FsOps = {
  open: (file, flags, mode) => fs.open(file, flags, mode),
  rename: (from, to) => fs.rename(from, to),
  unlink: (file) => fs.unlink(file),
  readdir: (dir) => fs.readdir(dir),
  stat: (file) => fs.stat(file),
  mkdir: (dir, options) => fs.mkdir(dir, options),
  readFile: (file) => fs.readFile(file),
  // FICLONE: a reflink where the filesystem can (btrfs, XFS), else libuv falls back to copy_file_range.
  copyFile: (from, to) => fs.copyFile(from, to, fsConstants.COPYFILE_FICLONE),
  chmod: (file, mode) => fs.chmod(file, mode),
};

/** How often a kernel copy reports progress (by looking at the size of the file it writes). */
const COPY_PROGRESS_INTERVAL_MS = 500;

/**
 * Backup storage in a directory of a (shared) filesystem. A write goes to `.<name>.<random>.partial`, is
 * fsynced, renamed to `<name>`, and the directory is fsynced, so after a crash a name holds either
 * nothing or the complete file. errno codes map to {@link CheckpointError}s: ENOSPC, EACCES, EROFS are
 * permanent.
 *
 * @example const storage = new FilesystemStorage('/mnt/backups/llama');
 */
export class FilesystemStorage implements CheckpointStorage {
  readonly location: string;
  private readonly fs: FsOps;
  private ensured: Promise<void> | undefined;

  constructor(directory: string, options: { fs?: FsOps } = {}) {
    if (!path.isAbsolute(directory)) {
      throw new CheckpointError(
        FailureType.InvalidInput,
        `backup directory must be an absolute path, got ${JSON.stringify(directory)}`,
      );
    }
    this.location = path.resolve(directory);
    this.fs = options.fs ?? nodeFsOps;
  }

  describe(name: string): string {
    assertObjectName(name);
    return path.join(this.location, name);
  }

  localPath(name: string): string {
    return this.describe(name);
  }

  async list(): Promise<StoredObject[]> {
    let names: string[];
    try {
      names = await this.fs.readdir(this.location);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw storageErrorFrom(err, 'list', this.location);
    }
    const objects: StoredObject[] = [];
    for (const name of names) {
      const partial = PARTIAL.test(name);
      if (!partial && !NAME.test(name)) continue;
      try {
        const stat = await this.fs.stat(path.join(this.location, name));
        if (stat.isFile()) objects.push({ name, size: stat.size, modifiedMs: stat.mtimeMs, partial });
      } catch (err) {
        // Removed between readdir and stat (retention in another run, an aborted write): not there.
        if (errnoCode(err) !== 'ENOENT') throw storageErrorFrom(err, 'stat', path.join(this.location, name));
      }
    }
    return objects.sort((a, b) => a.name.localeCompare(b.name));
  }

  async openWrite(name: string): Promise<ObjectWriter> {
    const target = this.describe(name);
    await this.ensureDirectory();
    const temp = path.join(this.location, `.${name}.${randomBytes(6).toString('hex')}.partial`);
    let handle: FileHandleLike;
    try {
      handle = await this.fs.open(temp, 'wx', BACKUP_MODE);
    } catch (err) {
      throw storageErrorFrom(err, 'create', temp);
    }
    let open = true;
    let committed = false;
    const close = async (): Promise<void> => {
      if (!open) return;
      open = false;
      await handle.close();
    };
    return {
      name,
      partialPath: temp,
      write: async (chunk, position) => {
        try {
          for (let done = 0; done < chunk.length;) {
            const { bytesWritten } = await handle.write(chunk, done, chunk.length - done, position + done);
            if (bytesWritten <= 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
            done += bytesWritten;
          }
        } catch (err) {
          throw storageErrorFrom(err, 'write', temp);
        }
      },
      ...(this.fs.copyFile && {
        copyFromLocalFile: async (sourcePath: string, onProgress?: (bytes: number) => void) => {
          const copyFile = this.fs.copyFile?.bind(this.fs);
          if (!copyFile) throw new Error('unreachable: no copyFile');
          const timer =
            onProgress &&
            setInterval(() => {
              this.fs.stat(temp).then(
                (s) => onProgress(s.size),
                () => undefined,
              );
            }, COPY_PROGRESS_INTERVAL_MS);
          try {
            // Replaces the content of the partial file opened above (same inode, same handle).
            await copyFile(sourcePath, temp);
            // copyFile gives the partial file the source's mode; a backup stays the worker's own.
            await this.fs.chmod(temp, BACKUP_MODE);
          } catch (err) {
            throw storageErrorFrom(err, 'copy', `${sourcePath} -> ${temp}`);
          } finally {
            if (timer) clearInterval(timer);
          }
          try {
            // Flush now, while the caller may still be hashing, rather than in commit.
            await handle.sync();
          } catch (err) {
            throw storageErrorFrom(err, 'fsync', temp);
          }
        },
      }),
      commit: async () => {
        try {
          await handle.sync();
          await close();
        } catch (err) {
          throw storageErrorFrom(err, 'fsync', temp);
        }
        try {
          await this.fs.rename(temp, target);
        } catch (err) {
          throw storageErrorFrom(err, 'rename', `${temp} -> ${target}`);
        }
        committed = true;
        await this.syncDirectory();
      },
      abort: async () => {
        await close().catch(() => undefined);
        if (committed) return;
        try {
          await this.fs.unlink(temp);
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') throw storageErrorFrom(err, 'remove', temp);
        }
      },
    };
  }

  async openRead(name: string): Promise<RandomAccessReader> {
    const file = this.describe(name);
    let handle: FileHandleLike;
    try {
      handle = await this.fs.open(file, 'r');
    } catch (err) {
      throw storageErrorFrom(err, 'open', file);
    }
    try {
      const { size } = await handle.stat();
      return {
        size,
        read: async (buffer, offset, length, position) => {
          try {
            return (await handle.read(buffer, offset, length, position)).bytesRead;
          } catch (err) {
            throw storageErrorFrom(err, 'read', file);
          }
        },
        close: () => handle.close(),
      };
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw storageErrorFrom(err, 'stat', file);
    }
  }

  async writeSmall(name: string, data: Uint8Array): Promise<void> {
    const writer = await this.openWrite(name);
    try {
      await writer.write(data, 0);
      await writer.commit();
    } catch (err) {
      await writer.abort().catch(() => undefined);
      throw err;
    }
  }

  async readSmall(name: string): Promise<Buffer> {
    const file = this.describe(name);
    try {
      return await this.fs.readFile(file);
    } catch (err) {
      throw storageErrorFrom(err, 'read', file);
    }
  }

  async remove(name: string): Promise<void> {
    const file = PARTIAL.test(name) ? path.join(this.location, name) : this.describe(name);
    try {
      await this.fs.unlink(file);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw storageErrorFrom(err, 'remove', file);
    }
  }

  private ensureDirectory(): Promise<void> {
    this.ensured ??= this.fs.mkdir(this.location, { recursive: true }).then(
      () => undefined,
      (err: unknown) => {
        this.ensured = undefined;
        throw storageErrorFrom(err, 'create directory', this.location);
      },
    );
    return this.ensured;
  }

  /** Makes a rename durable: without it a power cut can bring back the old directory entry. */
  private async syncDirectory(): Promise<void> {
    let dir: FileHandleLike | undefined;
    try {
      dir = await this.fs.open(this.location, 'r');
      await dir.sync();
    } catch (err) {
      throw storageErrorFrom(err, 'fsync directory', this.location);
    } finally {
      await dir?.close().catch(() => undefined);
    }
  }
}
