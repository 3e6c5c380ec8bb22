/**
 * What the drill's Kubernetes activities share: the node access of the remediation activities (its
 * error mapping and cluster check), API clients, and reads of the drilled Deployment and the nodes.
 */
import { AppsV1Api, PolicyV1Api, type V1Deployment, type V1Node } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { makeApiClient } from '../../k8s/api-client.js';
import { isApiError } from '../../k8s/api-errors.js';
import { planRelease } from '../../k8s/node-ownership.js';
import { objectName } from '../input.js';
import { nodeAccess, type KubernetesActivityDeps, type NodeAccess } from '../kubernetes/node-access.js';

/** A Deployment named in an activity's input. */
export const target = z.object({ namespace: objectName, deployment: objectName });

/** Clients and reads for the drill activities on the cluster of `deps`. */
export function drillClusterAccess(deps: KubernetesActivityDeps) {
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

  /** The Deployment, its replica count and its selector as a label selector string. */
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

  return { access, core, apps, policy, fail, pollMs, readDeployment, shape, listNodes };
}

export type DrillClusterAccess = ReturnType<typeof drillClusterAccess>;

/**
 * Releases the cordon `owner` (a drill) holds on `node`, planned from the node as the caller read it
 * (a node changed since fails the patch with 409): the quarantine marks and the record go, and the
 * node is uncordoned only when the drill did the cordoning. Restore and the reaper both release this way.
 *
 * @returns whether it uncordoned the node, or undefined when the record does not name `owner` (nothing done).
 * @example
 * const released = await releaseDrillCordon(access, node, drillOwner('nightly'));
 */
export async function releaseDrillCordon(
  access: NodeAccess,
  node: V1Node,
  owner: string,
): Promise<{ readonly uncordoned: boolean } | undefined> {
  const plan = planRelease(node, owner);
  if (plan.action !== 'patch') return undefined;
  await access.patchNode(node.metadata?.name ?? '', plan.patch);
  return { uncordoned: plan.uncordon };
}
