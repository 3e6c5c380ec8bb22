/**
 * The pods of a node: listing them, and evicting (or deleting) exactly one pod by UID, with the
 * Eviction API's 429 protocol. Shared by the drain, pod restarts and the release check.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../errors.js';
import { isApiError } from '../../k8s/api-errors.js';
import { apiErrorMessage } from '../../k8s/api-status.js';
import { evictionBackoffMs, type PodRef } from '../../k8s/drain-plan.js';
import { pause, throwIfCancelled } from './control.js';
import type { NodeAccess } from './node-access.js';

/** Evictions in flight at once unless the input says otherwise. */
export const DEFAULT_CONCURRENCY = 5;
/** Items per page of a list call. */
export const LIST_PAGE = 500;

export function podName(ref: PodRef): string {
  return `${ref.namespace}/${ref.name}`;
}

/** How one eviction task runs: when it stops, how it reports 429s and liveness. */
export interface EvictionControl {
  cancel: AbortSignal | undefined;
  stop: AbortSignal;
  deadlineMs: number;
  method: 'evict' | 'delete';
  on429: () => void;
  heartbeat: () => void;
  /** True when the drain should stop because the node is gone. */
  nodeGone: () => Promise<boolean>;
}

/** Pod listing and eviction on the cluster of `access`. */
export function podEviction(access: NodeAccess) {
  const { core, now } = access;
  // Annotated, so that control flow knows a call never returns.
  const fail: (err: unknown, doing: string) => never = access.fail;

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

  return { listPodsOnNode, goneOrReplaced, evictOnce, evictPod };
}

export type PodEviction = ReturnType<typeof podEviction>;
