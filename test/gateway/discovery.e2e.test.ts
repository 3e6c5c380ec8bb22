import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KubernetesPodDiscovery, type Endpoint } from '../../src/gateway/discovery.js';
import { mergePatch } from '../../src/k8s/patch.js';
import { clients, deployment, eventually, isReady, livePods, tempNamespace } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';

// The gateway's pod watch against the embedded cluster's API server (kwok pods with 127.128.x.y IPs):
// it routes to the Deployment's Ready pods, drops a pod the moment it has a deletionTimestamp (held
// terminating here by a finalizer), picks up its replacement, and ends empty when scaled to zero.
describe('gateway discovery: the pods of a Deployment, watched (embedded cluster)', () => {
  let stack: TestStack;
  let ns: { name: string; remove: () => Promise<void> };
  let discovery: KubernetesPodDiscovery | undefined;
  const app = 'replicas';
  let latest: readonly Endpoint[] = [];
  const errors: unknown[] = [];

  before(async () => {
    stack = await useTestStack();
    ns = await tempNamespace(stack.kc, 'fmgwdisc');
    await clients(stack.kc).apps.createNamespacedDeployment({ namespace: ns.name, body: deployment(app, 2) });
  });

  after(async () => {
    await discovery?.stop();
    const { core } = clients(stack.kc);
    for (const pod of (await core.listNamespacedPod({ namespace: ns.name })).items) {
      if (pod.metadata?.finalizers?.length) {
        await core
          .patchNamespacedPod(
            { name: pod.metadata.name!, namespace: ns.name, body: { metadata: { finalizers: null } } },
            mergePatch,
          )
          .catch(() => undefined);
      }
    }
    await ns?.remove();
  });

  const ids = () => latest.map((e) => e.id).sort();

  it('follows Ready pods, drops a terminating one at once, and empties at zero replicas', async () => {
    const { core, apps } = clients(stack.kc);
    const pods = await eventually('2 Ready pods', async () => {
      const live = await livePods(stack.kc, ns.name, app);
      return live.length === 2 && live.every(isReady) && live.every((p) => p.status?.podIP)
        ? live
        : undefined;
    });
    discovery = new KubernetesPodDiscovery({
      kc: stack.kc,
      namespace: ns.name,
      deployment: app,
      port: 8080,
      loopbackOnly: true,
      restartDelayMs: 200,
      onError: (err) => errors.push(err),
    });
    await discovery.start((endpoints) => (latest = endpoints));
    assert.deepEqual(ids(), pods.map((p) => p.metadata!.name!).sort());
    for (const e of latest) assert.match(e.url, /^http:\/\/127\.\d+\.\d+\.\d+:8080$/);

    // A pod held terminating by a finalizer: out of routing while it still exists.
    const victim = pods[0]!.metadata!.name!;
    await core.patchNamespacedPod(
      { name: victim, namespace: ns.name, body: { metadata: { finalizers: ['fleetmedic.io/test-hold'] } } },
      mergePatch,
    );
    await core.deleteNamespacedPod({ name: victim, namespace: ns.name });
    const terminating = await core.readNamespacedPod({ name: victim, namespace: ns.name });
    assert.ok(terminating.metadata?.deletionTimestamp, 'the pod is not terminating');
    await eventually('the terminating pod dropped', () =>
      Promise.resolve(!ids().includes(victim) ? true : undefined),
    );
    // Its replacement joins once Ready.
    await eventually('the replacement routed', () =>
      Promise.resolve(latest.length === 2 && !ids().includes(victim) ? true : undefined),
    );
    await core.patchNamespacedPod(
      { name: victim, namespace: ns.name, body: { metadata: { finalizers: null } } },
      mergePatch,
    );

    await apps.patchNamespacedDeployment(
      { name: app, namespace: ns.name, body: { spec: { replicas: 0 } } },
      mergePatch,
    );
    await eventually('no replica left', () => Promise.resolve(latest.length === 0 ? true : undefined));
    assert.deepEqual(errors, [], 'the watch reported errors');
  });
});
