/**
 * `drainNode`: a cordoned node drained through the Eviction API, PodDisruptionBudget-aware, resumable
 * from its heartbeats, with a deadline.
 */
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { FailureType } from '../../errors.js';
import { isApiError } from '../../k8s/api-errors.js';
import {
  describeRefusals,
  planDrain,
  podRef,
  type DrainPodFilter,
  type PodRef,
} from '../../k8s/drain-plan.js';
import { coveringPdbs } from '../../k8s/pdb.js';
import { int, nonEmptyStrings, objectName, text, validateInput } from '../input.js';
import { activityContext, pause, runPool, throwIfCancelled } from './control.js';
import type { NodeAccess } from './node-access.js';
import { disruptionBudgets } from './pdb-groups.js';
import { DEFAULT_CONCURRENCY, podName, type EvictionControl, type PodEviction } from './pods.js';

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

const DEFAULT_DRAIN_DEADLINE_S = 1800;
const NODE_CHECK_INTERVAL_MS = 2_000;
/** Clock difference tolerated between this worker and the API server when dating a PDB's records. */
const CLOCK_SKEW_MS = 60_000;
/** PodDisruptionBudget groups evicting at once, per unit of `concurrency` (see drainNode). */
const PDB_GROUPS_PER_WORKER = 4;

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

/** The drain activity on the cluster of `access`; `pollMs`: how often it re-checks that pods are gone. */
export function createDrainActivities(access: NodeAccess, pods: PodEviction, pollMs: number) {
  const { core, now, readNode, assertOurCluster } = access;
  const { listPodsOnNode, evictPod } = pods;
  const { evictPdbGroup, listPdbs, interruptedEvictions } = disruptionBudgets(access, pods);

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

  return {
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
  };
}
