import { WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { after, before, describe, it } from 'node:test';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import type { AlertSignal, RemediationPolicy } from '../../src/domain/remediation-plan.js';
import { mergePatch } from '../../src/k8s/patch.js';
import { healthyGpuState, MemoryGpuStateStore, withFault } from '../../src/sim/gpu-state.js';
import { simNodeManifest } from '../../src/stack/sim-nodes.js';
import { fleetBudgetState, fleetBudgetWorkflowId } from '../../src/workflows/fleet-budget.js';
import { startRemediationWorkers, waitForPhase, type RemediationWorkers } from '../helpers/workers.js';
import {
  approveUpdate,
  markRepairedUpdate,
  rejectUpdate,
  releaseUpdate,
  statusQuery,
} from '../../src/contracts/remediation.js';
import type { gpuRemediationWorkflow } from '../../src/workflows/remediation/workflow.js';
import {
  clearRemediationHistory,
  clients,
  deployment,
  eventually,
  isReady,
  livePods,
  tempNamespace,
} from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime, temporalBinary } from '../helpers/temporal.js';
import { FAST_POLICY, xidAlert } from '../helpers/remediation-inputs.js';

installQuietRuntime();

const policy: Partial<RemediationPolicy> = { ...FAST_POLICY, approvalReminderMs: 3_000 };

// The whole remediation on the embedded stack: real Temporal dev server, real control plane (kwok
// nodes), the real Kubernetes activities, node agents whose dcgmi / nvidia-smi are the simulated
// stand-ins printing the real formats for a fault state the test sets.
describe('GPU remediation end to end', () => {
  let stack: TestStack;
  let remediationWorkers: RemediationWorkers | undefined;
  let client: Client;
  const gpus = new MemoryGpuStateStore();
  const taskQueue = `fleetmedic-e2e-${process.pid}`;
  let ns: { name: string; remove: () => Promise<void> };

  before(async () => {
    stack = await useTestStack();
    // The breaker would (rightly) stop automation after most of this 4-node fleet failed in minutes;
    // these scenarios are about single remediations, the budget has its own test.
    remediationWorkers = await startRemediationWorkers(stack, {
      taskQueue,
      gpus,
      budgetConfig: { breakerThreshold: 1, minHealthyFraction: 0, maxConcurrentDrains: 1 },
    });
    client = remediationWorkers.client;
    const nodes = remediationWorkers.nodes;
    ns = await tempNamespace(stack.kc, 'fmrem');
    // A reused stack keeps the nodes' remediation history; start from none, or the repeat guard
    // (twice in 7 days -> replace hardware) would change these scenarios.
    await clearRemediationHistory(stack.kc, nodes);
  });

  after(async () => {
    await remediationWorkers?.stop();
    await ns?.remove();
  });

  async function inject(node: string, fault: Parameters<typeof withFault>[1]) {
    await gpus.set(node, withFault(await gpus.get(node), fault));
  }

  /** With FLEETMEDIC_RECORD_HISTORIES=1, keeps the history for the replay test (test/fixtures/histories). */
  async function record(name: string, handle: WorkflowHandle<typeof gpuRemediationWorkflow>) {
    if (process.env.FLEETMEDIC_RECORD_HISTORIES !== '1') return;
    // The Temporal CLI's JSON is the format replay reads (historyFromJSON).
    const dir = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));
    await fs.mkdir(dir, { recursive: true });
    const shown = await execa(await temporalBinary(), [
      'workflow',
      'show',
      '--address',
      stack.state.temporal.address,
      '--workflow-id',
      handle.workflowId,
      '--run-id',
      (await handle.describe()).runId,
      '--output',
      'json',
    ]);
    await fs.writeFile(`${dir}remediation-${name}.json`, shown.stdout);
  }

  async function start(node: string, a: AlertSignal) {
    return startOrJoinRemediation(client, {
      clusterId: stack.state.clusterId,
      node,
      taskQueue,
      alert: a,
      policy,
    });
  }

  const phaseOf = (handle: WorkflowHandle<typeof gpuRemediationWorkflow>, phase: string) =>
    waitForPhase(handle, phase);

  async function node(name: string) {
    return clients(stack.kc).core.readNode({ name });
  }

  it('XID 79: quarantines, drains under a PDB, merges a second alert, waits; approve -> validated -> uncordoned', async () => {
    const target = 'gpu-node-2';
    const { apps, policy: pdbApi } = clients(stack.kc);
    const app = 'llm';
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: deployment(app, 2, { preferNode: target }),
    });
    await pdbApi.createNamespacedPodDisruptionBudget({
      namespace: ns.name,
      body: { metadata: { name: app }, spec: { maxUnavailable: 1, selector: { matchLabels: { app } } } },
    });
    await eventually('2 Ready replicas on the target', async () => {
      const pods = await livePods(stack.kc, ns.name, app);
      return pods.length === 2 && pods.every(isReady) && pods.every((p) => p.spec?.nodeName === target)
        ? pods
        : undefined;
    });

    await inject(target, { gpu: 3, xid: 79 });
    const first = xidAlert(79);
    const handle = await start(target, first);
    const waiting = await phaseOf(handle, 'awaiting-approval');
    assert.equal(waiting.class, 'reboot-node');

    const n = await node(target);
    assert.equal(n.spec?.unschedulable, true);
    const taint = n.spec?.taints?.find((t) => t.key === 'fleetmedic.io/quarantine');
    assert.equal(taint?.effect, 'NoSchedule');
    const pods = await livePods(stack.kc, ns.name, app);
    assert.equal(pods.length, 2);
    assert.ok(
      pods.every((p) => p.spec?.nodeName !== target),
      'replicas still on the quarantined node',
    );

    // A repeat of the alert joins the running remediation.
    const again = await start(target, { ...first });
    assert.equal(again.signaledRunId, handle.signaledRunId);
    await eventually('the second alert recorded', async () =>
      (await handle.query(statusQuery)).alerts === 2 ? true : undefined,
    );

    const bootBefore = (await node(target)).status?.nodeInfo?.bootID;
    assert.ok(bootBefore, 'the simulated node reports a boot ID');
    const accepted = await handle.executeUpdate(approveUpdate, {
      args: [{ by: 'alice', reason: 'reboot ok' }],
    });
    assert.match(accepted, /approve accepted/);
    const result = await handle.result();
    assert.equal(result.outcome, 'returned-to-service', result.reasons.join('\n'));
    const released = await node(target);
    // The reboot is verified by the node's boot ID: another one, and the run saw it before validating.
    const bootAfter = released.status?.nodeInfo?.bootID;
    assert.ok(bootAfter && bootAfter !== bootBefore, `boot ID ${bootAfter} after ${bootBefore}`);
    assert.ok(
      result.reasons.some((r) => r.includes(`reboot scheduled (boot ${bootBefore})`)) &&
        result.reasons.some((r) => r.includes(`back from its reboot (boot ${bootAfter})`)),
      result.reasons.join('\n'),
    );
    assert.notEqual(released.spec?.unschedulable, true);
    assert.equal(
      released.spec?.taints?.find((t) => t.key === 'fleetmedic.io/quarantine'),
      undefined,
    );
    assert.deepEqual(
      result.decisions.map((d) => [d.action, d.by]),
      [['approve', 'alice']],
    );

    // Recorded now: after the re-send below, the workflow ID's latest run is the duplicate's.
    await record('xid79-approve', handle);

    // Alertmanager re-sends the same firing alert (same fingerprint and start): no new quarantine.
    const resent = await start(target, { ...first });
    const dup = await resent.result();
    assert.equal(dup.outcome, 'duplicate-episode');
    assert.notEqual((await node(target)).spec?.unschedulable, true);
  });

  it('XID 48: resets the GPU without approval and returns the node to service', async () => {
    const target = 'gpu-node-3';
    await inject(target, { gpu: 3, xid: 48, eccUncorrected: 2 });
    const handle = await start(target, xidAlert(48));
    const result = await handle.result();
    assert.equal(result.outcome, 'returned-to-service', result.reasons.join('\n'));
    assert.equal(result.class, 'reset-gpu');
    await record('xid48-reset', handle);
    assert.equal(result.decisions.length, 0);
    const gpu = (await gpus.get(target)).gpus[3]!;
    assert.equal(gpu.xid, undefined);
    assert.notEqual((await node(target)).spec?.unschedulable, true);
  });

  it('in an alert storm, cordons first and triages only after the settle time', async () => {
    const target = 'gpu-node-3';
    // The XID 48 test remediated this node: one more remediation on record would reach the repeat
    // guard's limit in later tests.
    await clearRemediationHistory(stack.kc, [target]);
    await inject(target, { gpu: 3, xid: 48, eccUncorrected: 2 });
    // With stormFailures 1 every failure is a storm: 3 s between the cordon and triage.
    const handle = await startOrJoinRemediation(client, {
      clusterId: stack.state.clusterId,
      node: target,
      taskQueue,
      alert: xidAlert(48),
      policy: { ...policy, stormFailures: 1, stormSettleMs: 3_000 },
    });
    // The phase is quarantining from the first workflow task (while the cordon runs) until triage:
    // wait for the settle wait itself, not just the phase.
    const settle = /alert storm to settle \(\d+ nodes? failed within a minute\): triage in 3 s/;
    try {
      const settling = await eventually('the storm settle wait', async () => {
        const s = await handle.query(statusQuery);
        return settle.test(s.waitingFor ?? '') ? s : undefined;
      });
      assert.equal(settling.phase, 'quarantining');
      assert.equal((await node(target)).spec?.unschedulable, true, 'not cordoned while it waits for triage');
    } finally {
      // Even when an assertion above fails, the run ends before later tests use this node.
      await handle.result().catch(() => undefined);
    }
    const result = await handle.result();
    assert.equal(result.outcome, 'returned-to-service', result.reasons.join('\n'));

    const events = (await handle.fetchHistory()).events ?? [];
    const timer = events.findIndex((e) => e.timerStartedEventAttributes);
    const triage = events.findIndex(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'agentTriage',
    );
    assert.ok(timer >= 0 && triage > timer, `timer at event ${timer}, triage scheduled at ${triage}`);
    assert.equal(Number(events[timer]!.timerStartedEventAttributes!.startToFireTimeout?.seconds), 3);
    await record('storm-settle', handle);
  });

  it('XID 13: no quarantine, only the affected pod is restarted', async () => {
    const target = 'gpu-node-4';
    const { apps } = clients(stack.kc);
    const app = 'app13';
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: {
        metadata: { name: app },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app } },
          template: {
            metadata: { labels: { app } },
            spec: { nodeName: target, containers: [{ name: 's', image: 'sim/x' }] },
          },
        },
      },
    });
    const before = await eventually('2 Ready pods', async () => {
      const pods = await livePods(stack.kc, ns.name, app);
      return pods.length === 2 && pods.every(isReady) ? pods : undefined;
    });
    const [victim, bystander] = before as [(typeof before)[0], (typeof before)[0]];
    const handle = await start(
      target,
      xidAlert(13, { pods: [{ namespace: ns.name, name: victim.metadata!.name! }] }),
    );
    const result = await handle.result();
    assert.equal(result.outcome, 'pods-restarted');
    await record('xid13-restart', handle);
    assert.notEqual((await node(target)).spec?.unschedulable, true);
    const after = await livePods(stack.kc, ns.name, app);
    assert.ok(
      after.some((p) => p.metadata?.uid === bystander.metadata?.uid),
      'the unaffected pod was restarted',
    );
    assert.ok(
      !after.some((p) => p.metadata?.uid === victim.metadata?.uid),
      'the affected pod was not restarted',
    );
  });

  it('failed validation keeps the node quarantined with its reason; reject holds it until released', async () => {
    const target = 'gpu-node-1';
    await inject(target, { gpu: 3, xid: 48, remappedRowsFailure: true });
    const handle = await start(target, xidAlert(48));
    const waiting = await phaseOf(handle, 'awaiting-approval');
    assert.equal(waiting.class, 'replace-hardware', waiting.reasons.join('\n'));

    await assert.rejects(
      handle.executeUpdate(approveUpdate, { args: [{ by: '' }] }),
      (err: unknown) =>
        err instanceof WorkflowUpdateFailedError && /operator identity/.test(String(err.cause?.message)),
    );
    await handle.executeUpdate(markRepairedUpdate, { args: [{ by: 'bob', reason: 'swapped nothing' }] });
    const stuck = await phaseOf(handle, 'quarantined');
    assert.match(stuck.quarantineReason ?? '', /validation failed/);
    await assert.rejects(
      handle.executeUpdate(approveUpdate, { args: [{ by: 'bob' }] }),
      (err: unknown) =>
        err instanceof WorkflowUpdateFailedError &&
        /not waiting for approve/.test(String(err.cause?.message)),
    );
    await handle.executeUpdate(rejectUpdate, { args: [{ by: 'bob', reason: 'RMA the board' }] });
    const held = await eventually('the reject applied', async () => {
      const s = await handle.query(statusQuery);
      return /rejected by bob: RMA the board/.test(s.quarantineReason ?? '') ? s : undefined;
    });
    assert.equal(held.phase, 'quarantined', 'a reject holds the run open, the node quarantined');
    const n = await node(target);
    assert.equal(n.spec?.unschedulable, true, 'a rejected node must stay cordoned');
    assert.ok(n.spec?.taints?.some((t) => t.key === 'fleetmedic.io/quarantine'));
    // The board comes back from RMA: the operator releases the node.
    await gpus.set(target, healthyGpuState(target));
    await handle.executeUpdate(releaseUpdate, { args: [{ by: 'bob', reason: 'board replaced' }] });
    const result = await handle.result();
    assert.equal(result.outcome, 'released-by-operator');
    await record('validation-failed-reject', handle);
    assert.notEqual((await node(target)).spec?.unschedulable, true);
  });

  it('never uncordons a node someone else cordoned', async () => {
    const target = 'gpu-node-3';
    const { core } = clients(stack.kc);
    await core.patchNode({ name: target, body: { spec: { unschedulable: true } } }, mergePatch);
    try {
      await inject(target, { gpu: 1, xid: 48 });
      const handle = await start(target, xidAlert(48, { gpu: 1 }));
      const result = await handle.result();
      assert.equal(result.outcome, 'returned-to-service', result.reasons.join('\n'));
      const n = await node(target);
      assert.equal(n.spec?.unschedulable, true, 'fleetmedic uncordoned a node cordoned by someone else');
      assert.equal(
        n.spec?.taints?.find((t) => t.key === 'fleetmedic.io/quarantine'),
        undefined,
      );
    } finally {
      await core.patchNode({ name: target, body: { spec: { unschedulable: false } } }, mergePatch);
    }
  });

  it('with a budget of one drain, three failing nodes are drained one at a time, none blocked by a wait for approval', async () => {
    const targets = ['gpu-node-1', 'gpu-node-2', 'gpu-node-4'];
    for (const t of targets) await inject(t, { gpu: 0, xid: 79 });
    const handles = await Promise.all(targets.map((t) => start(t, xidAlert(79, { gpu: 0 }))));
    const budget = client.workflow.getHandle(fleetBudgetWorkflowId(stack.state.clusterId));
    let maxInFlight = 0;
    // The slot goes back when a drain ends: all three are drained while the first waits for an
    // operator (before the state machine, the first held the only slot until it was approved).
    await eventually(
      'all three drained and waiting for approval',
      async () => {
        const state = await budget.query(fleetBudgetState);
        maxInFlight = Math.max(maxInFlight, state.draining.length);
        const all = await Promise.all(handles.map((h) => h.query(statusQuery)));
        return all.every((x) => x.phase === 'awaiting-approval' && x.reasons.some((r) => /^drained:/.test(r)))
          ? all
          : undefined;
      },
      60_000,
    );
    assert.ok(maxInFlight <= 1, `the budget let ${maxInFlight} drains run at once`);
    // The slot's return is an effect the run sends after its drain ends: the phase can be seen
    // before the budget has taken it back, so it is awaited (bounded), never assumed.
    const slots = await eventually(
      'every slot back once its drain ended',
      async () => {
        const { draining } = await budget.query(fleetBudgetState);
        return draining.length === 0 ? draining : undefined;
      },
      15_000,
    ).catch(async () => (await budget.query(fleetBudgetState)).draining);
    assert.deepEqual(slots, [], 'a slot outlived its drain');
    for (const h of handles) {
      await h.executeUpdate(approveUpdate, { args: [{ by: 'carol' }] });
      assert.equal((await h.result()).outcome, 'returned-to-service');
    }
  });

  it('waits instead of evicting when the pods do not fit elsewhere; a reject holds the node', async () => {
    const target = 'gpu-node-4';
    const { apps } = clients(stack.kc);
    const app = 'pinned';
    // A pod that can only run on the target node: draining it would leave it Pending.
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: {
        metadata: { name: app },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app } },
          template: {
            metadata: { labels: { app } },
            spec: {
              nodeSelector: { 'kubernetes.io/hostname': target },
              containers: [{ name: 's', image: 'sim/x' }],
            },
          },
        },
      },
    });
    const [pod] = await eventually('the pinned pod Ready', async () => {
      const pods = await livePods(stack.kc, ns.name, app);
      return pods.length === 1 && pods.every(isReady) ? pods : undefined;
    });
    await inject(target, { gpu: 2, xid: 48 });
    const handle = await start(target, xidAlert(48, { gpu: 2 }));
    const waiting = await phaseOf(handle, 'waiting-for-capacity');
    assert.match(waiting.waitingFor ?? '', /capacity/);
    // Nothing was evicted while waiting.
    const still = await livePods(stack.kc, ns.name, app);
    assert.equal(still[0]?.metadata?.uid, pod!.metadata?.uid);
    await handle.executeUpdate(rejectUpdate, { args: [{ by: 'dave', reason: 'no spare capacity' }] });
    await eventually('held by the reject', async () =>
      /rejected by dave/.test((await handle.query(statusQuery)).quarantineReason ?? '') ? true : undefined,
    );
    const n = await node(target);
    assert.equal(n.spec?.unschedulable, true);
    assert.equal(
      (await livePods(stack.kc, ns.name, app))[0]?.metadata?.uid,
      pod!.metadata?.uid,
      'evicted after a reject',
    );
    await apps.deleteNamespacedDeployment({ name: app, namespace: ns.name });
    await gpus.set(target, healthyGpuState(target));
    await handle.executeUpdate(releaseUpdate, { args: [{ by: 'dave' }] });
    assert.equal((await handle.result()).outcome, 'released-by-operator');
  });

  it('escalates to an operator when the node agent is unreachable, and ends cleanly when the node is deleted', async () => {
    const { core } = clients(stack.kc);
    // A node with no agent polling its task queue: triage can never be scheduled.
    const manifest = simNodeManifest(98, stack.state.clusterId);
    const name = manifest.metadata!.name!;
    await core.createNode({ body: manifest });
    try {
      await eventually('the new node Ready', async () =>
        (await node(name)).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')
          ? true
          : undefined,
      );
      const handle = await startOrJoinRemediation(client, {
        clusterId: stack.state.clusterId,
        node: name,
        taskQueue,
        alert: xidAlert(48),
        policy: { ...policy, agentScheduleToStartMs: 2_000 },
      });
      const waiting = await phaseOf(handle, 'awaiting-approval');
      assert.equal(waiting.class, 'needs-operator');
      assert.ok(
        waiting.reasons.some((r) => /node agent unreachable/.test(r)),
        waiting.reasons.join('\n'),
      );
      assert.equal((await node(name)).spec?.unschedulable, true);
      await handle.executeUpdate(rejectUpdate, {
        args: [{ by: 'erin', reason: 'node is being decommissioned' }],
      });
      await eventually('held by the reject', async () =>
        (await handle.query(statusQuery)).actions.includes('release') ? true : undefined,
      );
      // The node is deleted while held; the operator's release finds it gone and ends the run.
      await core.deleteNode({ name });
      await handle.executeUpdate(releaseUpdate, { args: [{ by: 'erin' }] });
      assert.equal((await handle.result()).outcome, 'node-gone');
    } finally {
      await core.deleteNode({ name }).catch(() => undefined);
    }
    // A later alert for the deleted node (the autoscaler removed it) ends at once.
    const gone = await start(name, xidAlert(48));
    assert.equal((await gone.result()).outcome, 'node-gone');
  });
});
