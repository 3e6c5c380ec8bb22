/**
 * Kubernetes activities of the GPU remediation workflow: quarantine, drain, restart, release, and the
 * reads the fleet budget and the capacity check need. Each takes one input object and returns plain
 * JSON. Permanent failures (unknown node, RBAC denial, invalid input, another workflow's node) are
 * non-retryable `ApplicationFailure`s whose `type` is one of `FailureType` (src/errors.ts); transient
 * ones (API server unreachable, 5xx, 409 on an optimistic update) are thrown as they are, so Temporal
 * retries them with the activity's retry policy. The only retry loop inside is the Eviction API's 429
 * protocol, which the API server asks of every client.
 *
 * One file per system the activities talk to: node-access.ts (reading and patching nodes, the
 * quarantine), nodes.ts (quarantineNode, releaseNode, getNode, listGpuNodes, recordRemediation,
 * podsOnNode), boot.ts (readBootId, awaitNewBoot: a reboot's evidence), pods.ts (listing and
 * evicting pods), drain.ts and pdb-groups.ts (drainNode and its
 * PodDisruptionBudgets), pod-restarts.ts (restartPods), control.ts (cancellation, waits, pools).
 */
import { AppsV1Api } from '@kubernetes/client-node';
import { makeApiClient } from '../../k8s/api-client.js';
import { DEFAULT_GPU_DAEMONSET_SELECTORS, gpuDaemonSetSelectors } from '../../k8s/gpu-daemonsets.js';
import { createBootActivities } from './boot.js';
import { createDrainActivities } from './drain.js';
import { nodeAccess, type KubernetesActivityDeps } from './node-access.js';
import { createNodeActivities } from './nodes.js';
import { createPodRestartActivities } from './pod-restarts.js';
import { podEviction } from './pods.js';

export type { AwaitNewBootInput } from './boot.js';
export type { DrainNodeInput, DrainNodeResult, DrainProgress } from './drain.js';
export {
  createQuarantineSteps,
  nodeAccess,
  type KubernetesActivityDeps,
  type NodeAccess,
  type QuarantineNodeInput,
  type QuarantineNodeResult,
  type QuarantineSteps,
} from './node-access.js';
export type {
  RecordRemediationInput,
  RecordRemediationResult,
  ReleaseNodeInput,
  ReleaseNodeResult,
} from './nodes.js';
export type { RestartPodsInput, RestartPodsResult, RestartProgress } from './pod-restarts.js';

/**
 * Creates the Kubernetes activities bound to one cluster.
 *
 * @throws ConfigError when a `gpuDaemonSetSelectors` entry is not a label selector (naming it).
 * @example
 * const activities = createKubernetesActivities({ kc: loadKubeConfig(file), clusterId: 'lab-1' });
 * await activities.quarantineNode({ node: 'gpu-node-7', workflowId, reason: 'XID 79' });
 */
export function createKubernetesActivities(deps: KubernetesActivityDeps) {
  // Before any client is made: a worker with a selector it cannot parse must not start.
  const gpuSelectors = gpuDaemonSetSelectors(deps.gpuDaemonSetSelectors ?? DEFAULT_GPU_DAEMONSET_SELECTORS);
  const access = nodeAccess(deps);
  const pollMs = deps.pollIntervalMs ?? 1_000;
  const apps = (deps.apiClient ?? ((api) => makeApiClient(deps.kc, api)))(AppsV1Api);
  const pods = podEviction(access);
  const nodes = createNodeActivities(access, pods, apps, gpuSelectors);
  const { drainNode } = createDrainActivities(access, pods, pollMs);
  const { restartPods } = createPodRestartActivities(access, pods);
  const { readBootId, awaitNewBoot } = createBootActivities(access, pollMs);
  // Workers register activities by these names.
  return {
    quarantineNode: nodes.quarantineNode,
    releaseNode: nodes.releaseNode,
    drainNode,
    restartPods,
    getNode: nodes.getNode,
    listGpuNodes: nodes.listGpuNodes,
    recordRemediation: nodes.recordRemediation,
    podsOnNode: nodes.podsOnNode,
    readBootId,
    awaitNewBoot,
  };
}

/** The activities' type, for `proxyActivities<KubernetesActivities>()` in workflows. */
export type KubernetesActivities = ReturnType<typeof createKubernetesActivities>;
