import { CoreV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import { mergePatch } from '../k8s/patch.js';
import {
  CORDON_ANNOTATION,
  EPISODES_ANNOTATION,
  QUARANTINE_TAINT_KEY,
  QUARANTINED_LABEL,
  REMEDIATIONS_ANNOTATION,
} from '../k8s/remediation-labels.js';
import { assertSimulatedNode } from '../stack/sim-cluster.js';
import { remediationWorkflowId } from '../contracts/ids.js';

const HISTORY_ANNOTATIONS = { [REMEDIATIONS_ANNOTATION]: null, [EPISODES_ANNOTATION]: null };

/**
 * The merge patch an operator's "this node is fine" amounts to on a simulated node: uncordon, drop
 * fleetmedic's quarantine taint, label and cordon record, and with `forgetHistory` its remediation
 * and episode history too. Shared by the demo and the remediation benchmark.
 */
export function liftQuarantinePatch(node: V1Node, options: { forgetHistory: boolean }): object {
  return {
    spec: {
      unschedulable: false,
      taints: node.spec?.taints?.filter((t) => t.key !== QUARANTINE_TAINT_KEY) ?? [],
    },
    metadata: {
      labels: { [QUARANTINED_LABEL]: null },
      annotations: { [CORDON_ANNOTATION]: null, ...(options.forgetHistory && HISTORY_ANNOTATIONS) },
    },
  };
}

/**
 * The simulated nodes `fleetmedic demo` may use: healthy ones (not cordoned) without an open
 * remediation, in name order. A node an earlier demo left mid-way is never taken over.
 */
export async function demoNodes(
  kc: KubeConfig,
  client: Client,
  clusterId: string,
  names: readonly string[],
): Promise<string[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const free: string[] = [];
  for (const name of [...names].sort()) {
    const node = await core.readNode({ name });
    assertSimulatedNode(node);
    if (node.spec?.unschedulable) continue;
    const open = await client.workflow
      .getHandle(remediationWorkflowId(clusterId, name))
      .describe()
      .then(
        (d) => d.status.name === 'RUNNING',
        () => false,
      );
    if (!open) free.push(name);
  }
  return free;
}

/**
 * Forgets a simulated node's remediation history (the repeat guard's record and the handled
 * episodes), so a demo run again is not sent to replace-hardware as "remediated twice in 7 days".
 * Simulated nodes only: on a real node that record is what stops a remediation loop.
 *
 * @returns whether there was a history to forget.
 */
export async function forgetDemoHistory(kc: KubeConfig, name: string): Promise<boolean> {
  const core = kc.makeApiClient(CoreV1Api);
  const node = await core.readNode({ name });
  assertSimulatedNode(node);
  const annotations = node.metadata?.annotations ?? {};
  if (annotations[REMEDIATIONS_ANNOTATION] === undefined && annotations[EPISODES_ANNOTATION] === undefined) {
    return false;
  }
  await core.patchNode({ name, body: { metadata: { annotations: HISTORY_ANNOTATIONS } } }, mergePatch);
  return true;
}

/**
 * Ends the remediations an earlier `fleetmedic demo` left open (killed mid-way, or stopped while an
 * operator was needed): they run on the demo's own task queue, whose worker is gone, and one holding
 * the drain slot would keep the new demo waiting. Their simulated nodes are returned to service.
 *
 * @returns the nodes released.
 */
export async function endEarlierDemoRuns(
  kc: KubeConfig,
  client: Client,
  demoTaskQueue: string,
): Promise<string[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const released: string[] = [];
  const open = client.workflow.list({
    query: `TaskQueue = '${demoTaskQueue}' AND WorkflowType = 'gpuRemediationWorkflow' AND ExecutionStatus = 'Running'`,
  });
  for await (const run of open) {
    const name = run.workflowId.split('/').at(-1)!;
    const node = await core.readNode({ name }).catch(() => undefined);
    if (node) assertSimulatedNode(node);
    await client.workflow.getHandle(run.workflowId, run.runId).terminate('ended by a later fleetmedic demo');
    if (!node) continue;
    await core.patchNode({ name, body: liftQuarantinePatch(node, { forgetHistory: false }) }, mergePatch);
    released.push(name);
  }
  return released;
}
