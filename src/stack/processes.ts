import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { PortInUseError, StackError } from '../errors.js';

/** A process the stack started, identified by pid and the binary it runs (guards against pid reuse). */
export interface ManagedProcess {
  readonly pid: number;
  readonly binary: string;
}

/**
 * Starts `binary` detached from this process (its own session, output to `logFile`), so it outlives the
 * CLI that started it. The caller records the pid to stop exactly this process later.
 */
export function startDetached(
  binary: string,
  args: readonly string[],
  options: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string },
): ManagedProcess {
  const fd = openSync(options.logFile, 'a');
  try {
    const child = spawn(binary, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    if (child.pid === undefined) throw new StackError(`could not start ${binary}`);
    child.unref();
    return { pid: child.pid, binary };
  } finally {
    closeSync(fd);
  }
}

/** True when a process `pid` exists (signal 0; any process, not only ours). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * True when `pid` is alive and still runs `binary` (a pid recorded before a reboot may now belong to
 * an unrelated process, which must never be signalled).
 */
export async function isRunning(proc: ManagedProcess): Promise<boolean> {
  try {
    process.kill(proc.pid, 0);
  } catch {
    return false;
  }
  try {
    const cmdline = await fs.readFile(`/proc/${proc.pid}/cmdline`, 'utf8');
    const argv0 = cmdline.split('\0')[0] ?? '';
    const stat = await fs.readFile(`/proc/${proc.pid}/stat`, 'utf8');
    // A zombie (state Z) has exited; it only waits for its parent to reap it.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return argv0 === proc.binary && state !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Stops a process the stack started: SIGTERM, then SIGKILL after `graceMs`. Does nothing when the pid
 * no longer runs the recorded binary. Resolves once the process is gone.
 */
export async function stopProcess(
  proc: ManagedProcess,
  graceMs = 10_000,
): Promise<'stopped' | 'not-running'> {
  if (!(await isRunning(proc))) return 'not-running';
  process.kill(proc.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!(await isRunning(proc))) return 'stopped';
    await sleep(100);
  }
  try {
    process.kill(proc.pid, 'SIGKILL');
  } catch {
    // Exited between the check and the signal.
  }
  for (let i = 0; i < 50 && (await isRunning(proc)); i++) await sleep(100);
  return 'stopped';
}

/** Resolves when nothing listens on host:port (by trying to bind it ourselves). */
export async function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Throws PortInUseError naming the component when its port is taken. */
export async function assertPortsFree(
  ports: ReadonlyArray<{ component: string; port: number }>,
): Promise<void> {
  for (const { component, port } of ports) {
    if (!(await isPortFree(port))) throw new PortInUseError(component, port);
  }
}

/** Polls `probe` until it returns true or `timeoutMs` passes; the error names what was awaited. */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  options: {
    timeoutMs: number;
    intervalMs?: number;
    onTimeout?: () => Promise<string>;
    /** Returns why waiting is pointless (the process exited), to fail at once instead of at the deadline. */
    abortIf?: () => Promise<string | undefined>;
  },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const abort = await options.abortIf?.();
    if (abort !== undefined) throw new StackError(`${what}: ${abort}`, { permanent: false });
    try {
      if (await probe()) return;
    } catch {
      // Not ready yet; the probe's errors are expected while a component starts.
    }
    if (Date.now() > deadline) {
      const extra = options.onTimeout ? `: ${await options.onTimeout()}` : '';
      throw new StackError(`${what} not ready after ${Math.round(options.timeoutMs / 1000)} s${extra}`);
    }
    await sleep(options.intervalMs ?? 200);
  }
}

/** The last `lines` lines of a log file, for error messages ('' when unreadable). */
export async function tailFile(file: string, lines = 15): Promise<string> {
  try {
    const text = await fs.readFile(file, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Picks `count` distinct ports that are free on 127.0.0.1, at random from 20000-31999: below the
 * kernel's ephemeral range (32768+), where servers that ask the OS for "any port" and outgoing
 * connections take theirs, so a port checked free here is unlikely to be taken before it is bound.
 */
export async function pickFreePorts(count: number): Promise<number[]> {
  const picked = new Set<number>();
  for (let tries = 0; picked.size < count; tries++) {
    if (tries > count * 50) throw new StackError(`could not find ${count} free ports on 127.0.0.1`);
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (!picked.has(port) && (await isPortFree(port))) picked.add(port);
  }
  return [...picked];
}
