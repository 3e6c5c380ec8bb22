import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FleetBudgetRecords } from '../../src/activities/fleet-budget-records.js';
import { bindClusterIdentity } from '../../src/client/cluster-identity.js';
import {
  CLUSTER_HEADER,
  CLUSTER_IDENTITY_WORKFLOW,
  clusterIdentityWorkflowId,
  WRONG_CLUSTER,
} from '../../src/contracts/cluster.js';
import { fleetBudgetWorkflowId, FLEET_BUDGET_WORKFLOW } from '../../src/contracts/fleet-budget.js';
import { ConfigError } from '../../src/errors.js';
import { clusterGuard } from '../../src/workers/cluster-guard.js';
import { workflowBundleOptions } from '../../src/workers/control-worker.js';
import { eventually } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';

const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

describe('the activity guard: an activity of another cluster’s run is refused', () => {
  const ctx = {
    info: { activityType: 'quarantineNode', workflowExecution: { workflowId: 'remediation/b/n1' } },
  };
  const execute = (headers: Record<string, unknown>) => {
    let ran = false;
    const inbound = clusterGuard('a')(ctx as never).inbound!;
    const result = inbound.execute!({ args: [], headers } as never, () => {
      ran = true;
      return Promise.resolve('done');
    });
    return { result, ran: () => ran };
  };

  it('runs an activity of its own cluster, and one without the header', async () => {
    const own = execute({ [CLUSTER_HEADER]: defaultPayloadConverter.toPayload('a') });
    assert.equal(await own.result, 'done');
    const none = execute({});
    assert.equal(await none.result, 'done');
  });

  it('refuses, without running it, an activity of another cluster, naming both', () => {
    const theirs = () => execute({ [CLUSTER_HEADER]: defaultPayloadConverter.toPayload('b') });
    assert.throws(
      theirs,
      (err: unknown) =>
        err instanceof Error &&
        (err as { type?: string }).type === WRONG_CLUSTER &&
        (err as { nonRetryable?: boolean }).nonRetryable === true &&
        /quarantineNode of remediation\/b\/n1 is for cluster b, but this worker serves cluster a/.test(
          err.message,
        ),
    );
  });
});

// On the embedded stack's Temporal and API server: the header travels from a real run (the fleet
// budget's rebuild is its first activity) to a real worker, and the identity binding.
describe('never the wrong cluster (real Temporal, real API server)', () => {
  let stack: TestStack;
  let client: Client;
  let clientConnection: Connection;
  let connection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  const mine = `guard-${randomUUID().slice(0, 8)}`;
  const taskQueue = `cluster-guard-${mine}`;
  const reads: string[] = [];

  before(async () => {
    installQuietRuntime();
    stack = await useTestStack();
    connection = await NativeConnection.connect({ address: stack.state.temporal.address });
    clientConnection = await Connection.connect({ address: stack.state.temporal.address });
    client = new Client({ connection: clientConnection });
    worker = await Worker.create({
      connection,
      taskQueue,
      workflowBundle: await bundleWorkflowCode({ ...workflowBundleOptions(), logger: silent }),
      interceptors: { activity: [clusterGuard(mine)] },
      activities: {
        readFleetBudgetRecords(): Promise<FleetBudgetRecords> {
          reads.push('read');
          return Promise.resolve({
            settings: { paused: null, breaker: { state: 'closed' } },
            settingsError: null,
            draining: [],
            failures: [],
            summary: 'nothing',
          });
        },
      },
    });
    running = worker.run();
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await clientConnection?.close();
    await connection?.close();
  });

  it('a run of another cluster on this worker’s queue gets WrongCluster; its own runs proceed', async () => {
    const start = (clusterId: string) =>
      client.workflow.start(FLEET_BUDGET_WORKFLOW, {
        workflowId: `${fleetBudgetWorkflowId(clusterId)}-${randomUUID().slice(0, 6)}`,
        taskQueue,
        args: [{ clusterId }],
      });
    const theirs = await start(`${mine}-other`);
    const own = await start(mine);
    try {
      const failure = await eventually('the refused activity', async () => {
        const events = (await theirs.fetchHistory()).events ?? [];
        return (
          events.find((e) => e.activityTaskFailedEventAttributes)?.activityTaskFailedEventAttributes ??
          undefined
        );
      });
      assert.equal(failure.failure?.applicationFailureInfo?.type, WRONG_CLUSTER);
      assert.match(
        failure.failure?.message ?? '',
        new RegExp(`is for cluster ${mine}-other, but this worker serves cluster ${mine}`),
      );
      await eventually('the own run rebuilt', async () => {
        const events = (await own.fetchHistory()).events ?? [];
        return events.some((e) => e.activityTaskCompletedEventAttributes) ? true : undefined;
      });
      assert.equal(reads.length, 1, 'only the run of this worker’s cluster read its records');
    } finally {
      await theirs.terminate('test finished').catch(() => undefined);
      await own.terminate('test finished').catch(() => undefined);
    }
  });

  it('binds a cluster ID to the cluster at first use, and refuses it for another cluster', async () => {
    const clusterId = `bind-${randomUUID().slice(0, 8)}`;
    try {
      const first = await bindClusterIdentity({ client, kc: stack.kc, clusterId, taskQueue });
      assert.equal(first.created, true);
      assert.match(first.identity.kubeSystemUid, /^[0-9a-f-]{36}$/);
      const again = await bindClusterIdentity({ client, kc: stack.kc, clusterId, taskQueue });
      assert.equal(again.created, false);
      assert.equal(again.identity.kubeSystemUid, first.identity.kubeSystemUid);
    } finally {
      await client.workflow.getHandle(clusterIdentityWorkflowId(clusterId)).terminate('test finished');
    }

    // Another cluster bound this ID first (its kube-system namespace has another UID).
    const taken = `bind-${randomUUID().slice(0, 8)}`;
    await client.workflow.start(CLUSTER_IDENTITY_WORKFLOW, {
      workflowId: clusterIdentityWorkflowId(taken),
      taskQueue,
      memo: {
        kubeSystemUid: '00000000-0000-0000-0000-000000000001',
        server: 'https://prod-west.example:6443',
        boundAt: '2026-11-01T00:00:00.000Z',
      },
    });
    try {
      await assert.rejects(
        bindClusterIdentity({ client, kc: stack.kc, clusterId: taken, taskQueue }),
        (err: unknown) =>
          err instanceof ConfigError &&
          /cluster ID bind-\w+ is bound to another cluster \(kube-system UID 00000000-0000-0000-0000-000000000001, API server https:\/\/prod-west\.example:6443/.test(
            err.message,
          ) &&
          /check FLEETMEDIC_KUBECONFIG and FLEETMEDIC_CLUSTER_ID/.test(err.message),
      );
    } finally {
      await client.workflow.getHandle(clusterIdentityWorkflowId(taken)).terminate('test finished');
    }
  });
});
