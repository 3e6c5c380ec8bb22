import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isApiError } from '../../src/k8s/api-errors.js';
import { mergePatch } from '../../src/k8s/patch.js';
import { isLoopbackAddress } from '../../src/k8s/loopback.js';
import { GPU_RESOURCE, SIMULATED_LABEL } from '../../src/k8s/labels.js';
import { assertSimulatedCluster } from '../../src/stack/sim-cluster.js';
import { clients, deployment, eventually, isReady, livePods, tempNamespace } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';

// These run against the real control plane of the embedded stack (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok): no fakes.
describe('embedded cluster', () => {
  let stack: TestStack;
  let ns: { name: string; remove: () => Promise<void> };

  before(async () => {
    stack = await useTestStack();
    ns = await tempNamespace(stack.kc, 'fmtest');
  });
  after(async () => {
    await ns?.remove();
  });

  it('has Ready simulated GPU nodes with 8 GPUs, loopback addresses and the simulation marker', async () => {
    const { core } = clients(stack.kc);
    const nodes = (await core.listNode({ labelSelector: `${SIMULATED_LABEL}=true` })).items;
    assert.ok(nodes.length >= 4, `expected at least 4 simulated nodes, got ${nodes.length}`);
    for (const node of nodes) {
      assert.equal(node.status?.capacity?.[GPU_RESOURCE], '8');
      assert.equal(node.status?.allocatable?.[GPU_RESOURCE], '8');
      assert.ok(node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      // Ready means pods can go there: the controller manager has taken the not-ready taint off.
      assert.ok(
        !node.spec?.taints?.some((t) => t.key === 'node.kubernetes.io/not-ready'),
        `${node.metadata?.name} still carries the not-ready taint`,
      );
      for (const address of node.status?.addresses?.filter((a) => a.type === 'InternalIP') ?? []) {
        assert.ok(isLoopbackAddress(address.address), `node address ${address.address} is not loopback`);
      }
      assert.match(node.spec?.podCIDR ?? '', /^127\./);
    }
    assert.equal(await assertSimulatedCluster(stack.kc), stack.state.clusterId);
  });

  it('spreads a 3-replica Deployment with required anti-affinity over 3 nodes; a 4th replica stays Pending', async () => {
    const { core, apps } = clients(stack.kc);
    // Restrict the Deployment to exactly 3 nodes, the "only 3 nodes" of the scenario.
    const pool = (await core.listNode({ labelSelector: `${SIMULATED_LABEL}=true` })).items.slice(0, 3);
    for (const node of pool) {
      await core.patchNode(
        { name: node.metadata!.name!, body: { metadata: { labels: { [`fmtest/${ns.name}`]: 'a' } } } },
        mergePatch,
      );
    }
    const name = 'spread';
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: deployment(name, 3, { antiAffinity: true, nodeSelector: { [`fmtest/${ns.name}`]: 'a' } }),
    });
    const pods = await eventually('3 Ready replicas', async () => {
      const live = await livePods(stack.kc, ns.name, name);
      return live.length === 3 && live.every(isReady) ? live : undefined;
    });
    const hosts = new Set(pods.map((p) => p.spec?.nodeName));
    assert.equal(hosts.size, 3, `replicas share nodes: ${[...hosts].join(', ')}`);
    for (const pod of pods)
      assert.ok(isLoopbackAddress(pod.status?.podIP ?? ''), `pod IP ${pod.status?.podIP}`);

    await apps.patchNamespacedDeploymentScale(
      { name, namespace: ns.name, body: { spec: { replicas: 4 } } },
      mergePatch,
    );
    const pending = await eventually('a 4th replica marked Unschedulable', async () => {
      const live = await livePods(stack.kc, ns.name, name);
      return live.find((p) =>
        p.status?.conditions?.some(
          (c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable',
        ),
      );
    });
    assert.equal(pending.status?.phase, 'Pending');
    assert.equal(pending.spec?.nodeName, undefined);
  });

  it('replaces a deleted pod through its ReplicaSet', async () => {
    const { apps, core } = clients(stack.kc);
    const name = 'replace';
    await apps.createNamespacedDeployment({ namespace: ns.name, body: deployment(name, 2) });
    const before = await eventually('2 Ready replicas', async () => {
      const live = await livePods(stack.kc, ns.name, name);
      return live.length === 2 && live.every(isReady) ? live : undefined;
    });
    const victim = before[0]!.metadata!.name!;
    await core.deleteNamespacedPod({ name: victim, namespace: ns.name });
    const afterDelete = await eventually('a Ready replacement', async () => {
      const live = await livePods(stack.kc, ns.name, name);
      return live.length === 2 && live.every(isReady) && !live.some((p) => p.metadata?.name === victim)
        ? live
        : undefined;
    });
    assert.equal(afterDelete.length, 2);
  });

  it('schedules no new pod onto a cordoned node', async () => {
    const { apps, core } = clients(stack.kc);
    const nodes = (await core.listNode({ labelSelector: `${SIMULATED_LABEL}=true` })).items;
    const cordoned = nodes[0]!.metadata!.name!;
    await core.patchNode({ name: cordoned, body: { spec: { unschedulable: true } } }, mergePatch);
    try {
      const name = 'cordon';
      // One pod per node at most, and as many replicas as schedulable nodes: a cordoned node would be the
      // only place left for one of them if the scheduler ignored the cordon.
      await apps.createNamespacedDeployment({
        namespace: ns.name,
        body: deployment(name, nodes.length - 1, { antiAffinity: true }),
      });
      const pods = await eventually('replicas Ready on other nodes', async () => {
        const live = await livePods(stack.kc, ns.name, name);
        return live.length === nodes.length - 1 && live.every(isReady) ? live : undefined;
      });
      assert.ok(
        pods.every((p) => p.spec?.nodeName !== cordoned),
        'a pod landed on the cordoned node',
      );
    } finally {
      await core.patchNode({ name: cordoned, body: { spec: { unschedulable: false } } }, mergePatch);
    }
  });

  it('refuses an eviction blocked by a PodDisruptionBudget with 429 and allows it once the budget does', async () => {
    const { apps, core, policy } = clients(stack.kc);
    const name = 'pdb';
    await apps.createNamespacedDeployment({ namespace: ns.name, body: deployment(name, 2) });
    await policy.createNamespacedPodDisruptionBudget({
      namespace: ns.name,
      body: { metadata: { name }, spec: { minAvailable: 2, selector: { matchLabels: { app: name } } } },
    });
    const pods = await eventually('2 Ready replicas', async () => {
      const live = await livePods(stack.kc, ns.name, name);
      return live.length === 2 && live.every(isReady) ? live : undefined;
    });
    await eventually('the PDB to observe 2 healthy pods', async () => {
      const pdb = await policy.readNamespacedPodDisruptionBudget({ name, namespace: ns.name });
      return pdb.status?.currentHealthy === 2 ? pdb : undefined;
    });
    const victim = pods[0]!;
    const evict = () =>
      core.createNamespacedPodEviction({
        name: victim.metadata!.name!,
        namespace: ns.name,
        body: {
          apiVersion: 'policy/v1',
          kind: 'Eviction',
          metadata: { name: victim.metadata!.name!, namespace: ns.name },
          deleteOptions: { preconditions: { uid: victim.metadata!.uid! } },
        },
      });
    await assert.rejects(evict(), (err: unknown) => isApiError(err, 429));

    await apps.patchNamespacedDeploymentScale(
      { name, namespace: ns.name, body: { spec: { replicas: 3 } } },
      mergePatch,
    );
    await eventually('the PDB to allow one disruption', async () => {
      const pdb = await policy.readNamespacedPodDisruptionBudget({ name, namespace: ns.name });
      return (pdb.status?.disruptionsAllowed ?? 0) >= 1 ? pdb : undefined;
    });
    await evict();
    await eventually('the evicted pod to be gone', async () => {
      const live = await livePods(stack.kc, ns.name, name);
      return live.some((p) => p.metadata?.uid === victim.metadata?.uid) ? undefined : true;
    });
  });
});
