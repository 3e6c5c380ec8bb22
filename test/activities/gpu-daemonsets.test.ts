import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { V1DaemonSet, V1Pod } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import {
  createKubernetesActivities,
  type KubernetesActivities,
} from '../../src/activities/kubernetes/index.js';
import { ConfigError } from '../../src/errors.js';
import { isApiError } from '../../src/k8s/api-errors.js';
import { mergePatch } from '../../src/k8s/patch.js';
import { QUARANTINED_LABEL, QUARANTINE_TAINT_KEY } from '../../src/k8s/remediation-labels.js';
import { simNodeManifest } from '../../src/stack/sim-nodes.js';
import { clients, eventually, tempNamespace } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';

// releaseNode against the embedded cluster's DaemonSet controller, scheduler and kwok: the GPU
// DaemonSets found by the worker's selectors (here the defaults) must run on the node first.

const NODE = 'fmtest-gpu-ds-91';
const WORKFLOW = 'wf-gpu-daemonsets';

/** A DaemonSet whose pods run on `node` only; without the quarantine toleration unless asked. */
function daemonSet(name: string, labels: Record<string, string>, node: string): V1DaemonSet {
  return {
    metadata: { name, labels },
    spec: {
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          nodeSelector: { 'kubernetes.io/hostname': node },
          containers: [{ name: 'main', image: 'registry.invalid/fleetmedic-test:sim' }],
        },
      },
    },
  };
}

function failure(type: string, message: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    assert.equal(err.type, type, err.message);
    assert.equal(err.nonRetryable, false, 'retryable: the release waits');
    assert.match(err.message, message);
    return true;
  };
}

const isReady = (pod: V1Pod) =>
  pod.status?.phase === 'Running' &&
  (pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);

describe('releaseNode waits for the GPU DaemonSets (embedded cluster)', () => {
  let stack: TestStack;
  let acts: KubernetesActivities;
  let ns: { name: string; remove: () => Promise<void> } | undefined;

  before(async () => {
    stack = await useTestStack();
    const { core } = clients(stack.kc);
    const manifest = simNodeManifest(91, stack.state.clusterId);
    manifest.metadata!.name = NODE;
    manifest.metadata!.labels!['kubernetes.io/hostname'] = NODE;
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
    await eventually(`${NODE} Ready`, async () => {
      const n = await core.readNode({ name: NODE });
      return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') &&
        !(n.spec?.taints ?? []).some((t) => t.key === 'node.kubernetes.io/not-ready')
        ? true
        : undefined;
    });
    // The defaults, as `fleetmedic worker` passes them when FLEETMEDIC_GPU_DAEMONSET_SELECTORS is unset.
    acts = createKubernetesActivities({ kc: stack.kc, clusterId: stack.state.clusterId });
  });

  after(async () => {
    await ns?.remove();
    await clients(stack.kc)
      .core.deleteNode({ name: NODE })
      .catch(() => {});
  });

  it('refuses a selector that is not one when the activities are created, naming it', () => {
    assert.throws(
      () =>
        createKubernetesActivities({
          kc: stack.kc,
          clusterId: stack.state.clusterId,
          gpuDaemonSetSelectors: ['app=ok', 'app in (plugin'],
        }),
      (err: unknown) =>
        err instanceof ConfigError && /"app in \(plugin" is not a label selector/.test(err.message),
    );
  });

  it('keeps the node quarantined while the device plugin has no pod, or no Ready pod, on it; then releases it', async () => {
    const { core, apps } = clients(stack.kc);
    ns = await tempNamespace(stack.kc, 'fmgpuds');
    const namespace = ns.name;
    // A dcgm-exporter for other nodes only: a GPU DaemonSet that would not run here is not waited for.
    await apps.createNamespacedDaemonSet({
      namespace,
      body: daemonSet('nvidia-dcgm-exporter', { app: 'nvidia-dcgm-exporter' }, 'fmtest-no-such-node'),
    });
    await acts.quarantineNode({ node: NODE, workflowId: WORKFLOW, reason: 'XID 79' });

    // A device plugin that does not tolerate the quarantine taint: its controller puts no pod here.
    await apps.createNamespacedDaemonSet({
      namespace,
      body: daemonSet('nvidia-device-plugin-daemonset', { app: 'nvidia-device-plugin-daemonset' }, NODE),
    });
    await assert.rejects(
      acts.releaseNode({ node: NODE, workflowId: WORKFLOW }),
      failure(
        'NodeNotReadyForRelease',
        new RegExp(
          `GPU DaemonSet ${namespace}/nvidia-device-plugin-daemonset \\(app=nvidia-device-plugin-daemonset\\) ` +
            `has no pod on the node \\(does it tolerate the ${QUARANTINE_TAINT_KEY} taint\\?\\)`,
        ),
      ),
    );
    assert.equal((await core.readNode({ name: NODE })).metadata?.labels?.[QUARANTINED_LABEL], 'true');

    // Fixed: it tolerates the quarantine, and kwok runs its pod.
    await apps.patchNamespacedDaemonSet(
      {
        name: 'nvidia-device-plugin-daemonset',
        namespace,
        body: {
          spec: { template: { spec: { tolerations: [{ key: QUARANTINE_TAINT_KEY, operator: 'Exists' }] } } },
        },
      },
      mergePatch,
    );
    const pod = await eventually('the device plugin pod Running and Ready on the node', async () => {
      const pods = await core.listNamespacedPod({ namespace, fieldSelector: `spec.nodeName=${NODE}` });
      return pods.items.find(isReady);
    });

    // Its pod stops being Ready (a device plugin that lost its GPUs): still no release.
    const readiness = async (status: 'True' | 'False') =>
      core.patchNamespacedPodStatus(
        {
          name: pod.metadata!.name!,
          namespace,
          body: { status: { conditions: [{ type: 'Ready', status }] } },
        },
        mergePatch,
      );
    await readiness('False');
    await assert.rejects(
      acts.releaseNode({ node: NODE, workflowId: WORKFLOW }),
      failure(
        'NodeNotReadyForRelease',
        new RegExp(
          `GPU DaemonSet ${namespace}/nvidia-device-plugin-daemonset .* has no Running and Ready pod`,
        ),
      ),
    );
    assert.equal((await core.readNode({ name: NODE })).metadata?.labels?.[QUARANTINED_LABEL], 'true');

    await readiness('True');
    const released = await acts.releaseNode({ node: NODE, workflowId: WORKFLOW });
    assert.deepEqual(released, { node: NODE, released: true, uncordoned: true, leftCordoned: false });
    const node = await core.readNode({ name: NODE });
    assert.equal(node.metadata?.labels?.[QUARANTINED_LABEL], undefined);
    assert.equal(
      (node.spec?.taints ?? []).some((t) => t.key === QUARANTINE_TAINT_KEY),
      false,
    );
  });
});
