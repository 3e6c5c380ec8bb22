/**
 * The drill's Kubernetes steps: preflight reads, the stand-in Deployment, waits, the pod deletion and
 * the node cordon it injects, recovery measurement, and the restore that undoes only its own work.
 */
import { AppsV1Api, PolicyV1Api, type KubernetesObject, type V1Deployment } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { DrillFailureType, type DrillRestoreResult } from '../../contracts/drill.js';
import { isSchedulableGpuNode, preflightDrill } from '../../drill/preflight.js';
import type { PreflightFinding } from '../../drill/report.js';
import { DRILL_LABEL, standinManifests } from '../../drill/standin-manifest.js';
import { makeApiClient } from '../../k8s/api-client.js';
import { isApiError } from '../../k8s/api-errors.js';
import { isTerminating } from '../../k8s/drain-plan.js';
import { parseCordonRecord, planRelease } from '../../k8s/node-ownership.js';
import { CORDON_ANNOTATION } from '../../k8s/remediation-labels.js';
import { int, objectName, text, validateInput } from '../input.js';
import { activityContext, pause } from '../kubernetes/control.js';
import { nodeAccess, type KubernetesActivityDeps } from '../kubernetes/node-access.js';
import { listPods, podReady, watchRecovery, type RecoveryWatch, type Victim } from './recovery.js';

const target = z.object({ namespace: objectName, deployment: objectName });
const drillId = text(63);
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

/** The drill's cluster steps on the cluster of `deps`. */
export function createDrillClusterActivities(deps: KubernetesActivityDeps) {
  const access = nodeAccess(deps);
  const { core } = access;
  // Annotated, so that control flow knows a call never returns.
  const fail: (err: unknown, doing: string) => never = access.fail;
  const apps = makeApiClient(deps.kc, AppsV1Api);
  const policy = makeApiClient(deps.kc, PolicyV1Api);
  const pollMs = deps.pollIntervalMs ?? 250;

  async function readDeployment(namespace: string, name: string): Promise<V1Deployment> {
    try {
      return await apps.readNamespacedDeployment({ namespace, name });
    } catch (err) {
      if (isApiError(err, 404)) {
        throw ApplicationFailure.nonRetryable(`Deployment ${namespace}/${name} not found`, 'NotFound');
      }
      fail(err, `reading Deployment ${namespace}/${name}`);
    }
  }

  async function shape(namespace: string, name: string) {
    const d = await readDeployment(namespace, name);
    const labels = d.spec?.selector.matchLabels ?? {};
    const selector = Object.entries(labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    return { replicas: d.spec?.replicas ?? 1, selector, deployment: d };
  }

  async function listNodes() {
    return (await core.listNode()).items;
  }

  /** Creates `body` unless it exists; an existing object must carry this drill's label. */
  async function ensure(
    kind: string,
    body: KubernetesObject,
    create: () => Promise<unknown>,
    read: () => Promise<KubernetesObject>,
    id: string,
  ) {
    try {
      await create();
      return true;
    } catch (err) {
      if (!isApiError(err, 409)) fail(err, `creating ${kind} ${body.metadata?.name}`);
    }
    const existing = await read();
    if (existing.metadata?.labels?.[DRILL_LABEL] !== id) {
      throw ApplicationFailure.nonRetryable(
        `${kind} ${body.metadata?.namespace}/${body.metadata?.name} exists and was not created by drill ${id}`,
        DrillFailureType.NotDrillObject,
      );
    }
    return false;
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

    /** Creates the stand-in Deployment, PDB and Service labelled with the drill's ID (idempotent). */
    applyStandin: async (input: {
      namespace: string;
      deployment: string;
      drillId: string;
      replicas?: number;
      serviceMs?: number;
    }): Promise<{ created: string[] }> => {
      const i = validateInput(
        'applyStandin',
        target.extend({ drillId, replicas: int(1, 64).optional(), serviceMs: int(0, 60_000).optional() }),
        input,
      );
      const { namespace, deployment: name } = i;
      const m = standinManifests({
        namespace,
        name,
        drillId: i.drillId,
        replicas: i.replicas,
        serviceMs: i.serviceMs,
      });
      const created: string[] = [];
      const steps: [string, KubernetesObject, () => Promise<unknown>, () => Promise<KubernetesObject>][] = [
        [
          'PodDisruptionBudget',
          m.pdb,
          () => policy.createNamespacedPodDisruptionBudget({ namespace, body: m.pdb }),
          () => policy.readNamespacedPodDisruptionBudget({ namespace, name }),
        ],
        [
          'Service',
          m.service,
          () => core.createNamespacedService({ namespace, body: m.service }),
          () => core.readNamespacedService({ namespace, name }),
        ],
        [
          'Deployment',
          m.deployment,
          () => apps.createNamespacedDeployment({ namespace, body: m.deployment }),
          () => apps.readNamespacedDeployment({ namespace, name }),
        ],
      ];
      for (const [kind, body, create, read] of steps) {
        if (await ensure(kind, body, create, read, i.drillId)) created.push(`${kind} ${namespace}/${name}`);
      }
      return { created };
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
     */
    deletePodAndMeasure: async (input: {
      namespace: string;
      deployment: string;
      timeoutSeconds?: number;
    }) => {
      const i = validateInput(
        'deletePodAndMeasure',
        target.extend({ timeoutSeconds: timeoutSeconds.optional() }),
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
        await core
          .deleteNamespacedPod({ namespace: i.namespace, name: progress.victim.name })
          .catch((err: unknown) =>
            isApiError(err, 404) ? undefined : fail(err, `deleting pod ${progress!.victim.name}`),
          );
      }
      const watch = await watchRecovery({
        core,
        namespace: i.namespace,
        selector,
        replicas,
        victim: progress.victim,
        before: new Set(progress.before),
        withEviction: false,
        deadlineMs: progress.injectedAt + (i.timeoutSeconds ?? 120) * 1000,
        pollMs,
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
          'NodeNotSchedulable',
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

    /**
     * Undoes the drill: releases every node whose ownership record names `owner` (a node another
     * workflow took over is left to it), and deletes the Deployment, PDB and Service named
     * `deployment` when they carry this drill's label and `remove` is set.
     */
    restoreDrill: async (input: {
      namespace: string;
      deployment: string;
      drillId: string;
      owner: string;
      cordoned: string[];
      remove: boolean;
    }): Promise<DrillRestoreResult> => {
      const i = validateInput(
        'restoreDrill',
        target.extend({ drillId, owner: text(200), cordoned: z.array(objectName), remove: z.boolean() }),
        input,
      );
      const uncordoned: string[] = [];
      const recorded = new Set<string>();
      for (const node of await listNodes()) {
        const name = node.metadata?.name ?? '';
        const r = parseCordonRecord(node.metadata?.annotations?.[CORDON_ANNOTATION]);
        if (r.kind !== 'ok' || r.record.workflowId !== i.owner) continue;
        recorded.add(name);
        const plan = planRelease(node, i.owner);
        if (plan.action !== 'patch') continue;
        await access.patchNode(name, plan.patch);
        if (plan.uncordon) uncordoned.push(name);
      }
      const leftToOthers = i.cordoned.filter((n) => !recorded.has(n));
      const deleted: string[] = [];
      if (i.remove) {
        const { namespace, deployment: name } = i;
        const objects: [string, () => Promise<KubernetesObject>, () => Promise<unknown>][] = [
          [
            'Deployment',
            () => apps.readNamespacedDeployment({ namespace, name }),
            () => apps.deleteNamespacedDeployment({ namespace, name, propagationPolicy: 'Background' }),
          ],
          [
            'PodDisruptionBudget',
            () => policy.readNamespacedPodDisruptionBudget({ namespace, name }),
            () => policy.deleteNamespacedPodDisruptionBudget({ namespace, name }),
          ],
          [
            'Service',
            () => core.readNamespacedService({ namespace, name }),
            () => core.deleteNamespacedService({ namespace, name }),
          ],
        ];
        for (const [kind, read, remove] of objects) {
          const obj = await read().catch((err: unknown) =>
            isApiError(err, 404) ? undefined : fail(err, `reading ${kind} ${name}`),
          );
          if (obj?.metadata?.labels?.[DRILL_LABEL] !== i.drillId) continue;
          await remove().catch((err: unknown) =>
            isApiError(err, 404) ? undefined : fail(err, `deleting ${kind} ${name}`),
          );
          deleted.push(`${kind} ${namespace}/${name}`);
        }
      }
      return { uncordoned, leftToOthers, deleted };
    },
  };
}
