import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { Command } from 'commander';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bindClusterIdentity } from '../../src/client/cluster-identity.js';
import { registerDrillCommand } from '../../src/cli/commands/drill.js';
import { addGlobalFlags, resolveTargets, type Targets } from '../../src/cli/context.js';
import { guardDrillTarget } from '../../src/cli/drill-target.js';
import { loadConfig } from '../../src/config/config.js';
import { CLUSTER_IDENTITY_WORKFLOW, clusterIdentityWorkflowId } from '../../src/contracts/cluster.js';
import { drillWorkflowId } from '../../src/contracts/drill.js';
import { ConfigError } from '../../src/errors.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

// The embedded stack's API server and Temporal, reached as a real cluster would be (explicit
// configuration, not the stack's record): the guard reads the kube-system UID the context reaches
// and the cluster ID's binding, as `bindClusterIdentity` records it.
describe('the drill’s real-cluster guard: the cluster the context reaches (real Temporal, real API server)', () => {
  let stack: TestStack;
  let connection: Connection;
  let client: Client;
  let dir: string;
  let kubeconfig: string;
  let context: string;
  const taskQueue = `drill-guard-${randomUUID().slice(0, 8)}`;
  const bindings: string[] = [];

  before(async () => {
    installQuietRuntime();
    stack = await useTestStack();
    connection = await Connection.connect({ address: stack.state.temporal.address });
    client = new Client({ connection, namespace: stack.config.temporalNamespace });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-drill-guard-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    // A copy written by the test, whose context has a name of its own.
    const config = JSON.parse(stack.kc.exportConfig()) as {
      contexts: Array<{ name: string }>;
      'current-context': string;
    };
    context = `sim-${randomUUID().slice(0, 6)}`;
    for (const c of config.contexts) if (c.name === config['current-context']) c.name = context;
    config['current-context'] = context;
    await fs.writeFile(kubeconfig, JSON.stringify(config));
  });

  after(async () => {
    for (const clusterId of bindings) {
      await client.workflow
        .getHandle(clusterIdentityWorkflowId(clusterId))
        .terminate('test finished')
        .catch(() => undefined);
    }
    await connection?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const targetsFor = (clusterId: string): Promise<Targets> =>
    resolveTargets(
      loadConfig(process.env, { temporalAddress: stack.state.temporal.address, kubeconfig, clusterId }),
    );

  /** `fleetmedic --temporal-address … --cluster-id <id> drill --kubeconfig … --context … --confirm-cluster <id>`. */
  const drill = (clusterId: string, drillId: string): Promise<unknown> => {
    const program = new Command().exitOverride();
    addGlobalFlags(program);
    registerDrillCommand(program, { stdout() {}, stderr() {} });
    return program.parseAsync(
      [
        ...['--temporal-address', stack.state.temporal.address, '--cluster-id', clusterId, 'drill'],
        ...['--kubeconfig', kubeconfig, '--context', context, '--confirm-cluster', clusterId],
        ...['--target-url', 'http://127.0.0.1:1', '--drill-id', drillId],
      ],
      { from: 'user' },
    );
  };

  const notStarted = async (clusterId: string, drillId: string) => {
    await assert.rejects(
      client.workflow.getHandle(drillWorkflowId(clusterId, drillId)).describe(),
      WorkflowNotFoundError,
    );
  };

  it('allows the cluster its cluster ID is bound to, draining a node only with --drain-node', async () => {
    const clusterId = `guard-${randomUUID().slice(0, 8)}`;
    bindings.push(clusterId);
    await bindClusterIdentity({ client, kc: stack.kc, clusterId, taskQueue });
    const targets = await targetsFor(clusterId);
    const flags = { kubeconfigFlag: true, context, confirmCluster: clusterId, targetUrl: true };
    const drain = await guardDrillTarget(targets, { ...flags, drainNode: true });
    assert.equal(drain.drainNode, true);
    assert.equal(drain.kc.getCurrentContext(), context);
    // Without --drain-node: allowed, and the drill evicts its replica without draining the node.
    const evictOnly = await guardDrillTarget(targets, { ...flags, drainNode: false });
    assert.equal(evictOnly.drainNode, false);
  });

  it('refuses, naming both, a cluster ID bound to another cluster; no drill starts', async () => {
    const clusterId = `guard-${randomUUID().slice(0, 8)}`;
    bindings.push(clusterId);
    // Another cluster bound this ID first (its kube-system namespace has another UID).
    await client.workflow.start(CLUSTER_IDENTITY_WORKFLOW, {
      workflowId: clusterIdentityWorkflowId(clusterId),
      taskQueue,
      memo: {
        kubeSystemUid: '00000000-0000-0000-0000-000000000001',
        server: 'https://prod-west.example:6443',
        boundAt: '2026-11-01T00:00:00.000Z',
      },
    });
    await assert.rejects(
      drill(clusterId, 'mismatch'),
      (err: unknown) =>
        err instanceof ConfigError &&
        new RegExp(
          `cluster ID ${clusterId} is bound to the cluster at https://prod-west\\.example:6443 \\(kube-system UID ` +
            `00000000-0000-0000-0000-000000000001, since 2026-11-01T00:00:00\\.000Z\\), but --kubeconfig .* ` +
            `--context ${context} reaches ${escape(stack.kc.getCurrentCluster()!.server)} ` +
            `\\(kube-system UID [0-9a-f-]{36}\\)`,
        ).test(err.message),
    );
    await notStarted(clusterId, 'mismatch');
  });

  it('refuses a cluster ID no control worker has bound, and one whose binding was terminated', async () => {
    const clusterId = `guard-${randomUUID().slice(0, 8)}`;
    await assert.rejects(
      drill(clusterId, 'unbound'),
      (err: unknown) =>
        err instanceof ConfigError &&
        new RegExp(`cluster ID ${clusterId} is bound to no cluster yet`).test(err.message),
    );
    await notStarted(clusterId, 'unbound');
    await bindClusterIdentity({ client, kc: stack.kc, clusterId, taskQueue });
    await client.workflow.getHandle(clusterIdentityWorkflowId(clusterId)).terminate('bind again');
    await assert.rejects(
      guardDrillTarget(await targetsFor(clusterId), {
        kubeconfigFlag: true,
        context,
        confirmCluster: clusterId,
        targetUrl: true,
        drainNode: false,
      }),
      (err: unknown) => err instanceof ConfigError && /is bound to no cluster yet/.test(err.message),
    );
  });
});
