/**
 * The objects a drill creates and undoes: the stand-in Deployment, PDB and Service (labelled with the
 * drill's ID), and the restore that releases only the drill's own cordons and deletes only its own
 * objects.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { DrillFailureType, type DrillRestoreResult } from '../../contracts/drill.js';
import { DRILL_LABEL, standinManifests } from '../../drill/standin-manifest.js';
import { isApiError } from '../../k8s/api-errors.js';
import { parseCordonRecord } from '../../k8s/node-ownership.js';
import { CORDON_ANNOTATION } from '../../k8s/remediation-labels.js';
import { int, objectName, text, validateInput } from '../input.js';
import { releaseDrillCordon, target, type DrillClusterAccess } from './access.js';

const drillId = text(63);

/** applyStandin and restoreDrill on the cluster of `c`. */
export function createDrillObjectActivities(c: DrillClusterAccess) {
  const { access, core, apps, policy, fail, listNodes } = c;

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
      gateway?: { namespace: string; name: string };
    }): Promise<DrillRestoreResult> => {
      const i = validateInput(
        'restoreDrill',
        target.extend({
          drillId,
          owner: text(200),
          cordoned: z.array(objectName),
          remove: z.boolean(),
          gateway: z.object({ namespace: objectName, name: objectName }).optional(),
        }),
        input,
      );
      const uncordoned: string[] = [];
      const recorded = new Set<string>();
      for (const node of await listNodes()) {
        const name = node.metadata?.name ?? '';
        const r = parseCordonRecord(node.metadata?.annotations?.[CORDON_ANNOTATION]);
        if (r.kind !== 'ok' || r.record.workflowId !== i.owner) continue;
        recorded.add(name);
        const released = await releaseDrillCordon(access, node, i.owner);
        if (released?.uncordoned) uncordoned.push(name);
      }
      const leftToOthers = i.cordoned.filter((n) => !recorded.has(n));
      const deleted: string[] = [];
      const remove = async (namespace: string, name: string, withService: boolean) => {
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
          ...(withService
            ? [
                [
                  'Service',
                  () => core.readNamespacedService({ namespace, name }),
                  () => core.deleteNamespacedService({ namespace, name }),
                ] as [string, () => Promise<KubernetesObject>, () => Promise<unknown>],
              ]
            : []),
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
      };
      if (i.remove) {
        await remove(i.namespace, i.deployment, true);
        // The gateway's pods, when the drill brought them (its label says so).
        if (i.gateway) await remove(i.gateway.namespace, i.gateway.name, false);
      }
      return { uncordoned, leftToOthers, deleted };
    },
  };
}
