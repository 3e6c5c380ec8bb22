import assert from 'node:assert/strict';
import { appendFileSync, renameSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { copyFileToStorage } from '../../src/checkpoint/copy.js';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import { FailureType } from '../../src/errors.js';
import { FilesystemStorage } from '../../src/checkpoint/storage.js';
import { writeSyntheticCheckpoint } from '../../src/checkpoint/synthetic.js';
import { faultyFs, ls, tempDir, type Fault } from './helpers.js';

describe('FilesystemStorage', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  it('writes under a partial name and makes the object visible only on commit', async () => {
    const storage = new FilesystemStorage(path.join(dir, 'backups'));
    assert.deepEqual(await storage.list(), [], 'a missing directory lists as empty');
    const writer = await storage.openWrite('a.pt');
    await writer.write(Buffer.from('world'), 5);
    await writer.write(Buffer.from('hello'), 0);
    const before = await storage.list();
    assert.equal(before.length, 1);
    assert.equal(before[0]?.partial, true);
    assert.match(before[0]?.name ?? '', /^\.a\.pt\.[0-9a-f]{12}\.partial$/);
    await writer.commit();
    assert.deepEqual(
      (await storage.list()).map((o) => [o.name, o.size, o.partial]),
      [['a.pt', 10, false]],
    );
    assert.equal((await storage.readSmall('a.pt')).toString(), 'helloworld');
  });

  it('abort removes the partial file and is idempotent', async () => {
    const storage = new FilesystemStorage(dir);
    const writer = await storage.openWrite('a.pt');
    await writer.write(Buffer.from('x'), 0);
    await writer.abort();
    await writer.abort();
    assert.deepEqual(await ls(dir), []);
  });

  it('refuses names that are paths or hidden files', async () => {
    const storage = new FilesystemStorage(dir);
    for (const bad of ['../x.pt', 'a/b.pt', '.hidden', '', 'a b.pt']) {
      await assert.rejects(
        storage.openWrite(bad),
        (err) => err instanceof CheckpointError && err.code === FailureType.InvalidInput && err.permanent,
      );
    }
    assert.throws(() => new FilesystemStorage('relative/dir'), /absolute path/);
  });

  it('openRead reads positioned ranges', async () => {
    const storage = new FilesystemStorage(dir);
    await storage.writeSmall('m.json', Buffer.from('0123456789'));
    const reader = await storage.openRead('m.json');
    const b = Buffer.alloc(4);
    assert.equal(await reader.read(b, 0, 4, 3), 4);
    assert.equal(b.toString(), '3456');
    await reader.close();
  });

  const faults: Array<[Fault, string]> = [
    [{ on: 'create', code: 'EACCES' }, 'STORAGE_DENIED'],
    [{ on: 'write', code: 'ENOSPC', afterBytes: 3000 }, 'STORAGE_FULL'],
    [{ on: 'write', code: 'EDQUOT', afterBytes: 0 }, 'STORAGE_FULL'],
    [{ on: 'rename', code: 'EROFS' }, 'STORAGE_DENIED'],
    [{ on: 'fsync', code: 'ENOSPC' }, 'STORAGE_FULL'],
  ];
  for (const [[fault, code], kernelCopy] of faults.flatMap((f) =>
    [true, false].map((k) => [f, k] as const),
  )) {
    const path_ = kernelCopy ? 'kernel copy' : 'streamed copy';
    it(`${fault.code} on ${fault.on} (${path_}): a permanent ${code} error, no partial file, previous objects untouched`, async () => {
      const source = path.join(dir, 'model.pt');
      await writeSyntheticCheckpoint(source, { tensorSizes: [20_000] });
      const backups = path.join(dir, 'backups');
      await new FilesystemStorage(backups).writeSmall('previous.pt', Buffer.from('previous backup'));
      const storage = new FilesystemStorage(backups, { fs: faultyFs(fault, { kernelCopy }) });
      await assert.rejects(copyFileToStorage(source, storage, 'next.pt', { chunkSize: 1024 }), (err) => {
        assert.ok(err instanceof CheckpointError, String(err));
        assert.equal(err.code, code);
        assert.equal(err.permanent, true);
        assert.match(err.message, new RegExp(fault.code));
        return true;
      });
      assert.deepEqual(await ls(backups), ['previous.pt']);
      assert.equal(await fs.readFile(path.join(backups, 'previous.pt'), 'utf8'), 'previous backup');
    });
  }

  it('EIO is retryable', async () => {
    const source = path.join(dir, 'model.pt');
    await writeSyntheticCheckpoint(source);
    const storage = new FilesystemStorage(path.join(dir, 'b'), {
      fs: faultyFs({ on: 'write', code: 'EIO' }),
    });
    await assert.rejects(
      copyFileToStorage(source, storage, 'next.pt'),
      (err) => err instanceof CheckpointError && err.code === 'STORAGE_IO' && !err.permanent,
    );
  });
});

describe('copyFileToStorage', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  it('copies with the sha256 of the file, kernel copy or streamed, in chunks smaller and larger than the file', async () => {
    const source = path.join(dir, 'model.pt');
    const written = await writeSyntheticCheckpoint(source, { tensorSizes: [100_000, 3] });
    for (const [chunkSize, kernelCopy] of [
      [1000, true],
      [1 << 20, true],
      [1000, false],
      [1 << 20, false],
    ] as const) {
      const target = path.join(dir, `b${chunkSize}-${kernelCopy}`);
      const storage = kernelCopy
        ? new FilesystemStorage(target)
        : new FilesystemStorage(target, { fs: faultyFs(undefined, { kernelCopy: false }) });
      const progress: number[] = [];
      const result = await copyFileToStorage(source, storage, 'copy.pt', {
        chunkSize,
        onProgress: (done) => progress.push(done),
      });
      assert.equal(result.sha256, written.sha256);
      assert.equal(result.size, written.size);
      assert.deepEqual(await fs.readFile(path.join(target, 'copy.pt')), await fs.readFile(source));
      assert.equal(progress.at(-1), written.size);
      assert.ok(
        progress.every((v, i) => i === 0 || v >= (progress[i - 1] ?? 0)),
        'progress never goes back',
      );
    }
  });

  // Streamed, the copy reads through the descriptor it opened: a file renamed over the path mid-copy
  // does not affect it (it backs up the complete old file). The kernel copy opens the path again, so
  // there a rename must be caught.
  const changes: Array<[boolean, 'in place' | 'rename', RegExp | undefined]> = [
    [true, 'in place', /was changed while/],
    [true, 'rename', /was replaced while/],
    [false, 'in place', /was changed while/],
    [false, 'rename', undefined],
  ];
  for (const [kernelCopy, change, failure] of changes) {
    const how = kernelCopy ? 'kernel copy' : 'streamed copy';
    const outcome = failure ? 'fails retryably, leaving nothing' : 'backs up the complete old file';
    it(`source ${change === 'rename' ? 'replaced by a rename' : 'written over in place'} mid-copy (${how}): ${outcome}`, async () => {
      const source = path.join(dir, 'model.pt');
      const old = await writeSyntheticCheckpoint(source, { tensorSizes: [200_000] });
      const fresh = path.join(dir, 'fresh.pt');
      await writeSyntheticCheckpoint(fresh, { tensorSizes: [200_000], seed: 9 });
      const backups = path.join(dir, 'b');
      const storage = new FilesystemStorage(backups, { fs: faultyFs(undefined, { kernelCopy }) });
      let touched = false;
      const copying = copyFileToStorage(source, storage, 'copy.pt', {
        chunkSize: 4096,
        onProgress: (done) => {
          // The model server's torch.save (in place), or a save-then-rename, in the middle of the copy.
          if (touched || done < 50_000) return;
          touched = true;
          if (change === 'in place') appendFileSync(source, 'more');
          else renameSync(fresh, source);
        },
      });
      if (failure) {
        await assert.rejects(
          copying,
          (err) =>
            err instanceof CheckpointError &&
            err.code === 'SOURCE_CHANGED' &&
            !err.permanent &&
            failure.test(err.message),
        );
        assert.deepEqual(await ls(backups), []);
      } else {
        assert.equal((await copying).sha256, old.sha256);
      }
      assert.ok(touched);
    });
  }

  it('a missing source is retryable, an unreadable one is not', async () => {
    const storage = new FilesystemStorage(path.join(dir, 'b'));
    await assert.rejects(
      copyFileToStorage(path.join(dir, 'nope.pt'), storage, 'x.pt'),
      (err) => err instanceof CheckpointError && err.code === 'CHECKPOINT_SOURCE' && !err.permanent,
    );
    await assert.rejects(
      copyFileToStorage(dir, storage, 'x.pt'),
      (err) => err instanceof CheckpointError && err.code === 'CHECKPOINT_SOURCE' && err.permanent,
    );
  });
});
