import type { Client, WorkflowHandleWithSignaledRunId } from '@temporalio/client';
import type { AlertSignal, RemediationPolicy } from '../domain/remediation-plan.js';
import { remediationWorkflowId } from '../workflows/ids.js';
import { alertSignal, gpuRemediationWorkflow } from '../workflows/remediation.js';
import { CLUSTER_ID, NODE } from '../workflows/search-attributes.js';

export interface StartRemediationOptions {
  readonly clusterId: string;
  readonly node: string;
  readonly taskQueue: string;
  readonly alert: AlertSignal;
  readonly policy?: Partial<RemediationPolicy>;
}

/**
 * Starts the node's remediation or joins the running one, with signal-with-start on the node's
 * workflow ID: however many alerts arrive for a node, one remediation runs. Resolves once Temporal
 * has acknowledged the signal.
 */
export async function startOrJoinRemediation(
  client: Client,
  options: StartRemediationOptions,
): Promise<WorkflowHandleWithSignaledRunId<typeof gpuRemediationWorkflow>> {
  return client.workflow.signalWithStart(gpuRemediationWorkflow, {
    workflowId: remediationWorkflowId(options.clusterId, options.node),
    taskQueue: options.taskQueue,
    args: [{ clusterId: options.clusterId, node: options.node, policy: options.policy }],
    signal: alertSignal,
    signalArgs: [options.alert],
    typedSearchAttributes: [
      { key: CLUSTER_ID, value: options.clusterId },
      { key: NODE, value: options.node },
    ],
    staticSummary: `GPU remediation of ${options.node} (cluster ${options.clusterId})`,
  });
}
