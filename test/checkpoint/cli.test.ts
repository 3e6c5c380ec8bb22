import { Command } from 'commander';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { registerCheckpointCommands } from '../../src/cli/commands/checkpoint.js';
import { addGlobalFlags } from '../../src/cli/context.js';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import { FilesystemStorage } from '../../src/checkpoint/storage.js';
import { writeSyntheticCheckpoint } from '../../src/checkpoint/synthetic.js';
import { ggufBytes, slotBytes } from './formats.js';
import { flipBit, makeBackup, tempDir } from './helpers.js';

async function cli(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const program = new Command('fleetmedic').exitOverride().configureOutput({ writeErr: () => undefined });
  addGlobalFlags(program);
  registerCheckpointCommands(program, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  await program.parseAsync(['node', 'fleetmedic', ...args]);
  return { stdout, stderr };
}

describe('fleetmedic checkpoint (local commands)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  it('verify prints size, sha256 and entries of a good checkpoint', async () => {
    const file = path.join(dir, 'model.pt');
    const { sha256, size } = await writeSyntheticCheckpoint(file);
    const { stdout } = await cli('checkpoint', 'verify', file, '--sha256', sha256, '--size', String(size));
    assert.match(stdout, /^ok: /);
    assert.match(stdout, new RegExp(`sha256 +${sha256}`));
    assert.match(stdout, /entries +6 under archive\//);
    const json = JSON.parse((await cli('checkpoint', 'verify', file, '--json')).stdout) as {
      ok: boolean;
      size: number;
    };
    assert.deepEqual([json.ok, json.size], [true, size]);
  });

  it('verify --format gguf and --format llama-slot check those formats; a bad magic is refused', async () => {
    const model = path.join(dir, 'model.gguf');
    await fs.writeFile(model, ggufBytes());
    assert.match(
      (await cli('checkpoint', 'verify', model, '--format', 'gguf')).stdout,
      /gguf +v3, llama, 2 tensors/,
    );
    await assert.rejects(cli('checkpoint', 'verify', model), CheckpointError, 'torch is the default');
    const slot = path.join(dir, 'slot0.bin');
    await fs.writeFile(slot, slotBytes());
    assert.match(
      (await cli('checkpoint', 'verify', slot, '--format', 'llama-slot')).stdout,
      /slot +v4, 7 tokens/,
    );
    await assert.rejects(cli('checkpoint', 'verify', slot, '--format', 'gguf'), /magic is/);
    await assert.rejects(cli('checkpoint', 'verify', slot, '--format', 'onnx'), /Allowed choices/);
  });

  it('verify fails with a clear error on a flipped bit, a truncation and a failing command', async () => {
    const file = path.join(dir, 'model.pt');
    await writeSyntheticCheckpoint(file, { tensorSizes: [10_000] });
    await assert.rejects(
      cli('checkpoint', 'verify', file, '--verify-command', 'false'),
      /verify command exited with 1/,
    );
    await flipBit(file, 3000);
    await assert.rejects(
      cli('checkpoint', 'verify', file),
      (err) => err instanceof CheckpointError && /CRC-32/.test(err.message),
    );
    await fs.truncate(file, 100);
    await assert.rejects(cli('checkpoint', 'verify', file), /truncated or not a zip archive/);
    await assert.rejects(cli('checkpoint', 'verify', path.join(dir, 'missing.pt')), /cannot open/);
  });

  it('restore writes the newest verified backup, and list shows what is there', async () => {
    const backups = path.join(dir, 'backups');
    const storage = new FilesystemStorage(backups);
    const older = await makeBackup(storage, dir, new Date('2025-06-01T11:00:00Z'));
    const newer = await makeBackup(storage, dir, new Date('2025-06-01T11:05:00Z'), { tensorSizes: [10_000] });
    await flipBit(path.join(backups, newer.name), 5000);
    const to = path.join(dir, 'model.pt');
    const { stdout, stderr } = await cli('checkpoint', 'restore', '--backup-dir', backups, '--to', to);
    assert.match(stdout, new RegExp(`restored ${older.name}`));
    assert.match(stdout, new RegExp(`skipped +${newer.name}: .*CRC-32`));
    assert.match(stderr, /\[restore\] skipping/);
    assert.deepEqual(await fs.readFile(to), await fs.readFile(path.join(backups, older.name)));
    const listed = (await cli('checkpoint', 'list', '--backup-dir', backups)).stdout;
    assert.match(listed, new RegExp(older.name));
    await assert.rejects(
      cli('checkpoint', 'restore', '--backup-dir', path.join(dir, 'empty')),
      /no verified checkpoint/,
    );
  });

  it('refuses bad flags before contacting anything', async () => {
    await assert.rejects(
      cli('checkpoint', 'restore', '--backup-dir', 'relative'),
      /must be an absolute path/,
    );
    await assert.rejects(
      cli('checkpoint', 'schedule', 'create', '--source-dir', '/ckpt', '--keep', '0'),
      /--keep must be an integer >= 1/,
    );
    await assert.rejects(cli('checkpoint', 'run-once', '--keep', '2'), /exactly one of --source-dir/);
    await assert.rejects(
      cli('checkpoint', 'schedule', 'create', '--source-dir', '/ckpt', '--every', 'often'),
      /--every|interval/,
    );
  });
});
