/**
 * `restartPods`: chosen pods on a node restarted through the Eviction API (or deleted with `force`),
 * the restart-app remediation.
 */
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { FailureType } from '../../errors.js';
import { isCompleted, isMirrorPod, isTerminating, podRef, type PodRef } from '../../k8s/drain-plan.js';
import { int, nonEmptyStrings, objectName, text, validateInput } from '../input.js';
import { activityContext, runPool } from './control.js';
import type { NodeAccess } from './node-access.js';
import { DEFAULT_CONCURRENCY, podName, type PodEviction } from './pods.js';

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

const DEFAULT_RESTART_DEADLINE_S = 300;

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

/** The pod restart activity on the cluster of `access`. */
export function createPodRestartActivities(access: NodeAccess, pods: PodEviction) {
  const { now, requireNode } = access;
  const { listPodsOnNode, evictPod } = pods;

  return {
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
  };
}
