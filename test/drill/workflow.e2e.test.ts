import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { bundleWorkflowCode, NativeConnection, type Worker } from '@temporalio/worker';
import { execa } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import {
  DRILL_WORKFLOW,
  drillOwner,
  drillProgressQuery,
  drillWorkflowId,
  type DrillInput,
  type DrillResult,
} from '../../src/contracts/drill.js';
import { createDrillActivities } from '../../src/activities/drill/index.js';
import { createQuarantineSteps } from '../../src/activities/kubernetes/index.js';
import type { DrillReport } from '../../src/drill/report.js';
import { standinManifests } from '../../src/drill/standin-manifest.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { parseGatewayConfig } from '../../src/gateway/config.js';
import { parseCordonRecord } from '../../src/k8s/node-ownership.js';
import { CORDON_ANNOTATION } from '../../src/k8s/remediation-labels.js';
import { ProcessRunner } from '../../src/runner/process-runner.js';
import { createControlWorkers, workflowBundleOptions } from '../../src/workers/control-worker.js';
import {
  clients,
  deployment,
  eventually,
  isReady,
  liftQuarantine,
  livePods,
  tempNamespace,
} from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { temporalBinary } from '../helpers/temporal.js';
import { forgetBudgetSettings } from '../helpers/workers.js';
import { OperatorClient } from '../../src/client/operator-client.js';
import { fleetBudgetWorkflowId } from '../../src/contracts/fleet-budget.js';

// The drill workflow on the embedded stack with real processes: stand-in replicas served by the
// process runner on kwok nodes, the gateway watching their Deployment, the probe in its own process,
// the drill's activities on a control worker. It deletes a pod and drains a replica's node, and the
// probe must see no failed request; it refuses a Deployment without a PDB; a cancelled drill leaves
// nothing cordoned and removes what it created.
const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const APP = 'llama';

describe('drill workflow (embedded stack, process runner, gateway)', { timeout: 600_000 }, () => {
  let stack: TestStack;
  let ns: { name: string; remove: () => Promise<void> };
  let dir: string;
  let runner: ProcessRunner | undefined;
  let connection: NativeConnection;
  let clientConnection: Connection;
  let client: Client;
  let workers: Worker[] = [];
  let running: Promise<unknown>;
  const taskQueue = `drill-e2e-${process.pid}`;

  before(async () => {
    stack = await useTestStack();
    ns = await tempNamespace(stack.kc, 'fmdrill');
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-drill-'));
    runner = new ProcessRunner({ kc: stack.kc, stateDir: dir, restartBackoffMs: 200 });
    await runner.start();
    connection = await NativeConnection.connect({ address: stack.state.temporal.address });
    clientConnection = await Connection.connect({ address: stack.state.temporal.address });
    client = new Client({ connection: clientConnection });
    workers = await createControlWorkers({
      connection,
      client,
      kc: stack.kc,
      clusterId: stack.state.clusterId,
      taskQueue,
      workflowBundle: await bundleWorkflowCode({ ...workflowBundleOptions(), logger: silent }),
      drillDir: path.join(dir, 'drills'),
    });
    running = Promise.all(workers.map((w) => w.run()));
  });

  after(async () => {
    // The budget stays on this file's queue: a later file's worker would never serve it.
    await client.workflow
      .getHandle(fleetBudgetWorkflowId(stack.state.clusterId))
      .terminate('drill test finished')
      .catch(() => {});
    await forgetBudgetSettings(stack.kc, stack.state.clusterId);
    for (const w of workers) w.shutdown();
    await running;
    await clientConnection?.close();
    await connection?.close();
    await runner?.stop();
    const { core, apps } = clients(stack.kc);
    await apps.deleteCollectionNamespacedDeployment({ namespace: ns.name }).catch(() => undefined);
    for (const pod of (await core.listNamespacedPod({ namespace: ns.name })).items) {
      await core
        .deleteNamespacedPod({ name: pod.metadata!.name!, namespace: ns.name, gracePeriodSeconds: 0 })
        .catch(() => undefined);
    }
    await ns?.remove();
    await fs.rm(dir, { recursive: true, force: true });
  });

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

  function start(drillId: string, extra: Partial<DrillInput>): Promise<WorkflowHandle> {
    const input: DrillInput = {
      clusterId: stack.state.clusterId,
      drillId,
      namespace: ns.name,
      deployment: APP,
      targetUrl: 'http://127.0.0.1:1',
      steadyMs: 3_000,
      ...extra,
    };
    return client.workflow.start(DRILL_WORKFLOW, {
      workflowId: drillWorkflowId(stack.state.clusterId, drillId),
      taskQueue,
      args: [input],
    });
  }

  /** Removes stand-ins a failed test left, so the next test starts clean (a passing drill removed them). */
  async function removeLeftovers(): Promise<void> {
    const { apps, core, policy } = clients(stack.kc);
    const name = APP;
    const namespace = ns.name;
    await apps.deleteNamespacedDeployment({ namespace, name }).catch(() => undefined);
    await policy.deleteNamespacedPodDisruptionBudget({ namespace, name }).catch(() => undefined);
    await core.deleteNamespacedService({ namespace, name }).catch(() => undefined);
  }

  /** With FLEETMEDIC_RECORD_HISTORIES=1, keeps the history for the replay test (test/fixtures/histories). */
  async function recordHistory(name: string, handle: WorkflowHandle): Promise<void> {
    if (process.env.FLEETMEDIC_RECORD_HISTORIES !== '1') return;
    const histories = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));
    const shown = await execa(await temporalBinary(), [
      ...['workflow', 'show', '--address', stack.state.temporal.address],
      ...['--workflow-id', handle.workflowId, '--output', 'json'],
    ]);
    await fs.writeFile(`${histories}drill-${name}.json`, shown.stdout);
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

  async function created(): Promise<string[]> {
    const { apps, core, policy } = clients(stack.kc);
    const found: string[] = [];
    const exists = (p: Promise<unknown>) => p.then(() => true).catch(() => false);
    if (await exists(apps.readNamespacedDeployment({ namespace: ns.name, name: APP })))
      found.push('Deployment');
    if (await exists(policy.readNamespacedPodDisruptionBudget({ namespace: ns.name, name: APP })))
      found.push('PDB');
    if (await exists(core.readNamespacedService({ namespace: ns.name, name: APP }))) found.push('Service');
    return found;
  }

  it('passes with no failed probe request through a pod deletion and a node eviction', async () => {
    const drillId = `pass-${process.pid}`;
    await standinsFor(drillId);
    const gw = await gateway();
    try {
      // The stand-in's process starts through tsx (no build here): 3.6 s to Ready in one run, 7.2 s
      // in another on a loaded 2-core machine; the 5 s over restore is for real replicas.
      const handle = await start(drillId, {
        standin: { replicas: 3 },
        targetUrl: gw.url,
        thresholds: { evictionRecoveryOverRestoreMs: 15_000 },
      });
      const result = (await handle.result()) as DrillResult;
      for (const p of result.phases) {
        process.stderr.write(
          `drill ${p.name}: requests=${p.requests} failed=${p.failed} degraded=${p.degraded} ` +
            `continuity=${p.continuity} non-streamed=${p.nonStreamedContinuity} streams=${p.streamContinuity} ` +
            `longest_outage_ms=${p.longestOutageMs} gap_ms=${p.gapMs} recovery_ms=${p.recoveryMs}\n`,
        );
      }
      process.stderr.write(`drill verdict: ${result.pass ? 'pass' : 'fail'} ${result.reasons.join('; ')}\n`);
      const stored = JSON.parse(await fs.readFile(result.report.json, 'utf8')) as DrillReport;
      for (const p of stored.phases) {
        const steps = p.recovery.map((r) => `${r.step}=+${r.at - p.injectedAt}ms`).join(' ');
        process.stderr.write(`drill ${p.name} recovery: ${steps}\n`);
      }
      const byName = (name: string) => result.phases.find((p) => p.name === name)!;
      for (const name of ['pod-delete', 'eviction']) {
        assert.ok(byName(name).requests > 50, `${name}: only ${byName(name).requests} requests measured`);
        assert.equal(byName(name).failed, 0, `${name}: ${byName(name).failed} failed requests`);
        assert.ok(byName(name).recoveryMs !== null, `${name}: no recovery measured`);
      }
      await recordHistory('pass', handle);
      assert.deepEqual(result.reasons, []);
      assert.equal(result.pass, true);
      for (const file of [result.report.json, result.report.markdown, result.report.html]) {
        assert.ok((await fs.stat(file)).size > 0, `${file} is empty`);
      }
      assert.deepEqual(await drillNodes(drillId), []);
      assert.equal(result.restore?.uncordoned.length, 1);
      assert.deepEqual(await created(), []);
    } finally {
      await gw.close();
      await removeLeftovers();
    }
  });

  it('fleetmedic drill runs a drill, prints its progress and report path, and exits 0 on a pass', async () => {
    await clean();
    const drillId = `cli-${process.pid}`;
    await standinsFor(drillId);
    const gw = await gateway();
    try {
      const bin = fileURLToPath(new URL('../../bin/fleetmedic.js', import.meta.url));
      const run = await execa(
        process.execPath,
        [
          ...[bin, 'drill', '--target-url', gw.url, '--namespace', ns.name, '--deployment', APP],
          ...['--standin', '--drill-id', drillId, '--eviction-slack', '15'],
        ],
        {
          reject: false,
          // The embedded stack's own Temporal, kubeconfig and cluster ID, from its state directory.
          env: { FLEETMEDIC_STATE_DIR: stack.config.stateDir, FLEETMEDIC_TASK_QUEUE: taskQueue },
          timeout: 300_000,
        },
      );
      process.stderr.write(`fleetmedic drill stdout:\n${run.stdout}\n`);
      assert.equal(run.exitCode, 0, `exit ${run.exitCode}\n${run.stderr}`);
      assert.match(run.stdout, new RegExp(`^drill ${drillId}: PASS`, 'm'));
      assert.match(run.stderr, /: pod-delete \(/);
      assert.match(run.stderr, /: eviction \(/);
      const md = /^report: (\S+\.md)$/m.exec(run.stdout)?.[1];
      assert.ok(md && (await fs.stat(md)).size > 0, 'no report path printed');
      assert.deepEqual(await drillNodes(drillId), []);
    } finally {
      await gw.close();
      await removeLeftovers();
    }
  });

  it('refuses a Deployment without a PDB, with that reason, and injects nothing', async () => {
    const { apps } = clients(stack.kc);
    await eventually(
      'the previous stand-ins gone',
      async () => ((await livePods(stack.kc, ns.name, APP)).length === 0 ? true : undefined),
      60_000,
    );
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: deployment(APP, 3, { antiAffinity: true }),
    });
    const drillId = `nopdb-${process.pid}`;
    const result = (await (await start(drillId, {})).result()) as DrillResult;
    assert.equal(result.refused, true);
    assert.equal(result.pass, false);
    assert.ok(result.reasons.includes('no PDB'), `reasons: ${result.reasons.join('; ')}`);
    assert.deepEqual(result.phases, []);
    const report = JSON.parse(await fs.readFile(result.report.json, 'utf8')) as {
      verdict: { reasons: string[] };
    };
    assert.ok(report.verdict.reasons.includes('no PDB'));
    assert.deepEqual(await drillNodes(drillId), []);
    // Not the drill's: never deleted by it.
    assert.deepEqual(await created(), ['Deployment']);
    await apps.deleteNamespacedDeployment({ namespace: ns.name, name: APP });
  });

  it('a drill cancelled during its eviction leaves no node cordoned and removes what it created', async () => {
    await eventually(
      'the previous Deployment gone',
      async () =>
        (await livePods(stack.kc, ns.name, APP)).length === 0 && (await created()).length === 0
          ? true
          : undefined,
      60_000,
    );
    const drillId = `abort-${process.pid}`;
    await standinsFor(drillId);
    const gw = await gateway();
    try {
      const handle = await start(drillId, { standin: { replicas: 3 }, targetUrl: gw.url });
      await eventually(
        'the drill cordoned a node',
        async () => ((await handle.query(drillProgressQuery)).cordoned.length > 0 ? true : undefined),
        180_000,
      );
      assert.equal((await drillNodes(drillId)).length, 1);
      await handle.cancel();
      await assert.rejects(handle.result(), (err: unknown) => {
        assert.ok(err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure, String(err));
        return true;
      });
      await recordHistory('cancelled', handle);
      assert.deepEqual(await drillNodes(drillId), []);
      assert.deepEqual(await created(), []);
    } finally {
      await gw.close();
      await removeLeftovers();
    }
  });
  it("the drill's own deadline rolls it back: fails DrillDeadlineExceeded, nothing cordoned, probe stopped, stand-ins removed", async () => {
    await clean();
    const drillId = `deadline-${process.pid}`;
    await standinsFor(drillId);
    const gw = await gateway();
    try {
      const handle = await start(drillId, {
        standin: { replicas: 3 },
        targetUrl: gw.url,
        deadlineSeconds: 30,
      });
      await assert.rejects(handle.result(), (err: unknown) => {
        assert.ok(err instanceof WorkflowFailedError, String(err));
        assert.ok(err.cause instanceof ApplicationFailure, String(err.cause));
        assert.equal(err.cause.type, 'DrillDeadlineExceeded');
        return true;
      });
      assert.deepEqual(await drillNodes(drillId), []);
      assert.deepEqual(await created(), []);
      const pid = Number(await fs.readFile(path.join(dir, 'drills', drillId, 'probe.pid'), 'utf8'));
      assert.throws(() => process.kill(pid, 0), 'the probe process outlived the drill');
    } finally {
      await gw.close();
      await removeLeftovers();
    }
  });

  /** A pass-through proxy in front of `target` that answers 503 to everything once broken. */
  async function breakableFront(target: string) {
    let broken = false;
    const server = http.createServer((req, res) => {
      if (broken) {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('broken by the test');
        return;
      }
      const up = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}`,
      break: () => {
        broken = true;
      },
      close: () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    };
  }

  /**
   * Runs `body` on fresh stand-ins of a drill `<name>-<pid>` behind a gateway (the previous test's
   * gone first), then closes the gateway and removes what a failed drill left.
   */
  async function withStandins(
    name: string,
    body: (drillId: string, gw: RunningGateway) => Promise<void>,
  ): Promise<void> {
    await clean();
    const drillId = `${name}-${process.pid}`;
    await standinsFor(drillId);
    const gw = await gateway();
    try {
      await body(drillId, gw);
    } finally {
      await gw.close();
      await removeLeftovers();
    }
  }

  /** Waits until the previous test's Deployment and objects are gone. */
  async function clean(): Promise<void> {
    await eventually(
      'the previous stand-ins gone',
      async () =>
        (await livePods(stack.kc, ns.name, APP)).length === 0 && (await created()).length === 0
          ? true
          : undefined,
      60_000,
    );
  }

  it('without drainNode (a real cluster without --drain-node) it evicts one replica through its PDB and cordons nothing', async () => {
    await withStandins('nodrain', async (drillId, gw) => {
      const handle = await start(drillId, {
        standin: { replicas: 3 },
        targetUrl: gw.url,
        drainNode: false,
        thresholds: { evictionRecoveryOverRestoreMs: 15_000 },
      });
      let cordonedSeen = false;
      const watching = (async () => {
        while (!(await handle.describe()).closeTime) {
          if ((await drillNodes(drillId)).length > 0) cordonedSeen = true;
          await new Promise((r) => setTimeout(r, 250));
        }
      })();
      const result = (await handle.result()) as DrillResult;
      await watching;
      assert.equal(cordonedSeen, false, 'a node was cordoned');
      assert.deepEqual(result.reasons, []);
      assert.equal(result.pass, true);
      assert.deepEqual(result.restore?.uncordoned, []);
      const eviction = result.phases.find((p) => p.name === 'eviction')!;
      assert.equal(eviction.failed, 0);
      const stored = JSON.parse(await fs.readFile(result.report.json, 'utf8')) as DrillReport;
      const steps = stored.phases.find((p) => p.name === 'eviction')!.recovery.map((r) => r.step);
      assert.ok(steps.includes('eviction') && steps.includes('ready'), steps.join());
      assert.deepEqual(await created(), []);
    });
  });

  it("the fleet budget's pause refuses the drill's drain: aborted before any eviction, nothing left cordoned", async () => {
    await withStandins('paused', async (drillId, gw) => {
      const operator = new OperatorClient(client, { clusterId: stack.state.clusterId, taskQueue });
      await operator.setPaused(true, { by: 'drill-test', reason: 'maintenance window' });
      try {
        const before = new Set((await livePods(stack.kc, ns.name, APP)).map((p) => p.metadata!.name!));
        const handle = await start(drillId, { standin: { replicas: 3 }, targetUrl: gw.url });
        const result = (await handle.result()) as DrillResult;
        assert.equal(result.pass, false);
        assert.match(
          result.aborted ?? '',
          /^the fleet budget refused to drain \S+ \(paused\): automation is paused/,
        );
        assert.match(result.reasons[0] ?? '', /^aborted during eviction: the fleet budget refused to drain/);
        assert.deepEqual(
          result.phases.map((p) => p.name),
          ['steady-state', 'pod-delete'],
        );
        // The cordon was reverted and the stand-ins removed; the pod deletion replaced one pod, and no
        // other pod was evicted (the Deployment is gone now: its pods are read from the report's phase).
        assert.equal(result.restore?.uncordoned.length, 1);
        assert.deepEqual(await drillNodes(drillId), []);
        assert.deepEqual(await created(), []);
        const stored = JSON.parse(await fs.readFile(result.report.json, 'utf8')) as DrillReport;
        assert.equal(stored.aborted?.stage, 'eviction');
        assert.equal(before.size, 3);
        const budget = await operator.budget();
        assert.deepEqual(budget?.draining, [], 'the drill holds a drain slot after its end');
        assert.deepEqual(budget?.queued, [], 'the refused drill joined the queue');
      } finally {
        await operator.setPaused(false, { by: 'drill-test' });
      }
    });
  });

  it('the continuity watchdog aborts a drill whose service fails during the eviction, and rolls it back', async () => {
    await withStandins('watchdog', async (drillId, gw) => {
      const front = await breakableFront(gw.url);
      try {
        const handle = await start(drillId, {
          standin: { replicas: 3 },
          targetUrl: front.url,
          watchdog: { windowMs: 3_000, minRequests: 10 },
        });
        await eventually(
          'the drill cordoned a node',
          async () => ((await handle.query(drillProgressQuery)).cordoned.length > 0 ? true : undefined),
          180_000,
        );
        // The service breaks: every probe request now fails (503).
        front.break();
        const result = (await handle.result()) as DrillResult;
        await recordHistory('watchdog-abort', handle);
        assert.equal(result.pass, false);
        assert.match(
          result.aborted ?? '',
          /^the continuity watchdog fired: continuity 0\.\d\d < 0\.5 over the last 3 s/,
        );
        assert.match(result.reasons[0] ?? '', /^aborted during eviction: the continuity watchdog fired/);
        assert.deepEqual(await drillNodes(drillId), []);
        assert.deepEqual(await created(), []);
        const budget = await new OperatorClient(client, {
          clusterId: stack.state.clusterId,
          taskQueue,
        }).budget();
        assert.deepEqual(budget?.draining, [], 'the aborted drill kept its drain slot');
        const pid = Number(await fs.readFile(path.join(dir, 'drills', drillId, 'probe.pid'), 'utf8'));
        assert.throws(() => process.kill(pid, 0), 'the probe process outlived the drill');
      } finally {
        await front.close();
      }
    });
  });

  it("a remediation takes over a drill's cordon, and the drill's restore leaves the node to it", async () => {
    const activities = createDrillActivities({
      kc: stack.kc,
      clusterId: stack.state.clusterId,
      drillDir: path.join(dir, 'drills'),
    });
    const node = (await clients(stack.kc).core.listNode()).items[0]!.metadata!.name!;
    const other = `remediation/${stack.state.clusterId}/${node}`;
    const steps = createQuarantineSteps({ kc: stack.kc, clusterId: stack.state.clusterId });
    await steps.quarantine({ node, workflowId: drillOwner('other-owner'), reason: 'drill other-owner' });
    // A remediation starting on the node (a real fault during the drill) takes the cordon over.
    await steps.quarantine({ node, workflowId: other, reason: 'XID 79 during a drill' });
    try {
      const r = await activities.restoreDrill({
        namespace: ns.name,
        deployment: APP,
        drillId: 'other-owner',
        owner: drillOwner('other-owner'),
        cordoned: [node],
        remove: true,
      });
      assert.deepEqual(r.uncordoned, []);
      assert.deepEqual(r.leftToOthers, [node]);
      const after = await clients(stack.kc).core.readNode({ name: node });
      assert.equal(after.spec?.unschedulable, true);
      const record = parseCordonRecord(after.metadata?.annotations?.[CORDON_ANNOTATION]);
      assert.ok(record.kind === 'ok' && record.record.workflowId === other);
    } finally {
      await liftQuarantine(stack.kc, node);
    }
  });
  it('applyStandin refuses an object of that name the drill did not create, and restore never deletes it', async () => {
    const activities = createDrillActivities({
      kc: stack.kc,
      clusterId: stack.state.clusterId,
      drillDir: path.join(dir, 'drills'),
    });
    const { core } = clients(stack.kc);
    const name = 'not-the-drills';
    await core.createNamespacedService({
      namespace: ns.name,
      body: { metadata: { name }, spec: { selector: { app: name }, ports: [{ port: 8080 }] } },
    });
    try {
      await assert.rejects(
        activities.applyStandin({ namespace: ns.name, deployment: name, drillId: 'intruder' }),
        (err: unknown) => err instanceof ApplicationFailure && err.type === 'NotDrillObject',
      );
      const r = await activities.restoreDrill({
        namespace: ns.name,
        deployment: name,
        drillId: 'intruder',
        owner: drillOwner('intruder'),
        cordoned: [],
        remove: true,
      });
      // The PDB it did create (first, before the Service was refused) is its own, and removed.
      assert.deepEqual(r.deleted, [`PodDisruptionBudget ${ns.name}/${name}`]);
      await core.readNamespacedService({ namespace: ns.name, name });
    } finally {
      await core.deleteNamespacedService({ namespace: ns.name, name }).catch(() => undefined);
    }
  });
});
