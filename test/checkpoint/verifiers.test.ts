import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadVerifiers } from '../../src/checkpoint/verifiers.js';
import { ConfigError } from '../../src/errors.js';
import { tempDir } from './helpers.js';

describe('checkpoint verifiers file (FLEETMEDIC_CHECKPOINT_VERIFIERS)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await tempDir()));
  after(() => cleanup());

  async function write(name: string, text: string): Promise<string> {
    const file = path.join(dir, name);
    await fs.writeFile(file, text);
    return file;
  }

  it('reads named verifiers with their argv and timeout', async () => {
    const file = await write(
      'ok.yaml',
      'verifiers:\n  torch-load:\n    argv: [python3, /opt/verify.py, "{path}"]\n    timeoutMs: 60000\n',
    );
    const verifiers = await loadVerifiers(file);
    assert.deepEqual(verifiers.get('torch-load'), {
      argv: ['python3', '/opt/verify.py', '{path}'],
      timeoutMs: 60000,
    });
  });

  const bad: Array<[string, string, RegExp]> = [
    ['a command as one string', 'verifiers:\n  v:\n    argv: "python3 v.py"\n', /verifiers\.v\.argv/],
    ['an empty argv', 'verifiers:\n  v:\n    argv: []\n', /verifiers\.v\.argv/],
    [
      'a name that is not a name',
      'verifiers:\n  "../x":\n    argv: [true]\n',
      /a name of lower-case letters/,
    ],
    ['an unknown field', 'verifiers:\n  v:\n    argv: [true]\n    shell: true\n', /shell/],
  ];
  for (const [what, text, message] of bad) {
    it(`refuses ${what}, naming the file and the field`, async () => {
      const file = await write('bad.yaml', text);
      await assert.rejects(
        loadVerifiers(file),
        (err: Error) => err instanceof ConfigError && err.message.includes(file) && message.test(err.message),
      );
    });
  }
});
