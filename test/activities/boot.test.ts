import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import {
  createKubernetesActivities,
  type KubernetesActivities,
} from '../../src/activities/kubernetes/index.js';
import { isApiError } from '../../src/k8s/api-errors.js';
import { simulatedBoot } from '../../src/k8s/boot-id.js';
import { simNodeManifest } from '../../src/stack/sim-nodes.js';
import { clients, eventually } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';

// The reboot's evidence against the embedded cluster, on a node of this file's own: the boot ID read
// before, and a new one, given by a simulated reboot, awaited after.

const NODE = 'fmtest-boot';

function isFailure(type: string) {
  return (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    assert.equal(err.type, type, err.message);
    assert.equal(err.nonRetryable, true, err.message);
    return true;
  };
}

describe('reboot evidence: readBootId and awaitNewBoot on the embedded cluster', () => {
  let stack: TestStack;
  let k8s: KubernetesActivities;
  const env = new MockActivityEnvironment();

  before(async () => {
    stack = await useTestStack();
    const { core } = clients(stack.kc);
    const manifest = simNodeManifest(140, stack.state.clusterId);
    manifest.metadata!.name = NODE;
    manifest.metadata!.labels!['kubernetes.io/hostname'] = NODE;
    manifest.status!.nodeInfo!.bootID = 'boot-before';
    await core.deleteNode({ name: NODE }).catch(() => {});
    await eventually(`leftover ${NODE} gone`, async () =>
      (await core.readNode({ name: NODE }).then(
        () => false,
        (err: unknown) => isApiError(err, 404),
      ))
        ? true
        : undefined,
    );
    await core.createNode({ body: manifest });
    await eventually(`${NODE} Ready`, async () =>
      (await core.readNode({ name: NODE })).status?.conditions?.some(
        (c) => c.type === 'Ready' && c.status === 'True',
      )
        ? true
        : undefined,
    );
    k8s = createKubernetesActivities({ kc: stack.kc, clusterId: stack.state.clusterId, pollIntervalMs: 200 });
  });

  after(async () => {
    await clients(stack.kc)
      .core.deleteNode({ name: NODE })
      .catch(() => {});
  });

  it('reads the boot ID the node reports; a missing node is NodeNotFound', async () => {
    assert.deepEqual(await k8s.readBootId({ node: NODE }), { bootId: 'boot-before' });
    await assert.rejects(k8s.readBootId({ node: 'fmtest-boot-missing' }), isFailure('NodeNotFound'));
  });

  it('a node still on its boot at the deadline fails with RebootDeadlineExceeded, saying what it showed', async () => {
    await assert.rejects(
      env.run(() =>
        k8s.awaitNewBoot({ node: NODE, bootIdBefore: 'boot-before', deadline: Date.now() + 1_000 }),
      ),
      (err: unknown) =>
        isFailure('RebootDeadlineExceeded')(err) &&
        /now boot ID boot-before, Ready/.test((err as Error).message),
    );
  });

  it('a simulated reboot gives the node a new boot ID, which the wait returns', async () => {
    const waiting = env.run(() =>
      k8s.awaitNewBoot({ node: NODE, bootIdBefore: 'boot-before', deadline: Date.now() + 60_000 }),
    );
    const after = await simulatedBoot(stack.kc).reboot(NODE);
    assert.notEqual(after, 'boot-before');
    assert.deepEqual(await waiting, { bootId: after });
    // The patch went to the status subresource, where kwok and the kubelet report boots.
    assert.equal((await clients(stack.kc).core.readNode({ name: NODE })).status?.nodeInfo?.bootID, after);
  });

  it('refuses a deadline that is not a time (InvalidInput)', async () => {
    await assert.rejects(
      k8s.awaitNewBoot({ node: NODE, bootIdBefore: 'boot-before', deadline: -1 }),
      isFailure('InvalidInput'),
    );
  });
});
