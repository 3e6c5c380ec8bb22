import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { execa, type ResultPromise } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { OperatorClient } from '../../src/client/operator-client.js';
import {
  DRILL_WORKFLOW,
  drillOwner,
  drillWorkflowId,
  type DrillInput,
  type DrillResult,
} from '../../src/contracts/drill.js';
import { fleetBudgetWorkflowId } from '../../src/contracts/fleet-budget.js';
import { parseProbeRecords } from '../../src/drill/probe-record.js';
import type { DrillReport } from '../../src/drill/report.js';
import { standinManifests } from '../../src/drill/standin-manifest.js';
import { parseGatewayConfig } from '../../src/gateway/config.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { parseCordonRecord } from '../../src/k8s/node-ownership.js';
import { CORDON_ANNOTATION } from '../../src/k8s/remediation-labels.js';
import { ProcessRunner } from '../../src/runner/process-runner.js';
import { workflowBundleOptions } from '../../src/workers/control-worker.js';
import { clients, eventually, isReady, livePods, tempNamespace } from '../helpers/k8s.js';
import { TEST_STACK_ENV, useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import { forgetBudgetSettings } from '../helpers/workers.js';

installQuietRuntime();
const KILL_WORKER = fileURLToPath(new URL('../helpers/kill-after-worker.ts', import.meta.url));
const APP = 'llama';
/** The longest recovery taken for the fault's: a kill costs 30 s (the heartbeat timeout) and more. */
const SANE_MS = 25_000;
const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** Pids of live processes whose command line names `drill-probe` and `file`: the drill's probes. */
function probeProcesses(file: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.includes('drill-probe') && argv.includes(file)) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** `promise`, or a rejection naming `what` after `ms`: a drill stuck on a dead worker fails the test. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

// Issue #16: the control worker (a child process) is killed with SIGKILL in the middle of a drill,
// right after a side effect and before its completion reaches Temporal, and started again. The drill
// must go on to PASS with a report as an uninterrupted run writes it: every phase once, recovery
// figures of the fault (not of the worker's downtime), continuity measured throughout by the probe
// process (which runs outside the worker), nothing cordoned or created left, the drain slot returned.
// A lost activity waits for its timeout before it is retried: 30 s (heartbeat) for the probe's start
// and the drain, 2 min (start-to-close) for the cordon.
describe('the control worker killed during a drill', { timeout: 9 * 60_000 }, () => {
  let stack: TestStack;
  let ns: { name: string; remove: () => Promise<void> };
  let dir: string;
  let bundleFile: string;
  let runner: ProcessRunner | undefined;
  let clientConnection: Connection;
  let client: Client;
  const taskQueue = `drill-kill-${process.pid}`;
  const logs: string[] = [];

  before(async () => {
    stack = await useTestStack();
    ns = await tempNamespace(stack.kc, 'fmdrillkill');
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-drill-kill-'));
    runner = new ProcessRunner({ kc: stack.kc, stateDir: dir, restartBackoffMs: 200 });
    await runner.start();
    clientConnection = await Connection.connect({ address: stack.state.temporal.address });
    client = new Client({ connection: clientConnection });
    // One bundle for every worker this file starts: a restart takes seconds, not a webpack run.
    bundleFile = path.join(dir, 'workflows.js');
    const { code } = await bundleWorkflowCode({ ...workflowBundleOptions(), logger: silent });
    await fs.writeFile(bundleFile, code);
  });

  after(async () => {
    // The budget ran on this file's queue, whose worker is gone: the next file starts its own.
    await client?.workflow
      .getHandle(fleetBudgetWorkflowId(stack.state.clusterId))
      .terminate('drill worker-kill test finished')
      .catch(() => undefined);
    await forgetBudgetSettings(stack.kc, stack.state.clusterId);
    await clientConnection?.close();
    await runner?.stop();
    const { core, apps } = clients(stack.kc);
    await apps.deleteCollectionNamespacedDeployment({ namespace: ns.name }).catch(() => undefined);
    for (const pod of (await core.listNamespacedPod({ namespace: ns.name }).catch(() => undefined))?.items ??
      []) {
      await core
        .deleteNamespacedPod({ name: pod.metadata!.name!, namespace: ns.name, gracePeriodSeconds: 0 })
        .catch(() => undefined);
    }
    await ns?.remove();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  /**
   * Runs the control worker as a child process, and again each time it killed itself after one of
   * `kills` (each kill point once), until `stop`. `killed` lists the kill points reached, in order,
   * with the time of each restart.
   */
  function supervise(kills: readonly string[]) {
    const killed: { activity: string; at: number }[] = [];
    const marker = path.join(dir, 'killed');
    let stopped = false;
    let current: ResultPromise | undefined;
    const loop = (async () => {
      let remaining = [...kills];
      while (!stopped) {
        await fs.rm(marker, { force: true });
        const child = execa(process.execPath, ['--import', 'tsx', KILL_WORKER], {
          env: {
            [TEST_STACK_ENV]: stack.config.stateDir,
            FLEETMEDIC_TASK_QUEUE: taskQueue,
            FLEETMEDIC_WORKFLOW_BUNDLE: bundleFile,
            FLEETMEDIC_DRILL_DIR: path.join(dir, 'drills'),
            FLEETMEDIC_TEST_KILL_AFTER: remaining.join(','),
            FLEETMEDIC_TEST_KILL_MARKER: marker,
            NODE_TEST_CONTEXT: undefined,
          },
          reject: false,
          stdin: 'ignore',
          buffer: false,
        });
        child.stdout?.on('data', (d: Buffer) => logs.push(d.toString()));
        child.stderr?.on('data', (d: Buffer) => logs.push(d.toString()));
        current = child;
        const end = await child;
        if (stopped) break;
        const which = await fs.readFile(marker, 'utf8').catch(() => undefined);
        if (which === undefined) {
          throw new Error(
            `the worker ended without a kill (${end.signal ?? end.exitCode}): ${logs.join('').slice(-2000)}`,
          );
        }
        killed.push({ activity: which, at: Date.now() });
        remaining = remaining.filter((k) => k !== which);
      }
    })();
    return {
      killed,
      loop,
      async stop() {
        stopped = true;
        current?.kill('SIGKILL');
        // A failed supervisor already failed the test through the race on the drill's result.
        await loop.catch(() => undefined);
      },
    };
  }

  /** The stand-ins created before the drill (labelled with its ID), so the gateway can watch them. */
  async function standinsFor(drillId: string): Promise<void> {
    const { apps, core, policy } = clients(stack.kc);
    const m = standinManifests({ namespace: ns.name, name: APP, drillId });
    await policy.createNamespacedPodDisruptionBudget({ namespace: ns.name, body: m.pdb });
    await core.createNamespacedService({ namespace: ns.name, body: m.service });
    await apps.createNamespacedDeployment({ namespace: ns.name, body: m.deployment });
    await eventually(
      '3 Ready stand-ins',
      async () => {
        const live = await livePods(stack.kc, ns.name, APP);
        return live.length === 3 && live.every(isReady) ? true : undefined;
      },
      120_000,
    );
  }

  async function gateway(): Promise<RunningGateway> {
    const config = parseGatewayConfig({
      port: 0,
      kube: { namespace: ns.name, deployment: APP, kubeconfig: stack.state.kube.kubeconfig },
      health: { intervalMs: 1_000 },
    });
    return startGateway(config);
  }

  /** Nodes cordoned or carrying an ownership record of the drill. */
  async function drillNodes(drillId: string): Promise<string[]> {
    const nodes = (await clients(stack.kc).core.listNode()).items;
    return nodes
      .filter((n) => {
        const r = parseCordonRecord(n.metadata?.annotations?.[CORDON_ANNOTATION]);
        return (
          n.spec?.unschedulable === true || (r.kind === 'ok' && r.record.workflowId === drillOwner(drillId))
        );
      })
      .map((n) => n.metadata!.name!);
  }

  /** The stand-in objects still in the namespace. */
  async function created(): Promise<string[]> {
    const { apps, core, policy } = clients(stack.kc);
    const exists = (p: Promise<unknown>) => p.then(() => true).catch(() => false);
    const found: string[] = [];
    if (await exists(apps.readNamespacedDeployment({ namespace: ns.name, name: APP })))
      found.push('Deployment');
    if (await exists(policy.readNamespacedPodDisruptionBudget({ namespace: ns.name, name: APP })))
      found.push('PDB');
    if (await exists(core.readNamespacedService({ namespace: ns.name, name: APP }))) found.push('Service');
    return found;
  }

  async function removeLeftovers(): Promise<void> {
    const { apps, core, policy } = clients(stack.kc);
    const namespace = ns.name;
    await apps.deleteNamespacedDeployment({ namespace, name: APP }).catch(() => undefined);
    await policy.deleteNamespacedPodDisruptionBudget({ namespace, name: APP }).catch(() => undefined);
    await core.deleteNamespacedService({ namespace, name: APP }).catch(() => undefined);
  }

  it('killed after the probe starts, after the cordon and after the eviction: PASS with a correct report', async () => {
    const drillId = `kill-${process.pid}`;
    const probeFile = path.join(dir, 'drills', drillId, 'probe.jsonl');
    const kills = ['startProbe', 'cordonReplicaNode', 'drainNode'];
    await standinsFor(drillId);
    const gw = await gateway();
    const worker = supervise(kills);
    let handle: WorkflowHandle | undefined;
    try {
      const input: DrillInput = {
        clusterId: stack.state.clusterId,
        drillId,
        namespace: ns.name,
        deployment: APP,
        targetUrl: gw.url,
        steadyMs: 3_000,
        standin: { replicas: 3 },
        // The stand-in's process starts through tsx, here beside the restarting worker's: 16 s to
        // Ready seen on 2 cores. Below the 30 s a kill costs, so a recovery dated by the retry fails.
        thresholds: { evictionRecoveryOverRestoreMs: SANE_MS },
      };
      handle = await client.workflow.start(DRILL_WORKFLOW, {
        workflowId: drillWorkflowId(stack.state.clusterId, drillId),
        taskQueue,
        args: [input],
      });
      // A supervisor that failed (a worker that died without its kill) fails the test at once.
      const result = (await within(
        6 * 60_000,
        'the drill',
        Promise.race([handle.result(), worker.loop.then(() => new Promise<never>(() => {}))]),
      )) as DrillResult;
      const started = (await handle.describe()).startTime.getTime();
      process.stderr.write(
        `kills: ${worker.killed.map((k) => `${k.activity} at +${k.at - started} ms`).join(', ')}\n`,
      );
      // Which activities the kills made retry (a measurement may have ended before the drain did).
      const history = await handle.fetchHistory();
      const types = new Map<string, string>();
      const retried: string[] = [];
      for (const e of history.events ?? []) {
        const scheduled = e.activityTaskScheduledEventAttributes;
        if (scheduled) types.set(String(e.eventId), scheduled.activityType?.name ?? '?');
        const run = e.activityTaskStartedEventAttributes;
        if (run && (run.attempt ?? 1) > 1)
          retried.push(`${types.get(String(run.scheduledEventId))} (attempt ${run.attempt})`);
      }
      process.stderr.write(`retried: ${retried.join(', ')}\n`);
      for (const p of result.phases) {
        process.stderr.write(
          `drill ${p.name}: requests=${p.requests} failed=${p.failed} continuity=${p.continuity} ` +
            `gap_ms=${p.gapMs} recovery_ms=${p.recoveryMs}\n`,
        );
      }
      process.stderr.write(`drill verdict: ${result.pass ? 'pass' : 'fail'} ${result.reasons.join('; ')}\n`);
      const stored = JSON.parse(await fs.readFile(result.report.json, 'utf8')) as DrillReport;
      for (const p of stored.phases) {
        const steps = p.recovery.map((r) => `${r.step}=+${r.at - p.injectedAt}ms`).join(' ');
        process.stderr.write(`drill ${p.name} recovery: ${steps}\n`);
      }

      assert.deepEqual(
        worker.killed.map((k) => k.activity).sort(),
        [...kills].sort(),
        'a kill point was never reached',
      );
      // Every phase recorded once, in order, in the result and in the stored report.
      const order = ['steady-state', 'pod-delete', 'eviction', 'steady-state'];
      assert.deepEqual(
        result.phases.map((p) => p.name),
        order,
      );
      assert.deepEqual(
        stored.phases.map((p) => p.name),
        order,
      );
      assert.deepEqual(result.reasons, []);
      assert.equal(result.pass, true);
      assert.equal(result.aborted, undefined);
      assert.equal(stored.verdict.pass, true);
      assert.equal(stored.drillId, drillId);

      // Recovery figures of the fault, not of the worker's downtime (30 s and more per kill).
      for (const name of ['pod-delete', 'eviction']) {
        const figures = result.phases.find((p) => p.name === name)!;
        assert.ok(figures.requests > 50, `${name}: only ${figures.requests} requests measured`);
        assert.equal(figures.failed, 0, `${name}: ${figures.failed} failed requests`);
        assert.ok(
          figures.recoveryMs !== null && figures.recoveryMs > 0 && figures.recoveryMs < SANE_MS,
          `${name}: recovery ${figures.recoveryMs} ms`,
        );
        const phase = stored.phases.find((p) => p.name === name)!;
        const steps = phase.recovery.map((r) => r.step);
        assert.equal(new Set(steps).size, steps.length, `${name}: a recovery step twice: ${steps.join()}`);
        for (const step of ['replacement-created', 'ready', 'all-ready'] as const)
          assert.ok(steps.includes(step), `${name}: no ${step} in ${steps.join()}`);
        for (const r of phase.recovery) {
          assert.ok(
            r.at >= phase.injectedAt && r.at - phase.injectedAt < SANE_MS,
            `${name}: ${r.step} at +${r.at - phase.injectedAt} ms`,
          );
        }
        assert.ok(phase.injectedAt >= stored.startedAt && phase.injectedAt <= stored.endedAt);
      }
      // Continuity measured throughout: the probe ran outside the worker, through every kill.
      for (const p of result.phases) {
        assert.ok(p.continuity !== null && p.continuity >= 0.99, `${p.name}: continuity ${p.continuity}`);
        assert.ok(p.gapMs <= 1_000, `${p.name}: a coverage gap of ${p.gapMs} ms`);
      }
      const records = parseProbeRecords(await fs.readFile(probeFile, 'utf8')).records;
      const killedAt = worker.killed.map((k) => k.at);
      for (const at of killedAt) {
        assert.ok(
          records.some((r) => r.t > at + 5_000),
          `the probe measured nothing after the kill at +${at - started} ms`,
        );
      }

      // Report files written and readable.
      for (const file of [result.report.json, result.report.markdown, result.report.html]) {
        assert.ok((await fs.stat(file)).size > 0, `${file} is empty`);
      }
      assert.match(await fs.readFile(result.report.markdown, 'utf8'), /eviction/);

      // Nothing left: no cordon, no record, no stand-in object, no drain slot, no probe.
      assert.equal(result.restore?.uncordoned.length, 1);
      assert.deepEqual(result.restore?.leftToOthers, []);
      assert.deepEqual(await drillNodes(drillId), []);
      assert.deepEqual(await created(), []);
      const budget = await within(
        60_000,
        'the fleet budget',
        new OperatorClient(client, { clusterId: stack.state.clusterId, taskQueue }).budget(),
      );
      assert.deepEqual(budget?.draining, [], 'the drill kept its drain slot');
      assert.deepEqual(probeProcesses(probeFile), [], 'a probe process outlived the drill');
    } finally {
      if (handle) await handle.terminate('drill worker-kill test ended').catch(() => undefined);
      await worker.stop();
      for (const pid of probeProcesses(probeFile)) process.kill(pid, 'SIGKILL');
      await gw.close();
      await removeLeftovers();
    }
  });
});
