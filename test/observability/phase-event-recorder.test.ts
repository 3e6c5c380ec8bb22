import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '@temporalio/common';
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createControlMetrics, type ControlMetrics } from '../../src/observability/metrics.js';
import {
  createPhaseEventRecorder,
  type PhaseEventRecorderOptions,
} from '../../src/observability/phase-event-recorder.js';
import {
  NODE_EVENT_NAMESPACE,
  phaseEventName,
  type PhaseChange,
} from '../../src/observability/phase-events.js';
import { clients, tempNamespace } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';

/** A logger that keeps the warnings it is given. */
function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const none = () => {};
  return {
    warnings,
    log: none,
    trace: none,
    debug: none,
    info: none,
    warn: (message: string, meta?: Record<string, unknown>) => {
      warnings.push(`${message} ${JSON.stringify(meta ?? {})}`);
    },
    error: none,
  };
}

async function counts(metrics: ControlMetrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.phaseEvents.get()).values) out[String(v.labels.result)] = v.value;
  return out;
}

/**
 * An API server that is not answering: a server on 127.0.0.1 that cuts every connection at once,
 * counting them (each attempt of an Event opens one), and a kubeconfig for it.
 */
async function cuttingServer(): Promise<{ kc: KubeConfig; connections: () => number; close: () => void }> {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  const port = await new Promise<number>((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'cut', server: `https://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'x' }],
    contexts: [{ name: 'cut', cluster: 'cut', user: 'u' }],
    currentContext: 'cut',
  });
  return { kc, connections: () => connections, close: () => server.close() };
}

// The recorder against the test stack's real API server: Events written in the background, once.
describe('phase event recorder', () => {
  let stack: TestStack;
  let seq = 0;
  const runId = `rec${process.pid}${Date.now()}`;

  function change(over: Partial<PhaseChange> = {}): PhaseChange {
    return {
      clusterId: stack.state.clusterId,
      node: 'gpu-node-1',
      workflowId: 'remediation/test/gpu-node-1',
      runId,
      sequence: ++seq,
      phase: 'triage',
      previousPhase: 'quarantining',
      at: new Date().toISOString(),
      previousStartedAt: new Date(Date.now() - 2_000).toISOString(),
      class: 'reset-gpu',
      outcome: null,
      ...over,
    };
  }

  before(async () => {
    stack = await useTestStack();
  });

  /** A recorder on `kc` for this stack's cluster, with its own metrics and a logger that keeps warnings. */
  function recorderFor(kc: KubeConfig, options: Partial<PhaseEventRecorderOptions> = {}) {
    const metrics = createControlMetrics({ defaultMetrics: false });
    const logger = recordingLogger();
    const recorder = createPhaseEventRecorder({
      kc,
      clusterId: stack.state.clusterId,
      metrics,
      logger,
      ...options,
    });
    return { recorder, metrics, logger };
  }

  it('writes the Event in the background, once even when handed the same change twice, and observes the phase', async () => {
    const { recorder, metrics, logger } = recorderFor(stack.kc);
    const c = change();
    assert.equal(recorder.record(c), undefined, 'record returns at once');
    recorder.record(c);
    await recorder.idle();
    const event = await stack.kc
      .makeApiClient(CoreV1Api)
      .readNamespacedEvent({ namespace: NODE_EVENT_NAMESPACE, name: phaseEventName(c) });
    assert.equal(event.reason, 'FleetmedicTriage');
    assert.equal(event.involvedObject.name, 'gpu-node-1');
    assert.deepEqual(await counts(metrics), { created: 1, exists: 1 });
    const observed = (await metrics.phaseDuration.get()).values.find(
      (v) => v.metricName === 'fleetmedic_phase_duration_seconds_count' && v.labels.phase === 'quarantining',
    );
    assert.equal(observed?.value, 2, 'each hand-over observes the previous phase once');
    assert.deepEqual(logger.warnings, []);
  });

  it('writes at most `perSecond` Events a second, each with the time of its phase change', async () => {
    const { recorder, metrics } = recorderFor(stack.kc, { perSecond: 2 });
    const changes = Array.from({ length: 6 }, () => change());
    const started = Date.now();
    for (const c of changes) recorder.record(c);
    await recorder.idle();
    // Two in the first second, two in the second, two in the third: at least two seconds in all.
    assert.ok(Date.now() - started >= 1_900, `6 Events at 2 a second took ${Date.now() - started} ms`);
    assert.deepEqual(await counts(metrics), { created: 6 });
    const core = stack.kc.makeApiClient(CoreV1Api);
    for (const c of changes) {
      const event = await core.readNamespacedEvent({
        namespace: NODE_EVENT_NAMESPACE,
        name: phaseEventName(c),
      });
      assert.equal(new Date(event.eventTime as unknown as string).toISOString(), c.at);
    }
  });

  it('drops an Event the API server refuses (403: no RBAC) at once, logging it, without retries', async () => {
    const ns = await tempNamespace(stack.kc, 'fmrec');
    after(() => ns.remove());
    const { core } = clients(stack.kc);
    await core.createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name: 'nobody' } } });
    const token = await core.createNamespacedServiceAccountToken({
      name: 'nobody',
      namespace: ns.name,
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const nobody = new KubeConfig();
    nobody.loadFromOptions({
      clusters: [{ ...stack.kc.getCurrentCluster()!, name: 'c' }],
      users: [{ name: 'nobody', token: token.status!.token }],
      contexts: [{ name: 'ctx', cluster: 'c', user: 'nobody' }],
      currentContext: 'ctx',
    });
    const { recorder, metrics, logger } = recorderFor(nobody, {
      retryAfterMs: 5_000,
    });
    const started = Date.now();
    recorder.record(change());
    await recorder.idle();
    assert.ok(Date.now() - started < 5_000, 'the refused Event was not retried');
    assert.deepEqual(await counts(metrics), { failed: 1 });
    assert.equal(logger.warnings.length, 1);
    assert.match(logger.warnings[0]!, /phase event not recorded.*refused it \(403\)/);
  });

  it('drops a change for another cluster without writing anything', async () => {
    const { recorder, metrics, logger } = recorderFor(stack.kc);
    const c = change({ clusterId: 'another-cluster' });
    recorder.record(c);
    await recorder.idle();
    assert.deepEqual(await counts(metrics), { failed: 1 });
    assert.match(logger.warnings[0] ?? '', /another cluster dropped.*another-cluster/);
    await assert.rejects(
      stack.kc
        .makeApiClient(CoreV1Api)
        .readNamespacedEvent({ namespace: NODE_EVENT_NAMESPACE, name: phaseEventName(c) }),
      (err: unknown) => (err as { code?: number }).code === 404,
    );
  });

  it('retries an unreachable API server `attempts` times, then gives up; a full queue drops and counts', async () => {
    const server = await cuttingServer();
    after(() => server.close());
    const { recorder, metrics, logger } = recorderFor(server.kc, {
      concurrency: 1,
      maxQueued: 1,
      attempts: 3,
      retryAfterMs: 20,
    });
    recorder.record(change()); // being written
    recorder.record(change()); // queued
    recorder.record(change()); // the queue is full
    await recorder.idle();
    assert.deepEqual(await counts(metrics), { dropped: 1, failed: 2 });
    assert.equal(server.connections(), 6, 'two Events, three attempts each');
    assert.equal(logger.warnings.filter((w) => /queue is full/.test(w)).length, 1);
    assert.equal(logger.warnings.filter((w) => /phase event not recorded/.test(w)).length, 2);
  });
});
