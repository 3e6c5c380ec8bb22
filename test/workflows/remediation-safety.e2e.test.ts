import { WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { V1Node } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import { remediationWorkflowId } from '../../src/contracts/ids.js';
import {
  alertSignal,
  approveUpdate,
  REMEDIATION_WORKFLOW,
  markRepairedUpdate,
  rejectUpdate,
  releaseUpdate,
  retryUpdate,
  statusQuery,
  type RemediationStatus,
} from '../../src/contracts/remediation.js';
import type { AlertSignal, RemediationPolicy } from '../../src/domain/remediation-plan.js';
import {
  EPISODES_ANNOTATION,
  HOLD_ANNOTATION,
  QUARANTINE_TAINT_KEY,
} from '../../src/k8s/remediation-labels.js';
import { mergePatch } from '../../src/k8s/patch.js';
import {
  fleetBudgetState,
  fleetBudgetWorkflowId,
  pauseAutomation,
  resumeAutomation,
} from '../../src/contracts/fleet-budget.js';
import { healthyGpuState, MemoryGpuStateStore, withFault } from '../../src/sim/gpu-state.js';
import { GPU_RESOURCE } from '../../src/k8s/labels.js';
import { simNodeManifest } from '../../src/stack/sim-nodes.js';
import type { gpuRemediationWorkflow } from '../../src/workflows/remediation/workflow.js';
import { clients, deployment, eventually, isReady, livePods, tempNamespace } from '../helpers/k8s.js';
import { FAST_POLICY, xidAlert } from '../helpers/remediation-inputs.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import {
  startRemediationWorkers,
  terminateRemediations,
  waitForPhase,
  type RemediationWorkers,
} from '../helpers/workers.js';

installQuietRuntime();

const policy: Partial<RemediationPolicy> = { ...FAST_POLICY, approvalReminderMs: 60_000 };
type Handle = WorkflowHandle<typeof gpuRemediationWorkflow>;

/** This file's own nodes (one per scenario), so that no scenario depends on another's leftovers. */
const NODE_INDEX = {
  a: 71,
  b: 72,
  d: 73,
  e: 74,
  f: 75,
  g1: 76,
  g2: 77,
  i: 78,
  unread: 79,
  n: 80,
  h1: 81,
  h2: 82,
  h3: 83,
} as const;

// The do-no-harm promises of docs/remediation.md on the embedded stack, each path of issue #13 on a
// node of its own: real Temporal, real control plane (kwok nodes), the real activities, simulated
// node agents. Each fails on the remediation before the state machine (see the issue for how).
describe('GPU remediation: every safety promise holds end to end', () => {
  let stack: TestStack;
  let workers: RemediationWorkers | undefined;
  let client: Client;
  const gpus = new MemoryGpuStateStore();
  const taskQueue = `fleetmedic-safety-${process.pid}`;
  let ns: { name: string; remove: () => Promise<void> };
  const created: string[] = [];

  before(async () => {
    stack = await useTestStack();
    const { core } = clients(stack.kc);
    for (const [key, index] of Object.entries(NODE_INDEX)) {
      const manifest = simNodeManifest(index, stack.state.clusterId);
      if (key === 'i') fourGpus(manifest);
      await core.deleteNode({ name: manifest.metadata!.name! }).catch(() => undefined);
      await eventually(`${manifest.metadata!.name} gone`, async () =>
        (await core.readNode({ name: manifest.metadata!.name! }).catch(() => undefined)) === undefined
          ? true
          : undefined,
      );
      await core.createNode({ body: manifest });
      created.push(manifest.metadata!.name!);
    }
    for (const name of created)
      await eventually(`${name} Ready`, async () =>
        (await core.readNode({ name })).status?.conditions?.some(
          (c) => c.type === 'Ready' && c.status === 'True',
        )
          ? true
          : undefined,
      );
    // Agents for every node, these included; the breaker off (most of this fleet fails on purpose),
    // one drain at a time (path g is about that slot).
    workers = await startRemediationWorkers(stack, {
      taskQueue,
      gpus,
      budgetConfig: { breakerThreshold: 1, minHealthyFraction: 0, maxConcurrentDrains: 1 },
    });
    client = workers.client;
    ns = await tempNamespace(stack.kc, 'fmsafe');
  });

  after(async () => {
    // Open runs of this file end with it, then its nodes go.
    await terminateRemediations(client, stack.state.clusterId, created);
    await workers?.stop();
    await ns?.remove();
    for (const name of created)
      await clients(stack.kc)
        .core.deleteNode({ name })
        .catch(() => undefined);
  });

  const nodeName = (key: keyof typeof NODE_INDEX) => simNodeManifest(NODE_INDEX[key], 'x').metadata!.name!;
  const readNode = (name: string) => clients(stack.kc).core.readNode({ name });
  const inject = async (node: string, fault: Parameters<typeof withFault>[1]) =>
    gpus.set(node, withFault(await gpus.get(node), fault));
  const start = (node: string, alert: AlertSignal, extra: Partial<RemediationPolicy> = {}) =>
    startOrJoinRemediation(client, {
      clusterId: stack.state.clusterId,
      node,
      taskQueue,
      alert,
      policy: { ...policy, ...extra },
    });
  const until = (handle: Handle, what: string, test: (s: RemediationStatus) => boolean, timeoutMs = 60_000) =>
    eventually(
      what,
      async () => {
        const s = await handle.query(statusQuery);
        return test(s) ? s : undefined;
      },
      timeoutMs,
    );
  const cordoned = async (name: string) => {
    const n = await readNode(name);
    return (
      n.spec?.unschedulable === true && (n.spec?.taints ?? []).some((t) => t.key === QUARANTINE_TAINT_KEY)
    );
  };

  /** Pods on `node` that no eviction may take (a PDB with maxUnavailable 0); `unblock` deletes the PDB. */
  async function blockedPods(node: string, app: string) {
    const { apps, policy: pdbApi } = clients(stack.kc);
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: deployment(app, 1, { preferNode: node }),
    });
    await pdbApi.createNamespacedPodDisruptionBudget({
      namespace: ns.name,
      body: { metadata: { name: app }, spec: { maxUnavailable: 0, selector: { matchLabels: { app } } } },
    });
    const [pod] = await eventually(`${app} Ready on ${node}`, async () => {
      const pods = await livePods(stack.kc, ns.name, app);
      return pods.length === 1 && pods.every(isReady) && pods[0]!.spec?.nodeName === node ? pods : undefined;
    });
    return {
      pod: pod!,
      unblock: () => pdbApi.deleteNamespacedPodDisruptionBudget({ name: app, namespace: ns.name }),
    };
  }

  /** The operator returns a held node to service; the run ends released-by-operator, the node clean. */
  async function releaseByOperator(handle: Handle, node: string) {
    await gpus.set(node, healthyGpuState(node));
    await handle.executeUpdate(releaseUpdate, { args: [{ by: 'ops', reason: 'test cleanup' }] });
    const end = await handle.result();
    assert.equal(end.outcome, 'released-by-operator', end.reasons.join('\n'));
    const n = await readNode(node);
    assert.notEqual(n.spec?.unschedulable, true);
    assert.equal(n.metadata?.annotations?.[HOLD_ANNOTATION], undefined, 'the hold outlived the release');
  }

  it('a. an XID 79 that joins an XID 13 pod restart goes on to quarantine', async () => {
    const node = nodeName('a');
    const { pod, unblock } = await blockedPods(node, 'app-a');
    const handle = await start(
      node,
      xidAlert(13, { pods: [{ namespace: ns.name, name: pod.metadata!.name! }] }),
    );
    await waitForPhase(handle, 'restarting-pods');
    await inject(node, { gpu: 3, xid: 79 });
    await start(node, xidAlert(79));
    await until(handle, 'the XID 79 joined', (s) => s.alerts === 2);
    await unblock();
    const waiting = await waitForPhase(handle, 'awaiting-approval');
    assert.equal(waiting.class, 'reboot-node', waiting.reasons.join('\n'));
    assert.ok(await cordoned(node), 'the node that reported XID 79 was not quarantined');
    await handle.executeUpdate(rejectUpdate, { args: [{ by: 'ops', reason: 'test' }] });
    await releaseByOperator(handle, node);
  });

  it('b, c. a reject accepted during the drain wins when it returns, sticks to the node, and only release lifts it', async () => {
    const node = nodeName('b');
    const { unblock } = await blockedPods(node, 'app-b');
    await inject(node, { gpu: 3, xid: 48 });
    const handle = await start(node, xidAlert(48));
    await until(handle, 'the drain running', (s) => s.running === 'drain');
    // Accepted while the drain runs (refused outright before the machine), applied when it returns.
    const answer = await handle.executeUpdate(rejectUpdate, { args: [{ by: 'rma-desk', reason: 'RMA' }] });
    assert.match(answer, /reject accepted/);
    const pending = await handle.query(statusQuery);
    assert.deepEqual([...pending.actions], [], 'a decision is pending: nothing else may overtake it');
    await unblock();
    const held = await until(handle, 'the reject applied', (s) =>
      /rejected by rma-desk/.test(s.quarantineReason ?? ''),
    );
    assert.equal(held.phase, 'quarantined');
    assert.deepEqual([...held.actions], ['markRepaired', 'release']);
    // No reset followed the reject: the GPU still reports its XID, the node stays quarantined.
    assert.equal((await gpus.get(node)).gpus[3]!.xid, 48, 'the GPU was reset after a reject');
    assert.ok(await cordoned(node));
    // The mark on the node (written right after the reject applied) outlives the run.
    const mark = await eventually('the hold marked on the node', async () => {
      const raw = (await readNode(node)).metadata?.annotations?.[HOLD_ANNOTATION];
      return raw === undefined ? undefined : (JSON.parse(raw) as { by?: string; runId?: string });
    });
    assert.equal(mark.by, 'rma-desk');
    assert.equal(mark.runId, (await handle.describe()).runId, 'the hold names the run');

    // c: the run is gone (terminated by someone), a new alert arrives: the new run keeps the node held.
    await handle.terminate('lost by an operator');
    const again = await start(node, xidAlert(48));
    const stillHeld = await until(again, 'held again', (s) => s.phase === 'quarantined');
    assert.match(stillHeld.quarantineReason ?? '', /rejected by rma-desk: RMA/);
    assert.equal((await gpus.get(node)).gpus[3]!.xid, 48);
    await assert.rejects(
      again.executeUpdate(approveUpdate, { args: [{ by: 'ops' }] }),
      (err: unknown) =>
        err instanceof WorkflowUpdateFailedError &&
        /accepts markRepaired, release/.test(String(err.cause?.message)),
    );
    await releaseByOperator(again, node);
  });

  it('d. a re-sent episode never re-quarantines, however long after; an unreadable record goes to an operator', async () => {
    const node = nodeName('d');
    await inject(node, { gpu: 3, xid: 48 });
    const alert = xidAlert(48);
    // The old remediation re-quarantined a re-send once a cooldown (default 24 h) had passed.
    const first = await start(node, alert);
    assert.equal((await first.result()).outcome, 'returned-to-service');
    await new Promise((r) => setTimeout(r, 50));
    const resent = await start(node, { ...alert });
    const dup = await resent.result();
    assert.equal(dup.outcome, 'duplicate-episode', dup.reasons.join('\n'));
    assert.equal(await cordoned(node), false);

    const unread = nodeName('unread');
    await clients(stack.kc).core.patchNode(
      { name: unread, body: { metadata: { annotations: { [EPISODES_ANNOTATION]: '{not json' } } } },
      mergePatch,
    );
    await inject(unread, { gpu: 3, xid: 48 });
    const handle = await start(unread, xidAlert(48));
    const held = await waitForPhase(handle, 'quarantined');
    assert.match(held.quarantineReason ?? '', /annotation cannot be read/);
    assert.ok(held.actions.includes('retry'));
    assert.ok(await cordoned(unread), 'a possibly repaired fault was not contained');
    await clients(stack.kc).core.patchNode(
      { name: unread, body: { metadata: { annotations: { [EPISODES_ANNOTATION]: null } } } },
      mergePatch,
    );
    await handle.executeUpdate(retryUpdate, { args: [{ by: 'ops', reason: 'annotation fixed' }] });
    assert.equal((await handle.result()).outcome, 'returned-to-service');
  });

  it('e. a drain past its deadline keeps the run open in quarantined with retry; retry finishes it', async () => {
    const node = nodeName('e');
    const { unblock } = await blockedPods(node, 'app-e');
    await inject(node, { gpu: 3, xid: 48 });
    const handle = await start(node, xidAlert(48), { drainDeadlineSeconds: 3 });
    const held = await waitForPhase(handle, 'quarantined');
    assert.match(held.quarantineReason ?? '', /drain failed \(DrainDeadlineExceeded/);
    assert.deepEqual([...held.actions], ['retry', 'markRepaired', 'reject', 'release']);
    assert.ok(await cordoned(node));
    await unblock();
    await handle.executeUpdate(retryUpdate, { args: [{ by: 'ops', reason: 'PDB fixed' }] });
    const end = await handle.result();
    assert.equal(end.outcome, 'returned-to-service', end.reasons.join('\n'));
    assert.equal(await cordoned(node), false);
  });

  it('f. an escalation during the approval wait asks again for the repair the class needs now', async () => {
    const node = nodeName('f');
    await inject(node, { gpu: 3, xid: 48 });
    const handle = await start(node, xidAlert(48), { autoReset: false });
    const asked = await waitForPhase(handle, 'awaiting-approval');
    assert.match(asked.waitingFor ?? '', /reset/i);
    await inject(node, { gpu: 3, xid: 79 });
    await start(node, xidAlert(79));
    const again = await until(
      handle,
      'the plan asked again',
      (s) => s.class === 'reboot-node' && /reboot/i.test(s.waitingFor ?? ''),
    );
    assert.equal(again.phase, 'awaiting-approval');
    await handle.executeUpdate(rejectUpdate, { args: [{ by: 'ops' }] });
    await releaseByOperator(handle, node);
  });

  it('g. the drain slot goes back when the drain ends: a node waiting days for approval blocks no other drain', async () => {
    const [one, two] = [nodeName('g1'), nodeName('g2')];
    await inject(one, { gpu: 3, xid: 79 });
    await inject(two, { gpu: 3, xid: 79 });
    const first = await start(one, xidAlert(79));
    await waitForPhase(first, 'awaiting-approval');
    // One drain at a time (the budget above), and the first node waits for an operator: the second
    // node is drained all the same.
    const second = await start(two, xidAlert(79));
    const drained = await waitForPhase(second, 'awaiting-approval');
    assert.ok(
      drained.reasons.some((r) => /^drained:/.test(r)),
      drained.reasons.join('\n'),
    );
    for (const [h, n] of [
      [first, one],
      [second, two],
    ] as const) {
      await gpus.set(n, healthyGpuState(n));
      await h.executeUpdate(markRepairedUpdate, { args: [{ by: 'ops', reason: 'rebooted by hand' }] });
      assert.equal((await h.result()).outcome, 'returned-to-service');
    }
  });

  it('h. the budget terminated mid-storm is rebuilt from the cluster: no limit exceeded, a pause kept', async () => {
    const [h1, h2, h3] = [nodeName('h1'), nodeName('h2'), nodeName('h3')];
    const budget = client.workflow.getHandle(fleetBudgetWorkflowId(stack.state.clusterId));
    const { unblock } = await blockedPods(h1, 'app-h');
    await inject(h1, { gpu: 3, xid: 48 });
    const first = await start(h1, xidAlert(48));
    await until(first, 'h1 draining (it holds the only slot)', (s) => s.running === 'drain');
    assert.equal((await first.query(statusQuery)).holdsDrainSlot, true);

    // The budget is lost mid-storm; more nodes fail. Each failure report restarts it, empty but for
    // what it rebuilds from the cluster: h1 still drains.
    await budget.terminate('test: the budget is lost mid-storm');
    const handles = [first];
    for (const node of [h2, h3]) {
      await inject(node, { gpu: 3, xid: 48 });
      handles.push(await start(node, xidAlert(48)));
    }
    // Every drain slot in use of every budget state seen from here on: never above the limit of 1.
    let watching = true;
    const seen: string[][] = [];
    const watcher = (async () => {
      while (watching) {
        const state = await budget.query(fleetBudgetState).catch(() => undefined);
        if (state) seen.push([...state.draining]);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      for (const handle of handles.slice(1))
        await until(handle, 'waiting for the slot h1 holds', (s) => s.phase === 'waiting-for-budget');
      const rebuilt = await budget.query(fleetBudgetState);
      assert.deepEqual([...rebuilt.draining], [h1], 'the restarted budget forgot the drain in flight');

      // An operator pauses; the budget is lost again; the pause stands in the rebuilt one.
      await budget.executeUpdate(pauseAutomation, { args: [{ by: 'ops', reason: 'storm' }] });
      await budget.terminate('test: lost again while paused');
      await unblock();
      // h1's drain ends: giving its slot back restarts the budget, which rebuilds paused.
      await eventually('the budget restarted', async () =>
        (await budget.describe()).status.name === 'RUNNING' ? true : undefined,
      );
      const paused = await eventually('the rebuilt budget', async () => {
        const state = await budget.query(fleetBudgetState);
        // Before its rebuild a restarted budget's state is the empty one it started with.
        return !state.rebuilding && state.draining.length === 0 ? state : undefined;
      });
      assert.equal(paused.paused, true, 'the pause was forgotten when the budget restarted');
      for (const handle of handles.slice(1))
        await until(handle, 'refused while paused', (s) => /paused/.test(s.waitingFor ?? ''));
      assert.equal((await first.result()).outcome, 'returned-to-service');

      await budget.executeUpdate(resumeAutomation, { args: [{ by: 'ops', reason: 'storm over' }] });
      for (const handle of handles.slice(1)) {
        const end = await handle.result();
        assert.equal(end.outcome, 'returned-to-service', end.reasons.join('\n'));
      }
    } finally {
      watching = false;
      await watcher;
      await unblock().catch(() => undefined);
    }
    const most = Math.max(...seen.map((d) => d.length));
    assert.ok(most <= 1, `more than one drain at once: ${JSON.stringify(seen.find((d) => d.length > 1))}`);
    // The drains themselves, from the runs' histories: one after another, never overlapping.
    const spans = (await Promise.all(handles.map(drainSpans))).flat().sort((a, b) => a.from - b.from);
    assert.equal(spans.length, 3, JSON.stringify(spans));
    for (let i = 1; i < spans.length; i++)
      assert.ok(spans[i]!.from >= spans[i - 1]!.to, `drains overlap: ${JSON.stringify(spans)}`);
  });

  /** When each drain activity of the run was scheduled and when it completed (ms since the epoch). */
  async function drainSpans(handle: Handle): Promise<{ from: number; to: number }[]> {
    const events = (await handle.fetchHistory()).events ?? [];
    const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
      Number(t?.seconds ?? 0) * 1000 + Math.floor((t?.nanos ?? 0) / 1e6);
    return events.flatMap((e) => {
      if (e.activityTaskScheduledEventAttributes?.activityType?.name !== 'drainNode') return [];
      const done = events.find(
        (c) => Number(c.activityTaskCompletedEventAttributes?.scheduledEventId) === Number(e.eventId),
      );
      return [{ from: ms(e.eventTime), to: done ? ms(done.eventTime) : Infinity }];
    });
  }

  it('i. triage expects the node’s own GPU count: an XID 48 on a 4-GPU node is reset, not escalated', async () => {
    const node = nodeName('i');
    const four = healthyGpuState(node);
    await gpus.set(node, { ...four, gpus: four.gpus.slice(0, 4) });
    await inject(node, { gpu: 2, xid: 48 });
    const handle = await start(node, xidAlert(48, { gpu: 2 }));
    const end = await handle.result();
    assert.equal(end.outcome, 'returned-to-service', end.reasons.join('\n'));
    assert.equal(end.class, 'reset-gpu');
    assert.equal(end.decisions.length, 0);
  });

  it('n. a node held for weeks continues as new with its state, and the operator still decides', async () => {
    const node = nodeName('n');
    await inject(node, { gpu: 3, xid: 79 });
    const clusterId = stack.state.clusterId;
    // Reminders every 200 ms grow the history the way weeks of 15-minute reminders do.
    const handle = await client.workflow.signalWithStart<typeof gpuRemediationWorkflow, [AlertSignal]>(
      REMEDIATION_WORKFLOW,
      {
        workflowId: remediationWorkflowId(clusterId, node),
        taskQueue,
        args: [
          { clusterId, node, policy: { ...policy, approvalReminderMs: 200 }, continueAsNewAfterEvents: 80 },
        ],
        signal: alertSignal,
        signalArgs: [xidAlert(79)],
      },
    );
    const latest = client.workflow.getHandle<typeof gpuRemediationWorkflow>(handle.workflowId);
    await eventually(
      'continued as new',
      async () => ((await latest.describe()).runId !== handle.signaledRunId ? true : undefined),
      60_000,
    );
    const s = await until(latest, 'the new run waiting', (x) => x.phase === 'awaiting-approval');
    assert.equal(s.class, 'reboot-node');
    assert.ok(s.reminders > 0, 'the reminders of the first run were forgotten');
    assert.ok(
      s.reasons.some((r) => /^drained:/.test(r)),
      s.reasons.join('\n'),
    );
    const history = await latest.fetchHistory();
    assert.ok((history.events?.length ?? 0) < 400, `${history.events?.length} events in the new run`);
    await latest.executeUpdate(approveUpdate, { args: [{ by: 'ops', reason: 'reboot window' }] });
    const end = await latest.result();
    assert.equal(end.outcome, 'returned-to-service', end.reasons.join('\n'));
    assert.deepEqual(
      end.decisions.map((d) => [d.action, d.by]),
      [['approve', 'ops']],
    );
  });
});

/** Makes a simulated node a 4-GPU node (capacity, allocatable and the GPU count label). */
function fourGpus(manifest: V1Node): void {
  manifest.metadata!.labels!['nvidia.com/gpu.count'] = '4';
  manifest.status!.capacity![GPU_RESOURCE] = '4';
  manifest.status!.allocatable![GPU_RESOURCE] = '4';
}
