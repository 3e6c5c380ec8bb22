import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { findInference, type InferenceArtifacts } from '../../src/toolchain/inference.js';

/**
 * The inference artifacts, or why they are absent: the tests that need them skip with that reason
 * (`npm run toolchain:inference` provides them).
 */
export async function inferenceOrSkip(): Promise<{ artifacts?: InferenceArtifacts; skip: string | false }> {
  const found = await findInference({ cacheDir: loadConfig().cacheDir });
  if (found.missing === undefined) return { artifacts: found.artifacts, skip: false };
  const skip = `llama-server or the inference models are absent: ${found.missing}`;
  process.stderr.write(`# skipping real llama.cpp tests: ${skip}\n`);
  return { skip };
}

/** A llama-server process bound to 127.0.0.1. */
export interface LlamaServer {
  readonly url: string;
  readonly pid: number;
  /** Where its output goes. */
  readonly logFile: string;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
}

const children = new Set<ChildProcess>();
const tempDirs: string[] = [];
const killAll = () => {
  for (const child of children) child.kill('SIGKILL');
};
// A test process that dies without running `after` still takes its servers with it.
process.on('exit', killAll);
after(async () => {
  await Promise.all([...children].map((c) => stop(c)));
  for (const dir of tempDirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

/** A temporary directory removed after the file. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** What {@link startLlamaServer} runs. */
export interface LlamaServerOptions {
  readonly binary: string;
  readonly model: string;
  /** `--slot-save-path`; without it the slot endpoints answer 501. */
  readonly slotDir?: string;
  /** Context size, shared by the slots (default 2048). */
  readonly ctx?: number;
  /** Parallel slots (default 2). */
  readonly slots?: number;
  readonly readyTimeoutMs?: number;
}

/**
 * Starts llama-server on a free loopback port with one thread, and waits until `/health` answers
 * 200 (503 "Loading model" before). Killed after the file, also when a test fails.
 */
export async function startLlamaServer(options: LlamaServerOptions): Promise<LlamaServer> {
  const port = await freePort();
  const logDir = await tempDir('fleetmedic-llama-log-');
  const logFile = path.join(logDir, `llama-server-${port}.log`);
  const args = [
    ...['--model', options.model, '--host', '127.0.0.1', '--port', String(port)],
    ...['--threads', '1', '--threads-batch', '1', '--ctx-size', String(options.ctx ?? 2048)],
    ...['--parallel', String(options.slots ?? 2), '--no-warmup'],
    ...(options.slotDir ? ['--slot-save-path', options.slotDir] : []),
  ];
  const child = spawn(options.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const log = createWriteStream(logFile);
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`llama-server exited (${child.exitCode ?? child.signalCode}): ${await tail(logFile)}`);
    }
    const status = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) }).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) break;
    if (Date.now() > deadline) {
      await stop(child);
      throw new Error(
        `llama-server at ${url} not healthy in time (last status ${status}): ${await tail(logFile)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url, pid: child.pid!, logFile, kill: () => stop(child) };
}

async function tail(file: string): Promise<string> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  return text.split('\n').slice(-15).join('\n');
}

/** Posts JSON and parses the JSON answer. */
export async function postJson(
  url: string,
  body: unknown,
  timeoutMs = 10_000,
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { raw: text };
  }
  return { status: res.status, headers: res.headers, json };
}
