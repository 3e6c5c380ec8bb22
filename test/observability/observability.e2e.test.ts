import { CoreV1Api, EventsV1Api } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import type { AlertSignal, RemediationPolicy } from '../../src/domain/remediation-plan.js';
import {
  EVENT_SEQUENCE_ANNOTATION,
  NODE_EVENT_NAMESPACE,
  phaseEventName,
  REPORTING_CONTROLLER,
} from '../../src/observability/phase-events.js';
import { MemoryGpuStateStore, withFault } from '../../src/sim/gpu-state.js';
import { simNodeManifest } from '../../src/stack/sim-nodes.js';
import { approveUpdate, statusQuery } from '../../src/contracts/remediation.js';
import { eventually } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import { startRemediationWorkers, type RemediationWorkers } from '../helpers/workers.js';
import { clearRemediationHistory } from '../helpers/k8s.js';
import { FAST_POLICY, xidAlert } from '../helpers/remediation-inputs.js';

installQuietRuntime();

const policy: Partial<RemediationPolicy> = { ...FAST_POLICY, approvalReminderMs: 600_000 };

/** `name value` lines of a Prometheus scrape, for metrics without labels. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

// What an SRE sees without Temporal: Events on the Node (kubectl describe node / kubectl events) and
// the control worker's /metrics, on the test stack with real remediations.
describe('node Events and metrics end to end', () => {
  let stack: TestStack;
  let workers: RemediationWorkers | undefined;
  const gpus = new MemoryGpuStateStore();
  const taskQueue = `fleetmedic-obs-${process.pid}`;

  before(async () => {
    stack = await useTestStack();
    workers = await startRemediationWorkers(stack, {
      taskQueue,
      gpus,
      budgetConfig: { breakerThreshold: 1, minHealthyFraction: 0, maxConcurrentDrains: 1 },
      metricsPort: 0,
    });
    await clearRemediationHistory(stack.kc, workers.nodes);
  });

  after(async () => {
    await workers?.stop();
  });

  function start(node: string, a: AlertSignal) {
    return startOrJoinRemediation(workers!.client, {
      clusterId: stack.state.clusterId,
      node,
      taskQueue,
      alert: a,
      policy,
    });
  }

  async function scrape(): Promise<string> {
    const url = workers!.observability.server!.url;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const response = await fetch(`${url}/metrics`);
    assert.equal(response.status, 200);
    return response.text();
  }

  it('an automatic GPU reset leaves one Event per phase on the Node, in order, and phase durations', async () => {
    const target = 'gpu-node-3';
    await gpus.set(target, withFault(await gpus.get(target), { gpu: 3, xid: 48, eccUncorrected: 2 }));
    const handle = await start(target, xidAlert(48));
    const result = await handle.result();
    assert.equal(result.outcome, 'returned-to-service', result.reasons.join('\n'));

    // events.k8s.io/v1, as `kubectl events --for node/<name>` reads them. The control worker's Event
    // recorder writes them in the background: the last one may come just after the run closed.
    const prefix = phaseEventName({ node: target, runId: handle.signaledRunId, sequence: 0 }).replace(
      /0$/,
      '',
    );
    const listed = await eventually('the seven Events of the run', async () => {
      const list = await stack.kc.makeApiClient(EventsV1Api).listNamespacedEvent({
        namespace: NODE_EVENT_NAMESPACE,
        fieldSelector: `regarding.kind=Node,regarding.name=${target},reportingController=${REPORTING_CONTROLLER}`,
      });
      return list.items.filter((e) => e.metadata?.name?.startsWith(prefix)).length >= 7 ? list : undefined;
    });
    const ours = listed.items
      .filter((e) => e.metadata?.name?.startsWith(prefix))
      .sort(
        (a, b) =>
          Number(a.metadata?.annotations?.[EVENT_SEQUENCE_ANNOTATION]) -
          Number(b.metadata?.annotations?.[EVENT_SEQUENCE_ANNOTATION]),
      );
    assert.deepEqual(
      ours.map((e) => e.reason),
      [
        'FleetmedicQuarantining',
        'FleetmedicTriage',
        'FleetmedicDraining',
        'FleetmedicRepairing',
        'FleetmedicValidating',
        'FleetmedicReleasing',
        'FleetmedicDone',
      ],
    );
    // Event times follow the phases (the workflow's clock), so sorting by time gives the same order.
    const times = ours.map((e) => new Date(e.eventTime as unknown as string).getTime());
    assert.deepEqual(
      [...times].sort((a, b) => a - b),
      times,
    );
    assert.ok(ours.every((e) => e.type === 'Normal'));
    assert.match(ours[0]!.note ?? '', /received -> quarantining; class reset-gpu/);
    assert.match(ours.at(-1)!.note ?? '', /releasing -> done; class reset-gpu; outcome returned-to-service/);
    assert.equal(ours[0]!.regarding?.kind, 'Node');
    assert.equal(ours[0]!.reportingController, 'fleetmedic.io/remediation');

    // The same Events through core/v1, as `kubectl describe node` and `kubectl get events` show them.
    const core = await stack.kc.makeApiClient(CoreV1Api).listNamespacedEvent({
      namespace: NODE_EVENT_NAMESPACE,
      fieldSelector: `involvedObject.kind=Node,involvedObject.name=${target},source=fleetmedic`,
    });
    const coreOurs = core.items.filter((e) => e.metadata?.name?.startsWith(prefix));
    assert.equal(coreOurs.length, ours.length);
    assert.ok(coreOurs.every((e) => e.source?.component === 'fleetmedic'));

    // Each phase that ended was observed once in the duration histogram.
    const text = await scrape();
    for (const phase of [
      'received',
      'quarantining',
      'triage',
      'draining',
      'repairing',
      'validating',
      'releasing',
    ]) {
      const count = Number(
        text.match(
          new RegExp(`^fleetmedic_phase_duration_seconds_count\\{phase="${phase}"\\} (\\d+)$`, 'm'),
        )?.[1],
      );
      assert.ok(count >= 1, `no duration observed for phase ${phase}`);
    }
    assert.match(text, /^fleetmedic_phase_events_total\{result="created"\} \d+$/m);
  });

  it('/metrics: a node waiting for approval is quarantined, its drain slot already back; after approve + release not quarantined', async () => {
    const target = 'gpu-node-2';
    const before = sample(await scrape(), 'fleetmedic_nodes_quarantined');
    assert.equal(typeof before, 'number');
    await gpus.set(target, withFault(await gpus.get(target), { gpu: 3, xid: 79 }));
    const handle = await start(target, xidAlert(79));
    await eventually(
      'awaiting approval',
      async () => ((await handle.query(statusQuery)).phase === 'awaiting-approval' ? true : undefined),
      60_000,
    );
    // Drain concurrency is not out-of-service time: the slot went back when the drain ended.
    const waiting = await eventually('the node scraped as quarantined, no slot in use', async () => {
      const text = await scrape();
      return sample(text, 'fleetmedic_nodes_quarantined') === before! + 1 &&
        sample(text, 'fleetmedic_fleet_budget_slots_in_use') === 0
        ? text
        : undefined;
    });
    assert.equal(sample(waiting, 'fleetmedic_nodes_quarantined'), before! + 1);
    assert.equal(sample(waiting, 'fleetmedic_fleet_budget_slots_limit'), 1);
    assert.equal(sample(waiting, 'fleetmedic_fleet_breaker_open'), 0);
    assert.equal(sample(waiting, 'fleetmedic_automation_paused'), 0);
    assert.equal(sample(waiting, 'fleetmedic_unreachable_agents'), 0);

    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    assert.equal((await handle.result()).outcome, 'returned-to-service');
    const released = await scrape();
    assert.equal(sample(released, 'fleetmedic_nodes_quarantined'), before);
    assert.equal(sample(released, 'fleetmedic_fleet_budget_slots_in_use'), 0);
  });

  it('/metrics: a GPU node whose agent never polls counts as unreachable', async () => {
    const core = stack.kc.makeApiClient(CoreV1Api);
    const manifest = simNodeManifest(96, stack.state.clusterId);
    await core.createNode({ body: manifest });
    try {
      // The poller check is cached for 30 s: wait for a scrape that saw the new node.
      await eventually(
        'the agentless node counted',
        async () => (sample(await scrape(), 'fleetmedic_unreachable_agents') === 1 ? true : undefined),
        60_000,
      );
    } finally {
      await core.deleteNode({ name: manifest.metadata!.name! });
    }
  });
});
