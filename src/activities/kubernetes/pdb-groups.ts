/**
 * The drain's PodDisruptionBudget side: evicting the pods one budget covers at the pace its status
 * allows, listing budgets, and finding evictions a budget approved that a killed worker never saw
 * carried out.
 */
import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import { isApiError } from '../../k8s/api-errors.js';
import type { PodRef } from '../../k8s/drain-plan.js';
import { pdbAllowance, type PdbAllowance } from '../../k8s/pdb.js';
import { pause, throwIfCancelled } from './control.js';
import type { NodeAccess } from './node-access.js';
import type { EvictionControl, PodEviction } from './pods.js';

/** How often a drain waiting on a PodDisruptionBudget re-reads its status. */
const PDB_POLL_MS = 250;

/** PodDisruptionBudget reads and grouped evictions on the cluster of `access`. */
export function disruptionBudgets(access: NodeAccess, pods: PodEviction) {
  const { policyApi, now } = access;
  // Annotated, so that control flow knows a call never returns.
  const fail: (err: unknown, doing: string) => never = access.fail;
  const { evictOnce, evictPod } = pods;

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

  return { evictPdbGroup, listPdbs, interruptedEvictions };
}
