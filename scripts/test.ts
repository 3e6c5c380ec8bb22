/**
 * The test command: starts one embedded stack on free ports for the whole suite (or reuses the one
 * named by FLEETMEDIC_TEST_STATE_DIR), runs every test file with Node's test runner, and stops the
 * stack it started. Test files run one at a time: they share the cluster.
 *
 * `--without-stack` runs only the files that do not use the embedded stack (test/helpers/stack.ts):
 * the unit tests and those with a Temporal server of their own. Other arguments filter by path.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startTestStack, TEST_STACK_ENV, type TestStack } from '../test/helpers/stack.js';
import { tailFile } from '../src/stack/processes.js';
import { stackHealth } from '../src/stack/stack.js';

async function findTests(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.test.ts'))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

/** Whether a test file uses the embedded stack: it imports the stack helper. */
async function usesStack(file: string): Promise<boolean> {
  return /from '(\.\.\/)+helpers\/stack\.js'/.test(await fs.readFile(file, 'utf8'));
}

/** The longest one test may run; the slowest test (a full remediation with a drain) takes ~2 min. */
const TEST_TIMEOUT_MS = 600_000;
/** The longest the whole suite may run (it takes ~25 min on 2 cores); FLEETMEDIC_TEST_SUITE_MINUTES changes it. */
const SUITE_TIMEOUT_MS = Number(process.env.FLEETMEDIC_TEST_SUITE_MINUTES ?? 55) * 60_000;
if (!(SUITE_TIMEOUT_MS > 0)) {
  process.stderr.write(
    `FLEETMEDIC_TEST_SUITE_MINUTES must be a positive number of minutes, got ${JSON.stringify(process.env.FLEETMEDIC_TEST_SUITE_MINUTES)}\n`,
  );
  process.exit(2);
}

const args = process.argv.slice(2);
const withoutStack = args.includes('--without-stack');
const filters = args.filter((a) => a !== '--without-stack');
let files = (await findTests('test')).filter(
  (f) => filters.length === 0 || filters.some((x) => f.includes(x)),
);
if (withoutStack) {
  const needs = await Promise.all(files.map(usesStack));
  files = files.filter((_, i) => !needs[i]);
}
if (files.length === 0) {
  process.stderr.write(`no test file matches ${args.join(' ')}\n`);
  process.exit(1);
}
process.stderr.write(`Node.js ${process.version}, ${files.length} test file(s)\n`);
let stop: (() => Promise<void>) | undefined;
let shared: TestStack | undefined;
const env = { ...process.env };
if (!env[TEST_STACK_ENV] && !withoutStack) {
  const started = Date.now();
  process.stderr.write('starting the embedded stack for the tests...\n');
  const test = await startTestStack();
  stop = test.stop;
  shared = test.stack;
  env[TEST_STACK_ENV] = test.stack.config.stateDir;
  process.stderr.write(
    `stack ready in ${((Date.now() - started) / 1000).toFixed(1)} s (${test.stack.state.kube.apiserverUrl})\n`,
  );
}
const code = await new Promise<number>((resolve) => {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      '--test-concurrency=1',
      // A test that hangs fails after 10 minutes. (Not --test-force-exit: with it Node 24 ended some
      // files before all their tests had run, and still reported them passed.)
      `--test-timeout=${TEST_TIMEOUT_MS}`,
      '--test-reporter=spec',
      ...files,
    ],
    // Its own process group, so the watchdog below stops the runner and every test file it started.
    { stdio: 'inherit', env, detached: true },
  );
  const group = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // already gone
    }
  };
  // Ctrl-C and a CI's stop reach the tests as they would without the process group.
  const forward = (signal: NodeJS.Signals) => () => group(signal);
  process.on('SIGINT', forward('SIGINT'));
  process.on('SIGTERM', forward('SIGTERM'));
  // A file that never ends (a handle it forgot keeps it alive after its tests) would hold the suite,
  // and CI, to its limit: past SUITE_TIMEOUT_MS the suite fails, saying so.
  const watchdog = setTimeout(() => {
    process.stderr.write(
      `\nthe test suite ran past ${SUITE_TIMEOUT_MS / 60_000} minutes: stopping it (a test file does not ` +
        'end: look for the last file above without a summary)\n',
    );
    group('SIGTERM');
    setTimeout(() => group('SIGKILL'), 10_000).unref();
  }, SUITE_TIMEOUT_MS);
  child.on('exit', (c, signal) => {
    clearTimeout(watchdog);
    resolve(c ?? (signal ? 1 : 0));
  });
});
// When tests failed, say whether the shared stack itself broke (a component that exited fails every
// later test on it), with the end of that component's log: the stack and its logs go with `stop`.
if (code !== 0 && shared) await reportStack(shared);
if (stop) await stop();
process.exitCode = code;

async function reportStack(stack: TestStack): Promise<void> {
  const health = await stackHealth(stack.state).catch((err: unknown) => ({
    healthy: false,
    problems: [`its health could not be read: ${(err as Error).message}`],
    stoppedLogs: [],
  }));
  if (health.healthy) return;
  process.stderr.write('\nthe shared test stack is not healthy at the end of the suite:\n');
  for (const problem of health.problems) process.stderr.write(`  ${problem}\n`);
  for (const log of health.stoppedLogs) {
    const last = (await tailFile(log)).split('\n');
    process.stderr.write(`  ${log} ends:\n${last.map((l) => `    | ${l.slice(0, 400)}`).join('\n')}\n`);
  }
}
