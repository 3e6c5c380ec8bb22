/**
 * The drill's Kubernetes steps: the preflight's reads, waits, the pod deletion and the node cordon it
 * injects, and recovery measurement. Its objects and their restore: objects.ts.
 */
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { DrillFailureType } from '../../contracts/drill.js';
import { isSchedulableGpuNode, preflightDrill } from '../../drill/preflight.js';
import type { PreflightFinding } from '../../drill/report.js';
import { isApiError } from '../../k8s/api-errors.js';
import { isTerminating } from '../../k8s/drain-plan.js';
import { parseCordonRecord } from '../../k8s/node-ownership.js';
import { CORDON_ANNOTATION } from '../../k8s/remediation-labels.js';
import { int, text, validateInput } from '../input.js';
import { activityContext, pause } from '../kubernetes/control.js';
import { podEviction } from '../kubernetes/pods.js';
import { target, type DrillClusterAccess } from './access.js';
import { listPods, podReady, watchRecovery, type RecoveryWatch, type Victim } from './recovery.js';

const timeoutSeconds = int(1, 3600);

/** Where a pod deletion or eviction left off, heartbeated so a retry never disrupts a second pod. */
interface InjectionProgress {
  victim: Victim;
  injectedAt: number;
  before: string[];
}

function readInjection(details: unknown): InjectionProgress | undefined {
  const d = details as Partial<InjectionProgress> | undefined;
  return d?.victim && typeof d.injectedAt === 'number' && Array.isArray(d.before)
    ? (d as InjectionProgress)
    : undefined;
}

/** The drill's cluster steps on the cluster of `c`. */
export function createDrillClusterActivities(c: DrillClusterAccess) {
  const { access, core, policy, fail, pollMs, shape, listNodes } = c;

  const eviction = podEviction(access);

  /**
   * Evicts the victim through the Eviction API, as the remediation's drain evicts a pod
   * (`podEviction().evictPod`: UID precondition, a 429 from its PDB tried again with the drain's
   * backoff, heartbeating), until `timeoutMs` after the injection.
   */
  async function evictUntilAccepted(namespace: string, p: InjectionProgress, timeoutMs: number) {
    const ctx = activityContext();
    const outcome = await eviction.evictPod(
      { namespace, name: p.victim.name, uid: p.victim.uid },
      {
        cancel: ctx?.cancellationSignal,
        stop: new AbortController().signal,
        deadlineMs: p.injectedAt + timeoutMs,
        method: 'evict',
        on429: () => undefined,
        heartbeat: () => ctx?.heartbeat(p),
        nodeGone: () => Promise.resolve(false),
      },
    );
    if (outcome === 'stopped') {
      throw ApplicationFailure.nonRetryable(
        `its PodDisruptionBudget allowed no eviction of ${p.victim.name} for ${timeoutMs / 1000} s`,
        DrillFailureType.RecoveryTimeout,
      );
    }
  }

  return {
    /** The preflight findings of the Deployment (src/drill/preflight.ts), read from the cluster. */
    drillPreflight: async (input: { namespace: string; deployment: string }): Promise<PreflightFinding[]> => {
      const { namespace, deployment } = validateInput('drillPreflight', target, input);
      const { selector, deployment: d } = await shape(namespace, deployment);
      const [pdbs, pods, nodes] = await Promise.all([
        policy.listNamespacedPodDisruptionBudget({ namespace }).then((l) => l.items),
        listPods(core, namespace, selector),
        listNodes(),
      ]);
      return preflightDrill({ deployment: d, pdbs, pods, nodes });
    },

    /** Waits until the Deployment has its replicas Ready and none terminating; heartbeats meanwhile. */
    waitForReplicas: async (input: { namespace: string; deployment: string; timeoutSeconds?: number }) => {
      const i = validateInput(
        'waitForReplicas',
        target.extend({ timeoutSeconds: timeoutSeconds.optional() }),
        input,
      );
      const ctx = activityContext();
      const deadline = Date.now() + (i.timeoutSeconds ?? 300) * 1000;
      for (;;) {
        const { replicas, selector } = await shape(i.namespace, i.deployment);
        const pods = await listPods(core, i.namespace, selector);
        const ready = pods.filter((p) => !isTerminating(p) && podReady(p));
        if (ready.length >= replicas && pods.length === ready.length) {
          return { readyAt: Date.now(), pods: ready.map((p) => p.metadata?.name ?? '?').sort() };
        }
        if (Date.now() > deadline) {
          throw ApplicationFailure.nonRetryable(
            `Deployment ${i.namespace}/${i.deployment}: ${ready.length} of ${replicas} replicas Ready after ${i.timeoutSeconds ?? 300} s`,
            DrillFailureType.RecoveryTimeout,
          );
        }
        ctx?.heartbeat({ ready: ready.length });
        await pause(pollMs, ctx?.cancellationSignal);
      }
    },

    /**
     * Deletes one Ready replica (the first by name) and measures until its replacement is Ready, all
     * replicas are Ready and the deleted pod is gone. A retry resumes the watch of the same pod.
     * With `evict`, the pod goes through the Eviction API instead (its PDB decides: a 429 is tried
     * again with the drain's backoff until the timeout), and the step `eviction` is recorded: a replica's
     * eviction without cordoning or draining its node.
     */
    deletePodAndMeasure: async (input: {
      namespace: string;
      deployment: string;
      timeoutSeconds?: number;
      evict?: boolean;
    }) => {
      const i = validateInput(
        'deletePodAndMeasure',
        target.extend({ timeoutSeconds: timeoutSeconds.optional(), evict: z.boolean().optional() }),
        input,
      );
      const ctx = activityContext();
      const { replicas, selector } = await shape(i.namespace, i.deployment);
      let progress = readInjection(ctx?.info.heartbeatDetails);
      if (!progress) {
        const pods = await listPods(core, i.namespace, selector);
        const victim = pods
          .filter((p) => podReady(p) && !isTerminating(p))
          .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''))[0];
        if (!victim)
          throw ApplicationFailure.nonRetryable(
            `no Ready replica of ${i.deployment} to delete`,
            DrillFailureType.RecoveryTimeout,
          );
        progress = {
          victim: { name: victim.metadata?.name ?? '', uid: victim.metadata?.uid ?? '' },
          injectedAt: Date.now(),
          before: pods.map((p) => p.metadata?.uid ?? ''),
        };
        ctx?.heartbeat(progress);
        if (i.evict) await evictUntilAccepted(i.namespace, progress, (i.timeoutSeconds ?? 120) * 1000);
        else {
          await core
            .deleteNamespacedPod({ namespace: i.namespace, name: progress.victim.name })
            .catch((err: unknown) =>
              isApiError(err, 404) ? undefined : fail(err, `deleting pod ${progress!.victim.name}`),
            );
        }
      }
      const watch = await watchRecovery({
        core,
        namespace: i.namespace,
        selector,
        replicas,
        victim: progress.victim,
        before: new Set(progress.before),
        withEviction: i.evict === true,
        deadlineMs: progress.injectedAt + (i.timeoutSeconds ?? 120) * 1000,
        pollMs,
        // A retry must find the pod already deleted, however long the watch has run.
        carry: { ...progress },
      });
      return { injectedAt: progress.injectedAt, victim: progress.victim.name, ...watch };
    },

    /**
     * Cordons the node of one Ready replica for the drill: the quarantine marks with the ownership
     * record naming `owner` (drill/<id>), so restore uncordons only what this drill cordoned. A retry
     * finds the node already recorded for `owner`.
     */
    cordonReplicaNode: async (input: {
      namespace: string;
      deployment: string;
      owner: string;
      reason: string;
    }) => {
      const i = validateInput(
        'cordonReplicaNode',
        target.extend({ owner: text(200), reason: text(1024) }),
        input,
      );
      const { selector } = await shape(i.namespace, i.deployment);
      const pods = await listPods(core, i.namespace, selector);
      const nodes = await listNodes();
      const ours = nodes.find((n) => {
        const r = parseCordonRecord(n.metadata?.annotations?.[CORDON_ANNOTATION]);
        return r.kind === 'ok' && r.record.workflowId === i.owner;
      });
      const live = pods
        .filter((p) => podReady(p) && !isTerminating(p) && p.spec?.nodeName)
        .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
      const victim = ours ? live.find((p) => p.spec?.nodeName === ours.metadata?.name) : live[0];
      if (!victim) {
        throw ApplicationFailure.nonRetryable(
          `no Ready replica of ${i.deployment} to evict`,
          DrillFailureType.RecoveryTimeout,
        );
      }
      const node = victim.spec!.nodeName!;
      const current = nodes.find((n) => n.metadata?.name === node);
      if (!ours && current && !isSchedulableGpuNode(current)) {
        throw ApplicationFailure.nonRetryable(
          `node ${node} is already cordoned or not Ready`,
          DrillFailureType.NodeNotSchedulable,
        );
      }
      await access.quarantine({ node, workflowId: i.owner, reason: i.reason }, current);
      return {
        node,
        selector,
        victim: { name: victim.metadata?.name ?? '', uid: victim.metadata?.uid ?? '' },
        before: pods.map((p) => p.metadata?.uid ?? ''),
      };
    },

    /** Measures recovery from the loss of `victim` (evicted by the drain that runs beside it). */
    measureRecovery: async (input: {
      namespace: string;
      deployment: string;
      victim: Victim;
      before: string[];
      injectedAt: number;
      timeoutSeconds?: number;
    }): Promise<RecoveryWatch> => {
      const { replicas, selector } = await shape(input.namespace, input.deployment);
      return watchRecovery({
        core,
        namespace: input.namespace,
        selector,
        replicas,
        victim: input.victim,
        before: new Set(input.before),
        withEviction: true,
        deadlineMs: input.injectedAt + (input.timeoutSeconds ?? 120) * 1000,
        pollMs,
      });
    },
  };
}
