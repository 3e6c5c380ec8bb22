/**
 * Reading and updating the nodes of one cluster: API errors mapped to Temporal failures, nodes of
 * another cluster refused, and the quarantine (label, taint, cordon, ownership record) that
 * `quarantineNode` and `quarantineFailedNode` apply.
 */
import { CoreV1Api, PolicyV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { FailureType } from '../../errors.js';
import { makeApiClient, type ApiClientFactory } from '../../k8s/api-client.js';
import { apiErrorStatus, isApiError } from '../../k8s/api-errors.js';
import { apiErrorMessage } from '../../k8s/api-status.js';
import { CLUSTER_LABEL } from '../../k8s/labels.js';
import { planQuarantine, type CordonRecord, type NodeMergePatch } from '../../k8s/node-ownership.js';
import { mergePatch } from '../../k8s/patch.js';
import { objectName, text, validateInput } from '../input.js';

/** Dependencies of the Kubernetes activities (`createKubernetesActivities`) and of {@link nodeAccess}. */
export interface KubernetesActivityDeps {
  /** The cluster's kubeconfig, loaded explicitly (never from the default locations). */
  kc: KubeConfig;
  /** This worker's cluster ID: nodes labelled for another cluster are refused. */
  clusterId: string;
  /** Clock for records and deadlines (tests pin it). */
  now?: () => Date;
  /** How often waits re-check the cluster (pods gone, node present). Default 1000 ms. */
  pollIntervalMs?: number;
  /** How API clients are made; default {@link makeApiClient} on `kc`, with its request timeout. */
  apiClient?: ApiClientFactory;
  /**
   * Label selectors (pod templates) of the GPU DaemonSets that must run on a node before
   * `releaseNode` returns it to service; default `DEFAULT_GPU_DAEMONSET_SELECTORS`. The worker's
   * configuration sets them, never workflow input. Checked when the activities are created.
   */
  gpuDaemonSetSelectors?: readonly string[];
}

export interface QuarantineNodeInput {
  node: string;
  workflowId: string;
  /** The run quarantining, written into the ownership record (all runs of a node share the workflow ID). */
  runId?: string;
  /** Why, in a few words an operator reads (`XID 79: GPU fell off the bus`). */
  reason: string;
}

export interface QuarantineNodeResult {
  node: string;
  /** False when the node was already quarantined by this workflow (a retry or a repeat). */
  changed: boolean;
  /** The ownership record on the node. */
  record: CordonRecord;
}

const quarantineNodeSchema = z.object({
  node: objectName,
  workflowId: text(1000),
  reason: text(1024),
  runId: text(256).optional(),
});

/** Attempts of `quarantineNode`'s read-plan-patch before a 409 is left to Temporal's retry. */
const QUARANTINE_CONFLICT_ATTEMPTS = 5;

/**
 * Reading and updating nodes of one cluster, shared by the activities, `createQuarantineSteps` and the
 * node record activities (activities/node-records.ts): API errors mapped to Temporal failures, nodes
 * of another cluster refused.
 */
export function nodeAccess(deps: KubernetesActivityDeps) {
  const apiClient: ApiClientFactory = deps.apiClient ?? ((api) => makeApiClient(deps.kc, api));
  const core = apiClient(CoreV1Api);
  const policyApi = apiClient(PolicyV1Api);
  const now = deps.now ?? (() => new Date());
  const { clusterId } = deps;

  /** Turns permanent API errors into non-retryable failures; everything else is rethrown for a retry. */
  function fail(err: unknown, doing: string): never {
    const status = apiErrorStatus(err);
    const detail = `${doing}: ${apiErrorMessage(err)}`;
    const permanent = (type: string) =>
      ApplicationFailure.create({ message: detail, type, nonRetryable: true, cause: err as Error });
    if (status === 403) throw permanent(FailureType.Forbidden);
    if (status === 401) throw permanent(FailureType.Unauthorized);
    if (status === 400 || status === 422) throw permanent(FailureType.InvalidInput);
    throw err;
  }

  function nodeNotFound(name: string): ApplicationFailure {
    return ApplicationFailure.nonRetryable(`node ${name} not found`, FailureType.NodeNotFound);
  }

  async function readNode(name: string): Promise<V1Node | undefined> {
    try {
      return await core.readNode({ name });
    } catch (err) {
      if (isApiError(err, 404)) return undefined;
      fail(err, `reading node ${name}`);
    }
  }

  /** Two clusters may share a Temporal namespace: a worker must never act on another cluster's node. */
  function assertOurCluster(node: V1Node): void {
    const label = node.metadata?.labels?.[CLUSTER_LABEL];
    if (label !== undefined && label !== clusterId) {
      throw ApplicationFailure.nonRetryable(
        `node ${node.metadata?.name ?? '?'} belongs to cluster ${label} (label ${CLUSTER_LABEL}), this worker serves ${clusterId}`,
        FailureType.WrongCluster,
      );
    }
  }

  async function requireNode(name: string): Promise<V1Node> {
    const node = await readNode(name);
    if (!node) throw nodeNotFound(name);
    assertOurCluster(node);
    return node;
  }

  /** An optimistic update: 409 (the node changed since it was read) is rethrown for Temporal to retry. */
  async function patchNode(name: string, patch: NodeMergePatch): Promise<void> {
    try {
      await core.patchNode({ name, body: patch }, mergePatch);
    } catch (err) {
      if (isApiError(err, 404)) throw nodeNotFound(name);
      fail(err, `updating node ${name}`);
    }
  }

  /**
   * The quarantine of `quarantineNode`. `current` is the node as the caller has just read it: the
   * first plan is made from it instead of a fresh read (a stale one fails its patch's
   * resourceVersion precondition with 409, and is read again).
   */
  async function quarantine(input: QuarantineNodeInput, current?: V1Node): Promise<QuarantineNodeResult> {
    const {
      node: name,
      workflowId,
      reason,
      runId,
    } = validateInput('quarantineNode', quarantineNodeSchema, input);
    // Nodes change all the time (status, leases, other controllers): a 409 reads and plans again at
    // once, a few times, instead of waiting for Temporal's retry backoff with the node still schedulable.
    for (let attempt = 1; ; attempt++) {
      let node: V1Node;
      if (attempt === 1 && current !== undefined) {
        assertOurCluster(current);
        node = current;
      } else {
        node = await requireNode(name);
      }
      const plan = planQuarantine(node, { workflowId, runId, reason, now: now().toISOString() });
      if (plan.action === 'refuse') throw ApplicationFailure.nonRetryable(plan.message, plan.reason);
      if (plan.action === 'patch') {
        try {
          await patchNode(name, plan.patch);
        } catch (err) {
          if (isApiError(err, 409) && attempt < QUARANTINE_CONFLICT_ATTEMPTS) continue;
          throw err;
        }
      }
      return { node: name, changed: plan.action === 'patch', record: plan.record };
    }
  }

  return {
    core,
    policyApi,
    now,
    fail,
    readNode,
    assertOurCluster,
    requireNode,
    patchNode,
    quarantine,
  };
}

/**
 * The node steps of `quarantineFailedNode` (activities/quarantine.ts), which reads the node once for
 * the episode check and the quarantine: `read` (undefined when the node does not exist; a node of
 * another cluster is refused with non-retryable `WrongCluster`) and `quarantine` (as `quarantineNode`,
 * planned first from the node the caller read).
 */
export function createQuarantineSteps(deps: KubernetesActivityDeps) {
  const access = nodeAccess(deps);
  return {
    async read(name: string): Promise<V1Node | undefined> {
      const node = await access.readNode(name);
      if (node) access.assertOurCluster(node);
      return node;
    },
    quarantine: access.quarantine,
  };
}

export type QuarantineSteps = ReturnType<typeof createQuarantineSteps>;

export type NodeAccess = ReturnType<typeof nodeAccess>;
