import {
  AppsV1Api,
  CoreV1Api,
  PolicyV1Api,
  type KubeConfig,
  type V1DaemonSet,
  type V1Node,
  type V1Pod,
  type V1PodDisruptionBudget,
} from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { z } from 'zod';
import { FailureType } from '../errors.js';
import { makeApiClient, type ApiClientFactory } from '../k8s/api-client.js';
import { apiErrorStatus, isApiError } from '../k8s/api-errors.js';
import { apiErrorMessage } from '../k8s/api-status.js';
import {
  describeRefusals,
  evictionBackoffMs,
  isCompleted,
  isMirrorPod,
  isTerminating,
  planDrain,
  podRef,
  type DrainPodFilter,
  type PodRef,
} from '../k8s/drain-plan.js';
import {
  DEFAULT_GPU_DAEMONSET_SELECTORS,
  gpuDaemonSetBlockers,
  gpuDaemonSetSelectors,
} from '../k8s/gpu-daemonsets.js';
import { CLUSTER_LABEL } from '../k8s/labels.js';
import { holdOf, parseHold } from '../k8s/node-hold.js';
import {
  appendRemediation,
  parseRemediations,
  planQuarantine,
  planRelease,
  releaseBlockers,
  remediationsPatch,
  type CordonRecord,
  type NodeMergePatch,
} from '../k8s/node-ownership.js';
import { mergePatch } from '../k8s/patch.js';
import { coveringPdbs, pdbAllowance, type PdbAllowance } from '../k8s/pdb.js';
import { HOLD_ANNOTATION, REMEDIATIONS_ANNOTATION } from '../k8s/remediation-labels.js';
import {
  nodeSummary,
  nodeView,
  podView,
  type MissingNodeView,
  type NodeSummary,
  type NodeView,
  type PodView,
} from '../k8s/views.js';
import { objectName, text, validateInput } from './input.js';

/**
 * Kubernetes activities of the GPU remediation workflow: quarantine, drain, restart, release, and the
 * reads the fleet budget and the capacity check need. Each takes one input object and returns plain
 * JSON. Permanent failures (unknown node, RBAC denial, invalid input, another workflow's node) are
 * non-retryable `ApplicationFailure`s whose `type` is one of {@link FailureType} (src/errors.ts); transient
 * ones (API server unreachable, 5xx, 409 on an optimistic update) are thrown as they are, so Temporal
 * retries them with the activity's retry policy. The only retry loop inside is the Eviction API's 429
 * protocol, which the API server asks of every client.
 */

/** Dependencies of {@link createKubernetesActivities}. */
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

export interface ReleaseNodeInput {
  node: string;
  workflowId: string;
}

export interface ReleaseNodeResult {
  node: string;
  /** True when this call removed the quarantine; false when it was already gone (a retry). */
  released: boolean;
  /** True when this call uncordoned the node. */
  uncordoned: boolean;
  /** True when the node stays cordoned because someone else had cordoned it before fleetmedic. */
  leftCordoned: boolean;
}

export interface DrainNodeInput {
  node: string;
  workflowId: string;
  /** Evict pods no controller manages (they will not come back). */
  force?: boolean;
  /** Evict pods with emptyDir volumes (their data is lost). */
  deleteEmptyDirData?: boolean;
  /** Evictions in flight at once. Default 5. */
  concurrency?: number;
  /**
   * Seconds from the start of the first attempt until the drain gives up with
   * `DrainDeadlineExceeded`. Default 1800: never an endless wait on a PDB that cannot be satisfied.
   */
  deadlineSeconds?: number;
  podFilter?: DrainPodFilter;
}

/** Heartbeat details of drainNode; a retried attempt resumes from them. */
export interface DrainProgress {
  /** UIDs of pods evicted (or found gone) so far: never evicted again. */
  evicted: string[];
  /** UIDs of pods still to evict. */
  pending: string[];
  /** Eviction attempts refused with 429 (a PDB allowed no disruption) so far. */
  refused429: number;
  /** Start of the first attempt (ISO); the deadline counts from it across retries. */
  startedAt: string;
}

export interface DrainNodeResult {
  /** True when the node was deleted before or during the drain (nothing left to drain). */
  nodeGone: boolean;
  /** Pods evicted by this drain, earlier attempts included. */
  evicted: number;
  /** Pods that were gone (or replaced) before their eviction went through. */
  alreadyGone: number;
  /**
   * Pods whose eviction a PodDisruptionBudget had approved but the API server never carried out (the
   * worker that sent it died mid-request); a retried attempt deleted them to finish those evictions.
   */
  completedInterrupted: number;
  skipped: { daemonSet: number; mirror: number; terminating: number; completed: number; filtered: number };
  refused429: number;
  /** Seconds since the first attempt started. */
  seconds: number;
}

export interface RestartPodsInput {
  node: string;
  /** Only pods in this namespace. */
  namespace?: string;
  /** Pods by name (on this node); with `labelSelector`, a pod must match both. */
  podNames?: string[];
  labelSelector?: string;
  /**
   * Delete the pods instead of evicting them. Eviction (the default) respects PodDisruptionBudgets,
   * so restarting a replica never takes a service below its budget; delete is for a pod whose PDB
   * can never allow it and an operator who says so.
   */
  force?: boolean;
  /** Evictions in flight at once. Default 5. */
  concurrency?: number;
  /** Seconds to keep retrying evictions a PDB refuses. Default 300. */
  deadlineSeconds?: number;
}

export interface RestartPodsResult {
  node: string;
  method: 'evict' | 'delete';
  /** Pods evicted or deleted. */
  restarted: PodRef[];
  /** Selected pods that were gone (or replaced) before the call reached them. */
  alreadyGone: PodRef[];
  /** Selected pods left alone, with why (mirror pod, completed, already terminating). */
  skipped: { pod: PodRef; reason: string }[];
  /** Names in `podNames` that match no pod on the node. */
  missing: string[];
  refused429: number;
}

/** Heartbeat details of restartPods: the pods chosen by the first attempt, so a retry never widens. */
export interface RestartProgress {
  targets: PodRef[];
  done: string[];
  refused429: number;
  startedAt: string;
  skipped: { pod: PodRef; reason: string }[];
  missing: string[];
}

export interface RecordRemediationInput {
  node: string;
  /** ISO time of the remediation; recording the same time twice counts once. */
  at: string;
}

export interface RecordRemediationResult {
  node: string;
  /** The history on the node after the call, oldest first (at most 20). */
  remediations: string[];
}

const DEFAULT_CONCURRENCY = 5;
const DEFAULT_DRAIN_DEADLINE_S = 1800;
const DEFAULT_RESTART_DEADLINE_S = 300;
const NODE_CHECK_INTERVAL_MS = 2_000;
/** Clock difference tolerated between this worker and the API server when dating a PDB's records. */
const CLOCK_SKEW_MS = 60_000;
const LIST_PAGE = 500;
/** How often a drain waiting on a PodDisruptionBudget re-reads its status. */
const PDB_POLL_MS = 250;
/** PodDisruptionBudget groups evicting at once, per unit of `concurrency` (see drainNode). */
const PDB_GROUPS_PER_WORKER = 4;

/** An integer from `min` to `max`. */
function int(min: number, max: number) {
  return z.number().int().min(min).max(max);
}

/** An array of non-empty strings. */
const nonEmptyStrings = z.array(z.string().min(1, 'must not be empty'));

const quarantineNodeSchema = z.object({
  node: objectName,
  workflowId: text(1000),
  reason: text(1024),
  runId: text(256).optional(),
});

const releaseNodeSchema = z.object({ node: objectName, workflowId: text(1000) });

const podFilterSchema = z.object({
  namespaces: nonEmptyStrings.optional(),
  excludeNamespaces: nonEmptyStrings.optional(),
  labelSelector: text(4096).optional(),
});

const drainNodeSchema = z.object({
  node: objectName,
  workflowId: text(1000),
  force: z.boolean().optional(),
  deleteEmptyDirData: z.boolean().optional(),
  concurrency: int(1, 100).optional(),
  deadlineSeconds: int(1, 7 * 86_400).optional(),
  podFilter: podFilterSchema.optional(),
});

const restartPodsSchema = z
  .object({
    node: objectName,
    namespace: objectName.optional(),
    podNames: nonEmptyStrings.optional(),
    labelSelector: text(4096).optional(),
    force: z.boolean().optional(),
    concurrency: int(1, 100).optional(),
    deadlineSeconds: int(1, 86_400).optional(),
  })
  .refine((i) => (i.podNames !== undefined && i.podNames.length > 0) || i.labelSelector !== undefined, {
    path: ['podNames'],
    message: 'give podNames or labelSelector: restarting every pod on a node is a drain, not a restart',
  });

const nodeSchema = z.object({ node: objectName });

const listGpuNodesSchema = z.object({ labelKeys: nonEmptyStrings.optional() });

const recordRemediationSchema = z.object({
  node: objectName,
  at: text(64).refine((at) => !Number.isNaN(Date.parse(at)), 'must be an ISO-8601 time'),
});

/** The activity context, or undefined when called outside a worker (plain unit tests). */
function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

function cancellation(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new CancelledFailure('activity cancelled');
}

function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancellation(signal);
}

/**
 * Waits `ms`; rejects at once when the activity is cancelled, resolves early when `stop` fires (another
 * eviction task failed, the node is gone) so no task sleeps past the end of the drain.
 */
function pause(ms: number, cancel: AbortSignal | undefined, stop?: AbortSignal): Promise<void> {
  throwIfCancelled(cancel);
  if (stop?.aborted || ms <= 0) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      cancel?.removeEventListener('abort', onCancel);
      stop?.removeEventListener('abort', onStop);
    };
    const onCancel = () => {
      done();
      reject(cancellation(cancel!));
    };
    const onStop = () => {
      done();
      resolve();
    };
    const timer = setTimeout(() => {
      done();
      resolve();
    }, ms);
    cancel?.addEventListener('abort', onCancel, { once: true });
    stop?.addEventListener('abort', onStop, { once: true });
  });
}

/**
 * Runs `work` over `items` with at most `concurrency` in flight. The first failure stops the others
 * from starting new items; the pool still waits for the ones in flight (an eviction request already
 * sent must be recorded before the activity ends), then rethrows that first failure.
 */
async function runPool<T>(
  items: readonly T[],
  concurrency: number,
  stop: AbortController,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!stop.signal.aborted && next < items.length) {
      const item = items[next++] as T;
      try {
        await work(item);
      } catch (error) {
        failure ??= { error };
        stop.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  if (failure) throw failure.error;
}

function readDrainProgress(details: unknown): DrainProgress | undefined {
  if (typeof details !== 'object' || details === null) return undefined;
  const d = details as Partial<DrainProgress>;
  const strings = (v: unknown) =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  return {
    evicted: strings(d.evicted),
    pending: strings(d.pending),
    refused429: typeof d.refused429 === 'number' ? d.refused429 : 0,
    startedAt: typeof d.startedAt === 'string' && !Number.isNaN(Date.parse(d.startedAt)) ? d.startedAt : '',
  };
}

function readRestartProgress(details: unknown): RestartProgress | undefined {
  if (typeof details !== 'object' || details === null) return undefined;
  const d = details as Partial<RestartProgress>;
  if (!Array.isArray(d.targets)) return undefined;
  return {
    targets: d.targets,
    done: Array.isArray(d.done) ? d.done : [],
    refused429: typeof d.refused429 === 'number' ? d.refused429 : 0,
    startedAt: typeof d.startedAt === 'string' ? d.startedAt : '',
    skipped: Array.isArray(d.skipped) ? d.skipped : [],
    missing: Array.isArray(d.missing) ? d.missing : [],
  };
}

function podName(ref: PodRef): string {
  return `${ref.namespace}/${ref.name}`;
}

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
  const { core, policyApi, now, readNode, assertOurCluster, requireNode, patchNode } = access;
  // Annotated, so that control flow knows a call never returns.
  const fail: (err: unknown, doing: string) => never = access.fail;
  const pollMs = deps.pollIntervalMs ?? 1_000;
  const apps = (deps.apiClient ?? ((api) => makeApiClient(deps.kc, api)))(AppsV1Api);

  /** Every DaemonSet of the cluster: their pod templates say which must run on a node. */
  async function listDaemonSets(): Promise<V1DaemonSet[]> {
    const all: V1DaemonSet[] = [];
    let cont: string | undefined;
    try {
      do {
        const page = await apps.listDaemonSetForAllNamespaces({ limit: LIST_PAGE, _continue: cont });
        all.push(...page.items);
        cont = page.metadata?._continue || undefined;
      } while (cont);
    } catch (err) {
      fail(err, 'listing DaemonSets');
    }
    return all;
  }

  async function listPodsOnNode(name: string, labelSelector?: string): Promise<V1Pod[]> {
    const pods: V1Pod[] = [];
    let cont: string | undefined;
    try {
      do {
        const page = await core.listPodForAllNamespaces({
          fieldSelector: `spec.nodeName=${name}`,
          labelSelector,
          limit: LIST_PAGE,
          _continue: cont,
        });
        pods.push(...page.items);
        cont = page.metadata?._continue || undefined;
      } while (cont);
    } catch (err) {
      fail(err, `listing pods on node ${name}`);
    }
    return pods;
  }

  /** True when `ref` no longer exists, or its name now belongs to a new pod (a replacement). */
  async function goneOrReplaced(ref: PodRef): Promise<boolean> {
    try {
      const pod = await core.readNamespacedPod({ name: ref.name, namespace: ref.namespace });
      return pod.metadata?.uid !== ref.uid;
    } catch (err) {
      if (isApiError(err, 404)) return true;
      fail(err, `reading pod ${podName(ref)}`);
    }
  }

  interface EvictionControl {
    cancel: AbortSignal | undefined;
    stop: AbortSignal;
    deadlineMs: number;
    method: 'evict' | 'delete';
    on429: () => void;
    heartbeat: () => void;
    /** True when the drain should stop because the node is gone. */
    nodeGone: () => Promise<boolean>;
  }

  /**
   * One eviction (or deletion) of exactly the pod `ref` names, by UID precondition. 404 and a failed
   * UID precondition (409) for a pod that is gone or replaced mean it is already gone: done.
   *
   * @returns 'refused' on 429 (a PodDisruptionBudget allows no disruption now), 'retry' on a 409 for
   *   a pod still there; throws `MultiplePodDisruptionBudgets` on the API server's 500 for a pod that
   *   several budgets cover, and other API errors through {@link fail}.
   */
  async function evictOnce(
    ref: PodRef,
    method: 'evict' | 'delete',
  ): Promise<'evicted' | 'gone' | 'refused' | 'retry'> {
    try {
      if (method === 'evict') {
        await core.createNamespacedPodEviction({
          name: ref.name,
          namespace: ref.namespace,
          body: {
            apiVersion: 'policy/v1',
            kind: 'Eviction',
            metadata: { name: ref.name, namespace: ref.namespace },
            deleteOptions: { preconditions: { uid: ref.uid } },
          },
        });
      } else {
        await core.deleteNamespacedPod({
          name: ref.name,
          namespace: ref.namespace,
          body: { preconditions: { uid: ref.uid } },
        });
      }
      return 'evicted';
    } catch (err) {
      if (isApiError(err, 404)) return 'gone';
      if (isApiError(err, 409)) {
        // Conflict on the UID precondition: the name belongs to a new pod now. Anything else, retry.
        return (await goneOrReplaced(ref)) ? 'gone' : 'retry';
      }
      if (isApiError(err, 429)) return 'refused';
      if (isApiError(err, 500) && /more than one PodDisruptionBudget/i.test(apiErrorMessage(err))) {
        throw ApplicationFailure.nonRetryable(
          `cannot evict pod ${podName(ref)}: ${apiErrorMessage(err)}`,
          FailureType.MultiplePodDisruptionBudgets,
        );
      }
      fail(err, `evicting pod ${podName(ref)}`);
    }
  }

  /**
   * Evicts (or deletes) exactly the pod `ref` names, by UID precondition. 404 and a failed UID
   * precondition (409) mean it is already gone or replaced: done. 429 means a PodDisruptionBudget
   * allows no disruption now: wait with backoff and try the same pod again, until the deadline.
   *
   * @returns 'stopped' when the deadline passed, the node vanished or another task failed.
   */
  async function evictPod(ref: PodRef, ctl: EvictionControl): Promise<'evicted' | 'gone' | 'stopped'> {
    for (let retry = 0; ;) {
      throwIfCancelled(ctl.cancel);
      if (ctl.stop.aborted || now().getTime() >= ctl.deadlineMs) return 'stopped';
      const outcome = await evictOnce(ref, ctl.method);
      if (outcome === 'evicted' || outcome === 'gone') return outcome;
      if (outcome === 'refused') ctl.on429();
      if (await ctl.nodeGone()) return 'stopped';
      ctl.heartbeat();
      const left = ctl.deadlineMs - now().getTime();
      // Heartbeat through the backoff (the SDK throttles what it sends): a backoff longer than the
      // activity's heartbeat timeout must not look like a dead worker and restart the drain.
      let wait = Math.min(evictionBackoffMs(retry++), Math.max(left, 0));
      while (wait > 0 && !ctl.stop.aborted) {
        const slice = Math.min(wait, 1_000);
        await pause(slice, ctl.cancel, ctl.stop);
        wait -= slice;
        ctl.heartbeat();
      }
    }
  }

  /**
   * Evicts the pods one PodDisruptionBudget (and only it) covers, never more at once than its
   * `status.disruptionsAllowed` (and `ctl` concurrency), besides the pods in `unready` (UIDs of pods
   * not Ready when listed) the budget lets go uncharged (see {@link pdbAllowance}): while it allows none, re-reads the budget
   * every {@link PDB_POLL_MS} instead of sending evictions it would refuse with 429. A 429 that still
   * comes (the disruption controller not caught up, another client evicting) waits for the budget the
   * same way, not with a per-pod backoff. A budget deleted meanwhile leaves its pods to
   * {@link evictPod}.
   *
   * @param blocked called with true while the budget allows no disruption (for the deadline message).
   * @returns when every pod is done, or early when the deadline passed, the node vanished or another
   *   task failed (the pods not done stay pending).
   */
  async function evictPdbGroup(
    pdb: { namespace: string; name: string },
    refs: readonly PodRef[],
    ctl: EvictionControl & { concurrency: number; done: (ref: PodRef, outcome: 'evicted' | 'gone') => void },
    unready: Set<string>,
    blocked: (waiting: boolean) => void,
  ): Promise<void> {
    const todo = [...refs];
    const pdbName = `${pdb.namespace}/${pdb.name}`;
    while (todo.length > 0) {
      throwIfCancelled(ctl.cancel);
      if (ctl.stop.aborted || now().getTime() >= ctl.deadlineMs) return;
      let allowance: PdbAllowance;
      try {
        allowance = pdbAllowance(await policyApi.readNamespacedPodDisruptionBudget(pdb));
      } catch (err) {
        if (!isApiError(err, 404)) fail(err, `reading PodDisruptionBudget ${pdbName}`);
        blocked(false);
        for (const ref of todo) {
          const outcome = await evictPod(ref, ctl);
          if (outcome === 'stopped') return;
          ctl.done(ref, outcome);
        }
        return;
      }
      // Pods that are not Ready (a workload on a failing GPU, often) may go while the budget allows
      // no disruption of Ready ones: the Eviction API lets them go without charging it.
      const batch: PodRef[] = [];
      const take = (ok: (ref: PodRef) => boolean, most: number) => {
        for (let k = 0; k < todo.length && batch.length < most;) {
          if (ok(todo[k]!)) batch.push(...todo.splice(k, 1));
          else k++;
        }
      };
      if (allowance.unhealthy) take((ref) => unready.has(ref.uid), ctl.concurrency);
      take(() => true, Math.min(batch.length + allowance.disruptions, ctl.concurrency));
      blocked(batch.length === 0);
      let progressed = false;
      if (batch.length > 0) {
        const outcomes = await Promise.allSettled(batch.map((ref) => evictOnce(ref, ctl.method)));
        let failure: { error: unknown } | undefined;
        outcomes.forEach((o, k) => {
          const ref = batch[k]!;
          if (o.status === 'rejected') {
            failure ??= { error: o.reason };
          } else if (o.value === 'evicted' || o.value === 'gone') {
            ctl.done(ref, o.value);
            progressed = true;
          } else {
            if (o.value === 'refused') ctl.on429();
            // Refused while thought not Ready: it is Ready now, and waits for the budget.
            if (o.value === 'refused') unready.delete(ref.uid);
            todo.push(ref);
          }
        });
        if (failure) throw failure.error;
      }
      if (todo.length === 0) return;
      if (await ctl.nodeGone()) return;
      ctl.heartbeat();
      // After evictions that went through, read the budget again at once: the Eviction API has
      // already charged it, so the new status says whether more may go now.
      if (!progressed) {
        await pause(
          Math.min(PDB_POLL_MS, Math.max(ctl.deadlineMs - now().getTime(), 0)),
          ctl.cancel,
          ctl.stop,
        );
      }
    }
  }

  /** A throttled "is the node still there" check shared by every task of one drain. */
  function nodeWatch(name: string, stop: AbortController) {
    let gone = false;
    let lastCheck = 0;
    return {
      get gone() {
        return gone;
      },
      async check(): Promise<boolean> {
        if (gone) return true;
        const t = Date.now();
        if (t - lastCheck < NODE_CHECK_INTERVAL_MS) return false;
        lastCheck = t;
        try {
          await core.readNode({ name });
        } catch (err) {
          // Other errors are the next API call's business: this check only detects deletion.
          if (isApiError(err, 404)) {
            gone = true;
            stop.abort();
          }
        }
        return gone;
      },
    };
  }

  /** The PodDisruptionBudgets of `namespaces`. */
  async function listPdbs(namespaces: ReadonlySet<string>): Promise<V1PodDisruptionBudget[]> {
    const found: V1PodDisruptionBudget[] = [];
    for (const namespace of namespaces) {
      try {
        found.push(...(await policyApi.listNamespacedPodDisruptionBudget({ namespace })).items);
      } catch (err) {
        fail(err, `listing PodDisruptionBudgets in namespace ${namespace}`);
      }
    }
    return found;
  }

  /**
   * The pods among `refs` whose eviction the API server approved after `since` but never carried
   * out: a PodDisruptionBudget lists them in `status.disruptedPods` while they are not terminating.
   * That happens when the client dies in the middle of an eviction request (a SIGKILLed worker): the
   * API server has already charged the budget when the cancelled request stops it from deleting the
   * pod. The budget then counts the pod as disrupted and refuses every other eviction until the
   * entry expires, two minutes later.
   */
  async function interruptedEvictions(refs: readonly PodRef[], since: number): Promise<PodRef[]> {
    const found: PodRef[] = [];
    for (const namespace of new Set(refs.map((r) => r.namespace))) {
      let charged: Set<string>;
      try {
        const pdbs = await policyApi.listNamespacedPodDisruptionBudget({ namespace });
        charged = new Set(
          pdbs.items.flatMap((pdb) =>
            Object.entries(pdb.status?.disruptedPods ?? {})
              .filter(([, at]) => new Date(at).getTime() >= since)
              .map(([pod]) => pod),
          ),
        );
      } catch (err) {
        fail(err, `listing PodDisruptionBudgets in namespace ${namespace}`);
      }
      found.push(...refs.filter((r) => r.namespace === namespace && charged.has(r.name)));
    }
    return found;
  }

  return {
    /**
     * Takes a node out of service: the `fleetmedic.io/quarantined` label, a `fleetmedic.io/quarantine`
     * NoSchedule taint, a cordon and the ownership record, in one optimistic update. Repeating it for
     * the same workflow changes nothing. A node someone else had cordoned is recorded with
     * `preexistingCordon: true`, so release never uncordons it.
     *
     * @throws non-retryable `NodeNotFound`, `Forbidden`, `QuarantinedByOther`, `InvalidAnnotation`,
     *   `WrongCluster`, `InvalidInput`; 409 (the node changed meanwhile) is retried at once, then by
     *   Temporal.
     */
    quarantineNode: (input: QuarantineNodeInput): Promise<QuarantineNodeResult> => access.quarantine(input),

    /**
     * Returns a node to service, if this workflow owns its quarantine and the node can serve: the node
     * Ready, allocatable `nvidia.com/gpu` equal to capacity, every DaemonSet pod on it Running and
     * Ready, and a Running and Ready pod there of every GPU DaemonSet (the worker's
     * `gpuDaemonSetSelectors`) that would run on it once the quarantine taint is gone. Then removes
     * the taint, label and record, and uncordons only when fleetmedic did the cordoning. A retry
     * after success is a no-op.
     *
     * @throws retryable `NodeNotReadyForRelease` naming what is missing; non-retryable `NodeHeld`
     *   (an operator's hold is on the node, readable or not), `NotOwner`, `NodeNotFound`, `Forbidden`,
     *   `InvalidAnnotation`, `WrongCluster`, `InvalidInput`.
     */
    releaseNode: async (input: ReleaseNodeInput): Promise<ReleaseNodeResult> => {
      const { node: name, workflowId } = validateInput('releaseNode', releaseNodeSchema, input);
      const node = await requireNode(name);
      const hold = holdOf(parseHold(node.metadata?.annotations?.[HOLD_ANNOTATION]));
      if (hold !== null) {
        throw ApplicationFailure.nonRetryable(
          `node ${name} is held by ${hold.by} (${hold.reason}): not releasing it for ${workflowId}; ` +
            `an operator clears the hold (fleetmedic release ${name}, or mark-repaired)`,
          FailureType.NodeHeld,
        );
      }
      const plan = planRelease(node, workflowId);
      if (plan.action === 'refuse') throw ApplicationFailure.nonRetryable(plan.message, plan.reason);
      if (plan.action === 'noop') {
        return {
          node: name,
          released: false,
          uncordoned: false,
          leftCordoned: node.spec?.unschedulable === true,
        };
      }
      const [pods, daemonSets] = await Promise.all([listPodsOnNode(name), listDaemonSets()]);
      const blockers = [
        ...releaseBlockers(node, pods),
        ...gpuDaemonSetBlockers(node, gpuSelectors, daemonSets, pods),
      ];
      if (blockers.length > 0) {
        throw ApplicationFailure.retryable(
          `node ${name} is not ready to return to service: ${blockers.join('; ')}`,
          FailureType.NodeNotReadyForRelease,
          { node: name, blockers },
        );
      }
      await patchNode(name, plan.patch);
      return { node: name, released: true, uncordoned: plan.uncordon, leftCordoned: !plan.uncordon };
    },

    /**
     * Drains a cordoned node through the Eviction API with `kubectl drain` semantics (see
     * `planDrain`): PDB-aware (the pods of each PodDisruptionBudget are evicted no faster than its
     * `status.disruptionsAllowed`, budgets side by side, at most `concurrency` x 4 of them at once; pods
     * without a budget go through a pool of `concurrency`, with backoff on 429), UID
     * preconditions, per-pod heartbeats `{ evicted, pending, refused429, startedAt }` from which a
     * retried attempt resumes without evicting any pod twice, and a deadline that fails with
     * `DrainDeadlineExceeded` (listing the pods left) instead of waiting forever. Waits until every
     * evicted or terminating pod is gone. A node deleted meanwhile ends the drain with `nodeGone`.
     *
     * @throws non-retryable `DrainRefused` (before evicting anything), `DrainDeadlineExceeded`,
     *   `NodeNotCordoned`, `Forbidden`, `WrongCluster`, `InvalidInput`; CancelledFailure on cancel.
     */
    drainNode: async (input: DrainNodeInput): Promise<DrainNodeResult> => {
      const i = validateInput('drainNode', drainNodeSchema, input);
      const { node: name, workflowId, deadlineSeconds, podFilter } = i;
      const force = i.force ?? false;
      const deleteEmptyDirData = i.deleteEmptyDirData ?? false;
      const concurrency = i.concurrency ?? DEFAULT_CONCURRENCY;

      const ctx = activityContext();
      const cancel = ctx?.cancellationSignal;
      const resumed = readDrainProgress(ctx?.info.heartbeatDetails);
      const startedAt = resumed?.startedAt || now().toISOString();
      const deadlineMs = Date.parse(startedAt) + (deadlineSeconds ?? DEFAULT_DRAIN_DEADLINE_S) * 1000;
      const evicted = new Set(resumed?.evicted ?? []);
      const pending = new Map<string, PodRef>();
      let refused429 = resumed?.refused429 ?? 0;
      let alreadyGone = 0;
      let completedInterrupted = 0;
      const skipped = { daemonSet: 0, mirror: 0, terminating: 0, completed: 0, filtered: 0 };
      const heartbeat = () =>
        ctx?.heartbeat({
          evicted: [...evicted],
          pending: [...pending.keys()],
          refused429,
          startedAt,
        } satisfies DrainProgress);
      const result = (nodeGone: boolean): DrainNodeResult => ({
        nodeGone,
        evicted: evicted.size - alreadyGone,
        alreadyGone,
        completedInterrupted,
        skipped,
        refused429,
        seconds: Math.round((now().getTime() - Date.parse(startedAt)) / 100) / 10,
      });

      throwIfCancelled(cancel);
      const node = await readNode(name);
      if (!node) return result(true);
      assertOurCluster(node);
      if (node.spec?.unschedulable !== true) {
        throw ApplicationFailure.nonRetryable(
          `refusing to drain node ${name} for ${workflowId}: it is not cordoned, evicted pods would be scheduled back onto it`,
          FailureType.NodeNotCordoned,
        );
      }
      const pods = await listPodsOnNode(name, podFilter?.labelSelector);
      // Pods evicted by an earlier attempt are never planned again, only waited for.
      const waitFor = new Map<string, PodRef>();
      for (const pod of pods)
        if (evicted.has(pod.metadata?.uid ?? '')) waitFor.set(podRef(pod).uid, podRef(pod));
      const plan = planDrain(
        pods.filter((p) => !evicted.has(p.metadata?.uid ?? '')),
        { force, deleteEmptyDirData, podFilter },
      );
      if (plan.refused.length > 0) {
        throw ApplicationFailure.create({
          message:
            `refusing to drain node ${name}: ${plan.refused.length} pod(s) need an explicit opt-in; nothing was evicted\n` +
            describeRefusals(plan.refused),
          type: FailureType.DrainRefused,
          nonRetryable: true,
          details: [{ node: name, refused: plan.refused }],
        });
      }
      for (const key of Object.keys(skipped) as (keyof typeof skipped)[])
        skipped[key] = plan.skipped[key].length;
      for (const ref of plan.skipped.terminating) waitFor.set(ref.uid, ref);
      for (const ref of plan.toEvict) pending.set(ref.uid, ref);
      heartbeat();

      const stop = new AbortController();
      const watch = nodeWatch(name, stop);
      const deadlinePassed = () => now().getTime() >= deadlineMs;
      const ctl: EvictionControl = {
        cancel,
        stop: stop.signal,
        deadlineMs,
        method: 'evict',
        on429: () => {
          refused429++;
        },
        heartbeat,
        nodeGone: () => watch.check(),
      };
      const done = (ref: PodRef, outcome: 'evicted' | 'gone') => {
        pending.delete(ref.uid);
        evicted.add(ref.uid);
        if (outcome === 'gone') alreadyGone++;
        else waitFor.set(ref.uid, ref);
        heartbeat();
      };
      let toEvict = plan.toEvict;
      if (resumed) {
        // An eviction the killed attempt had in flight may have been approved (charged to its PDB)
        // and then dropped: finish it by deleting that pod, as the API server would have, instead of
        // waiting two minutes for the budget's record to expire while the node stays half drained.
        const since = Date.parse(startedAt) - CLOCK_SKEW_MS;
        const interrupted = await interruptedEvictions(
          toEvict.filter((r) => resumed.pending.includes(r.uid)),
          since,
        );
        for (const ref of interrupted) {
          const outcome = await evictPod(ref, { ...ctl, method: 'delete' });
          if (outcome === 'stopped') break;
          if (outcome === 'evicted') completedInterrupted++;
          done(ref, outcome);
        }
        toEvict = toEvict.filter((r) => pending.has(r.uid));
      }
      // Pods of one Deployment sit together in the list: a plain pool would send most evictions to
      // the same budget and back off on its 429s. Each budget's pods form a group instead, evicted
      // at the pace its status allows; the groups run side by side, the rest of the pods in the pool.
      const labels = new Map(pods.map((p) => [p.metadata?.uid ?? '', p.metadata?.labels] as const));
      const unready = new Set(
        pods
          .filter((p) => !p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
          .map((p) => p.metadata?.uid ?? ''),
      );
      const pdbs = await listPdbs(new Set(toEvict.map((r) => r.namespace)));
      const free: PodRef[] = [];
      const groups = new Map<string, { pdb: { namespace: string; name: string }; refs: PodRef[] }>();
      const groupOf = new Map<string, string>();
      for (const ref of toEvict) {
        const covering = coveringPdbs({ namespace: ref.namespace, labels: labels.get(ref.uid) }, pdbs);
        // Several budgets: the Eviction API refuses the pod (MultiplePodDisruptionBudgets), as before.
        if (covering.length !== 1) {
          free.push(ref);
          continue;
        }
        const pdb = { namespace: ref.namespace, name: covering[0]!.metadata?.name ?? '' };
        const key = `${pdb.namespace}/${pdb.name}`;
        const group = groups.get(key) ?? { pdb, refs: [] };
        group.refs.push(ref);
        groups.set(key, group);
        groupOf.set(ref.uid, key);
      }
      const blockedPdbs = new Set<string>();
      const settled = await Promise.allSettled([
        runPool(free, concurrency, stop, async (ref) => {
          const outcome = await evictPod(ref, ctl);
          if (outcome !== 'stopped') done(ref, outcome);
        }),
        runPool([...groups.entries()], concurrency * PDB_GROUPS_PER_WORKER, stop, async ([key, g]) =>
          evictPdbGroup(g.pdb, g.refs, { ...ctl, concurrency, done }, unready, (waiting) => {
            if (waiting) blockedPdbs.add(key);
            else blockedPdbs.delete(key);
          }),
        ),
      ]);
      for (const s of settled) if (s.status === 'rejected') throw s.reason;
      if (watch.gone) return result(true);

      const deadlineFailure = async (): Promise<ApplicationFailure> => {
        const present = new Set((await listPodsOnNode(name)).map((p) => p.metadata?.uid ?? ''));
        const left = [...pending.values(), ...waitFor.values()].filter((r) => present.has(r.uid));
        const describe = (r: PodRef) => {
          const key = groupOf.get(r.uid);
          if (!pending.has(r.uid)) return `${podName(r)} (still terminating)`;
          return key !== undefined && blockedPdbs.has(key)
            ? `${podName(r)} (not evicted: PodDisruptionBudget ${key} allows no disruption)`
            : `${podName(r)} (not evicted)`;
        };
        return ApplicationFailure.create({
          message:
            `drain of node ${name} did not finish within ${deadlineSeconds ?? DEFAULT_DRAIN_DEADLINE_S}s ` +
            `(${refused429} eviction(s) refused by PodDisruptionBudgets); ${left.length} pod(s) left: ` +
            left.map(describe).join(', '),
          type: FailureType.DrainDeadlineExceeded,
          nonRetryable: true,
          details: [{ node: name, left, evicted: evicted.size, refused429 }],
        });
      };
      if (pending.size > 0) {
        // The pool ended with pods not evicted: the deadline passed (a failure would have thrown).
        throw await deadlineFailure();
      }

      // Wait for evicted and terminating pods to be gone: a pod with a long grace period still holds
      // its GPUs, and a GPU reset or diag needs them free.
      while (waitFor.size > 0) {
        throwIfCancelled(cancel);
        const present = new Set((await listPodsOnNode(name)).map((p) => p.metadata?.uid ?? ''));
        for (const uid of [...waitFor.keys()]) if (!present.has(uid)) waitFor.delete(uid);
        if (waitFor.size === 0) break;
        if (await watch.check()) return result(true);
        if (deadlinePassed()) throw await deadlineFailure();
        heartbeat();
        await pause(Math.min(pollMs, Math.max(deadlineMs - now().getTime(), 0) + 1), cancel);
      }
      heartbeat();
      return result(false);
    },

    /**
     * Restarts chosen pods on a node (the restart-app remediation class) by evicting them, so their
     * PodDisruptionBudgets are respected; `force` deletes instead. Only pods on this node that match
     * `podNames` and/or `labelSelector` (and `namespace`) are touched; one of the two is required, so
     * the call can never restart everything on the node. The pods chosen by the first attempt are kept
     * in the heartbeat, so a retry never restarts their replacements. Returns once every chosen pod's
     * eviction is accepted (not when replacements are Ready).
     *
     * @throws non-retryable `InvalidInput`, `NodeNotFound`, `Forbidden`, `RestartDeadlineExceeded`.
     */
    restartPods: async (input: RestartPodsInput): Promise<RestartPodsResult> => {
      const i = validateInput('restartPods', restartPodsSchema, input);
      const { node: name, namespace, podNames, labelSelector } = i;
      const force = i.force ?? false;
      const concurrency = i.concurrency ?? DEFAULT_CONCURRENCY;
      const deadlineSeconds = i.deadlineSeconds ?? DEFAULT_RESTART_DEADLINE_S;
      const method = force ? 'delete' : 'evict';

      const ctx = activityContext();
      const cancel = ctx?.cancellationSignal;
      let progress = readRestartProgress(ctx?.info.heartbeatDetails);
      if (!progress) {
        await requireNode(name);
        const pods = (await listPodsOnNode(name, labelSelector)).filter(
          (p) =>
            (namespace === undefined || p.metadata?.namespace === namespace) &&
            (podNames === undefined || podNames.includes(p.metadata?.name ?? '')),
        );
        const targets: PodRef[] = [];
        const skipped: { pod: PodRef; reason: string }[] = [];
        for (const pod of pods) {
          if (isMirrorPod(pod))
            skipped.push({ pod: podRef(pod), reason: 'mirror pod (static; the kubelet owns it)' });
          else if (isCompleted(pod))
            skipped.push({ pod: podRef(pod), reason: `completed (${pod.status?.phase})` });
          else if (isTerminating(pod)) skipped.push({ pod: podRef(pod), reason: 'already terminating' });
          else targets.push(podRef(pod));
        }
        const found = new Set(pods.map((p) => p.metadata?.name));
        progress = {
          targets,
          done: [],
          refused429: 0,
          startedAt: now().toISOString(),
          skipped,
          missing: (podNames ?? []).filter((n) => !found.has(n)),
        };
      }
      const p = progress;
      const done = new Set(p.done);
      const restarted: PodRef[] = [];
      const alreadyGone: PodRef[] = [];
      const heartbeat = () => ctx?.heartbeat({ ...p, done: [...done] } satisfies RestartProgress);
      heartbeat();
      const deadlineMs = (Date.parse(p.startedAt) || now().getTime()) + deadlineSeconds * 1000;
      const stop = new AbortController();
      const todo = p.targets.filter((t) => !done.has(t.uid));
      await runPool(todo, concurrency, stop, async (ref) => {
        const outcome = await evictPod(ref, {
          cancel,
          stop: stop.signal,
          deadlineMs,
          method,
          on429: () => {
            p.refused429++;
          },
          heartbeat,
          nodeGone: () => Promise.resolve(false),
        });
        if (outcome === 'stopped') return;
        done.add(ref.uid);
        (outcome === 'evicted' ? restarted : alreadyGone).push(ref);
        heartbeat();
      });
      const left = todo.filter((t) => !done.has(t.uid));
      if (left.length > 0) {
        throw ApplicationFailure.create({
          message:
            `restart of ${left.length} pod(s) on node ${name} did not get past their PodDisruptionBudgets within ` +
            `${deadlineSeconds}s (${p.refused429} eviction(s) refused): ${left.map(podName).join(', ')}`,
          type: FailureType.RestartDeadlineExceeded,
          nonRetryable: true,
          details: [{ node: name, left, refused429: p.refused429 }],
        });
      }
      // Pods an earlier attempt restarted count as restarted.
      const earlier = p.targets.filter((t) => p.done.includes(t.uid));
      return {
        node: name,
        method,
        restarted: [...earlier, ...restarted],
        alreadyGone,
        skipped: p.skipped,
        missing: p.missing,
        refused429: p.refused429,
      };
    },

    /** A compact view of one node, or `{ exists: false }`. */
    getNode: async (input: { node: string }): Promise<NodeView | MissingNodeView> => {
      const { node: name } = validateInput('getNode', nodeSchema, input);
      const node = await readNode(name);
      return node ? nodeView(node) : { name, exists: false };
    },

    /**
     * Summaries of every node with `nvidia.com/gpu` capacity (for the fleet budget's healthy fraction
     * and the capacity check). `labelKeys` adds labels beyond the default subset.
     */
    listGpuNodes: async (input: { labelKeys?: string[] } = {}): Promise<NodeSummary[]> => {
      const labelKeys = validateInput('listGpuNodes', listGpuNodesSchema, input ?? {}).labelKeys ?? [];
      const out: NodeSummary[] = [];
      let cont: string | undefined;
      try {
        do {
          const page = await core.listNode({ limit: LIST_PAGE, _continue: cont });
          for (const node of page.items) {
            const summary = nodeSummary(node, labelKeys);
            if (summary.gpuCapacity > 0) out.push(summary);
          }
          cont = page.metadata?._continue || undefined;
        } while (cont);
      } catch (err) {
        fail(err, 'listing nodes');
      }
      return out;
    },

    /**
     * Appends a remediation time to the node's `fleetmedic.io/remediations` history (the newest 20
     * are kept) in an optimistic update, and returns the history. Recording the same `at` twice counts
     * once, so a retry does not inflate the count the replace-hardware guard reads.
     *
     * @throws non-retryable `InvalidAnnotation` when the history on the node is unreadable (it is not
     *   reset silently: the count guards a hardware decision).
     */
    recordRemediation: async (input: RecordRemediationInput): Promise<RecordRemediationResult> => {
      const { node: name, at } = validateInput('recordRemediation', recordRemediationSchema, input);
      const node = await requireNode(name);
      const parsed = parseRemediations(node.metadata?.annotations?.[REMEDIATIONS_ANNOTATION]);
      if (!parsed.ok) {
        throw ApplicationFailure.nonRetryable(
          `node ${name}: annotation ${REMEDIATIONS_ANNOTATION} is unreadable (${parsed.error}); fix it by hand`,
          FailureType.InvalidAnnotation,
        );
      }
      const history = appendRemediation(parsed.at, at);
      const unchanged = history.length === parsed.at.length && history.every((h, k) => h === parsed.at[k]);
      if (!unchanged) await patchNode(name, remediationsPatch(node, history));
      return { node: name, remediations: history };
    },

    /** Compact views of the pods on a node (for the capacity check before a drain). */
    podsOnNode: async (input: { node: string }): Promise<PodView[]> => {
      const { node: name } = validateInput('podsOnNode', nodeSchema, input);
      await requireNode(name);
      return (await listPodsOnNode(name)).map(podView);
    },
  };
}

/** The activities' type, for `proxyActivities<KubernetesActivities>()` in workflows. */
export type KubernetesActivities = ReturnType<typeof createKubernetesActivities>;
