import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import {
  drillExitCode,
  failureChain,
  progressLine,
  registerDrillCommand,
  resultLines,
} from '../../src/cli/commands/drill.js';
import { addGlobalFlags } from '../../src/cli/context.js';
import type { DrillProgress, DrillResult } from '../../src/contracts/drill.js';
import { ConfigError } from '../../src/errors.js';

const T0 = 1_800_000_000_000;

function result(overrides: Partial<DrillResult> = {}): DrillResult {
  return {
    drillId: 'd1',
    pass: true,
    reasons: [],
    refused: false,
    phases: [
      {
        name: 'eviction',
        requests: 270,
        failed: 0,
        degraded: 1,
        continuity: 0.9963,
        nonStreamedContinuity: 1,
        streamContinuity: 0.99,
        longestOutageMs: null,
        gapMs: 0,
        recoveryMs: 3598,
      },
    ],
    report: { json: '/r/d1.json', markdown: '/r/d1.md', html: '/r/d1.html' },
    restore: { uncordoned: ['gpu-node-2'], leftToOthers: [], deleted: [] },
    ...overrides,
  };
}

describe('fleetmedic drill: output and exit code', () => {
  it('a progress line names the stage, the elapsed time, the phases measured and the cordoned nodes', () => {
    const p: DrillProgress = {
      drillId: 'd1',
      stage: 'eviction',
      startedAt: T0,
      phases: [{ name: 'pod-delete', injectedAt: T0, recovery: [], window: { from: T0, to: T0 + 1 } }],
      refusal: [],
      cordoned: ['gpu-node-2'],
    };
    assert.equal(
      progressLine(p, T0 + 42_400),
      'drill d1: eviction (42 s; phases measured: pod-delete; cordoned gpu-node-2)',
    );
  });

  it('the result lines give the verdict, each phase and the report files', () => {
    const lines = resultLines(result());
    assert.equal(lines[0], 'drill d1: PASS');
    assert.equal(
      lines[1],
      '  eviction: 270 requests, 0 failed, 1 degraded, continuity 0.9963, recovery 3.6 s',
    );
    assert.ok(lines.some((l) => l.includes('/r/d1.md')));
    assert.ok(lines.some((l) => l.includes('/r/d1.html')));
  });

  it('a refused drill fails with its reasons and exit code 1; a pass exits 0', () => {
    const refused = result({ pass: false, refused: true, reasons: ['no PDB'], phases: [] });
    const lines = resultLines(refused);
    assert.equal(lines[0], 'drill d1: FAIL (refused by preflight)');
    assert.equal(lines[1], '  - no PDB');
    assert.equal(drillExitCode(refused), 1);
    assert.equal(drillExitCode(result()), 0);
  });

  it('a progress line says when the drill is aborting, and why', () => {
    const p: DrillProgress = {
      drillId: 'd1',
      stage: 'rolling-back',
      startedAt: T0,
      phases: [],
      refusal: [],
      cordoned: [],
      aborted: 'the continuity watchdog fired: continuity 0.10 < 0.5 over the last 10 s',
    };
    assert.equal(
      progressLine(p, T0 + 1_000),
      'drill d1: rolling-back (1 s; phases measured: none; aborting: the continuity watchdog fired: continuity 0.10 < 0.5 over the last 10 s)',
    );
  });

  it('a failed drill says its root cause, not only "Activity task failed"', () => {
    const root = new Error('the Deployment did not recover from the loss of llama-0: no ready');
    const activity = new Error('Activity task failed', { cause: root });
    const workflow = new Error('Workflow execution failed', { cause: activity });
    assert.equal(
      failureChain(workflow),
      'Activity task failed: the Deployment did not recover from the loss of llama-0: no ready',
    );
    assert.equal(failureChain(new Error('plain')), 'plain');
  });

  it('refuses an --abort-below outside 0..1, naming it', async () => {
    const program = new Command().exitOverride();
    program.configureOutput({ writeErr() {}, writeOut() {} });
    registerDrillCommand(program, { stdout() {}, stderr() {} });
    await assert.rejects(
      program.parseAsync(['drill', '--target-url', 'http://127.0.0.1:1', '--abort-below', '1.5'], {
        from: 'user',
      }),
      (err: unknown) =>
        err instanceof Error && /--abort-below must be a number from 0 to 1, got "1\.5"/.test(err.message),
    );
  });

  it('refuses a drill ID that cannot be a label value or file name, before connecting anywhere', async () => {
    const program = new Command().exitOverride();
    registerDrillCommand(program, { stdout() {}, stderr() {} });
    await assert.rejects(
      program.parseAsync(['drill', '--target-url', 'http://127.0.0.1:1', '--drill-id', 'not/valid'], {
        from: 'user',
      }),
      (err: unknown) => err instanceof ConfigError && /--drill-id "not\/valid"/.test(err.message),
    );
  });
});

// A real cluster: the Temporal address and the kubeconfig's API server are a listener that counts
// connections, so a refusal is shown to come before the command connects anywhere.
describe('fleetmedic drill: the real-cluster guard refuses before connecting anywhere', () => {
  let server: net.Server;
  let connections = 0;
  let dir: string;
  let kubeconfig: string;
  let address: string;

  before(async () => {
    server = net.createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-drill-guard-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    await fs.writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          { name: 'prod', cluster: { server: `https://${address}`, 'insecure-skip-tls-verify': true } },
        ],
        users: [{ name: 'prod', user: { token: 'not-a-token' } }],
        contexts: [{ name: 'prod-west', context: { cluster: 'prod', user: 'prod' } }],
        'current-context': 'prod-west',
      }),
    );
  });

  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    await fs.rm(dir, { recursive: true, force: true });
  });

  const drill = async (...args: string[]): Promise<unknown> => {
    const program = new Command().exitOverride();
    addGlobalFlags(program);
    registerDrillCommand(program, { stdout() {}, stderr() {} });
    const globals = ['--temporal-address', address, '--cluster-id', 'prod-west'];
    return program.parseAsync([...globals, 'drill', '--target-url', 'http://127.0.0.1:1', ...args], {
      from: 'user',
    });
  };

  it('refuses without --context, listing the kubeconfig’s contexts', async () => {
    await assert.rejects(
      drill('--kubeconfig', kubeconfig, '--confirm-cluster', 'prod-west'),
      (err: unknown) =>
        err instanceof ConfigError &&
        /needs --context <name>, .*\(the file has: prod-west\)/.test(err.message),
    );
    assert.equal(connections, 0);
  });

  it('refuses without a confirmation, or one naming another cluster ID', async () => {
    await assert.rejects(
      drill('--kubeconfig', kubeconfig, '--context', 'prod-west', '--drain-node'),
      (err: unknown) =>
        err instanceof ConfigError &&
        /deletes and evicts pods and drains a node: confirm with --confirm-cluster prod-west/.test(
          err.message,
        ),
    );
    await assert.rejects(
      drill('--kubeconfig', kubeconfig, '--context', 'prod-west', '--confirm-cluster', 'prod-east'),
      (err: unknown) =>
        err instanceof ConfigError &&
        /--confirm-cluster prod-east does not name the cluster ID/.test(err.message),
    );
    assert.equal(connections, 0);
  });

  it('refuses a context the kubeconfig does not have', async () => {
    await assert.rejects(
      drill('--kubeconfig', kubeconfig, '--context', 'prod-east', '--confirm-cluster', 'prod-west'),
      (err: unknown) =>
        err instanceof ConfigError && /--context prod-east is not a context of/.test(err.message),
    );
    assert.equal(connections, 0);
  });
});
