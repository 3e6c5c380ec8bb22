import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import { manifestNameFor } from '../../src/checkpoint/names.js';
import { restoreCheckpoint } from '../../src/checkpoint/restore.js';
import { FilesystemStorage } from '../../src/checkpoint/storage.js';
import { flipBit, ls, makeBackup, tempDir } from './helpers.js';

const t = (minute: number) => new Date(Date.UTC(2025, 5, 1, 11, minute));

describe('restoreCheckpoint', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let backups: string;
  let storage: FilesystemStorage;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    backups = path.join(dir, 'backups');
    storage = new FilesystemStorage(backups);
  });
  afterEach(() => cleanup());

  it('restores the newest verified backup to the destination, atomically', async () => {
    await makeBackup(storage, dir, t(5));
    const newest = await makeBackup(storage, dir, t(10));
    await makeBackup(storage, dir, t(15), { verified: false });
    const destination = path.join(dir, 'replica', 'model.pt');
    await fs.mkdir(path.dirname(destination));
    const result = await restoreCheckpoint(storage, { destination });
    assert.equal(result.name, newest.name);
    assert.equal(result.path, destination);
    assert.deepEqual(await fs.readFile(destination), await fs.readFile(path.join(backups, newest.name)));
    assert.deepEqual(await ls(path.dirname(destination)), ['model.pt'], 'no partial file left');
    assert.deepEqual(
      result.attempts.map((a) => ({ name: a.name, ok: a.ok, reason: a.reason })),
      [{ name: newest.name, ok: true, reason: undefined }],
    );
    assert.deepEqual(
      result.attempts[0]?.steps.map((s) => s.step),
      ['read', 'commit'],
      'each step is timed',
    );
  });

  it('without a destination, verifies in place and returns the backup path', async () => {
    const only = await makeBackup(storage, dir, t(5));
    const result = await restoreCheckpoint(storage);
    assert.equal(result.path, path.join(backups, only.name));
  });

  it('falls back to the previous backup when the newest fails re-verification (bit rot)', async () => {
    const previous = await makeBackup(storage, dir, t(5));
    const newest = await makeBackup(storage, dir, t(10), { tensorSizes: [100_000] });
    await flipBit(path.join(backups, newest.name), 50_000, 3);
    const lines: string[] = [];
    const destination = path.join(dir, 'model.pt');
    const result = await restoreCheckpoint(storage, { destination, log: (l) => lines.push(l) });
    assert.equal(result.name, previous.name);
    assert.equal(result.attempts.length, 2);
    assert.equal(result.attempts[0]?.ok, false);
    assert.match(result.attempts[0]?.reason ?? '', /CRC-32/);
    assert.ok(lines.some((l) => l.includes(`skipping ${newest.name}`)));
    assert.deepEqual(await fs.readFile(destination), await fs.readFile(path.join(backups, previous.name)));
  });

  it('falls back when the newest backup is truncated or its sha256 differs from the manifest', async () => {
    const previous = await makeBackup(storage, dir, t(5));
    const truncated = await makeBackup(storage, dir, t(10));
    const swapped = await makeBackup(storage, dir, t(15));
    await fs.truncate(path.join(backups, truncated.name), truncated.manifest.size - 10);
    // Same size, valid structure, different bytes: only the sha256 catches it.
    await fs.copyFile(path.join(backups, previous.name), path.join(backups, swapped.name));
    const result = await restoreCheckpoint(storage);
    assert.equal(result.name, previous.name);
    // The truncated one is not even a candidate: its size no longer matches its manifest.
    assert.deepEqual(
      result.attempts.map((a) => a.name),
      [swapped.name, previous.name],
    );
    assert.match(result.attempts[0]?.reason ?? '', /sha256/);
  });

  it('falls back when the verify command rejects the newest', async () => {
    const previous = await makeBackup(storage, dir, t(5));
    const newest = await makeBackup(storage, dir, t(10));
    const script = `test "$(basename "$1")" != "${newest.name}" || { echo "bad keys" >&2; exit 3; }`;
    // The command runs on the restored file, named like the destination's partial file: give it in place.
    const result = await restoreCheckpoint(storage, {
      verifyCommand: ['sh', '-c', script, 'verify', '{path}'],
    });
    assert.equal(result.name, previous.name);
    assert.match(result.attempts[0]?.reason ?? '', /exited with 3: bad keys/);
  });

  it('fails with NO_VERIFIED_CHECKPOINT when nothing passes, listing why', async () => {
    await assert.rejects(restoreCheckpoint(storage), (err) => {
      assert.ok(err instanceof CheckpointError);
      assert.equal(err.code, 'NO_VERIFIED_CHECKPOINT');
      assert.match(err.message, /no verified checkpoint/);
      return true;
    });
    const only = await makeBackup(storage, dir, t(5), { tensorSizes: [10_000] });
    await flipBit(path.join(backups, only.name), 5000);
    await assert.rejects(restoreCheckpoint(storage), new RegExp(`${only.name}: .*CRC-32`));
    await makeBackup(storage, dir, t(6), { verified: false });
    await assert.rejects(restoreCheckpoint(storage), /passed re-verification/);
  });

  it('ignores a manifest that is not valid, and backups without a manifest', async () => {
    const good = await makeBackup(storage, dir, t(5));
    const broken = await makeBackup(storage, dir, t(10));
    await fs.writeFile(path.join(backups, manifestNameFor(broken.name)), '{"verified": true}');
    const orphan = await makeBackup(storage, dir, t(15));
    await fs.rm(path.join(backups, manifestNameFor(orphan.name)));
    assert.equal((await restoreCheckpoint(storage)).name, good.name);
  });

  it('a destination error stops the restore instead of trying older backups', async () => {
    await makeBackup(storage, dir, t(5));
    await makeBackup(storage, dir, t(10));
    // The destination's parent is a file: ENOTDIR, which no older backup can fix.
    await fs.writeFile(path.join(dir, 'not-a-dir'), '');
    await assert.rejects(
      restoreCheckpoint(storage, { destination: path.join(dir, 'not-a-dir', 'model.pt') }),
      (err) =>
        err instanceof CheckpointError && err.code === 'STORAGE_IO' && /EEXIST|ENOTDIR/.test(err.message),
    );
  });
});
