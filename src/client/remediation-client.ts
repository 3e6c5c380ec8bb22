import type { Client, WorkflowHandleWithSignaledRunId } from '@temporalio/client';
import type { AlertSignal, RemediationPolicy } from '../domain/remediation-plan.js';
import { remediationWorkflowId } from '../contracts/ids.js';
import {
  alertSignal,
  REMEDIATION_WORKFLOW,
  type RemediationInput,
  type RemediationPhase,
  type RemediationStatus,
} from '../contracts/remediation.js';
import { ALERT, CLUSTER_ID, NODE, PHASE } from '../contracts/search-attributes.js';

/**
 * The remediation workflow as clients call it, by its type name {@link REMEDIATION_WORKFLOW}: a run
 * takes its input and ends with its final status. Declared from the contracts, so no client imports
 * workflow code.
 */
export type RemediationWorkflow = (input: RemediationInput) => Promise<RemediationStatus>;

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
 * has acknowledged the signal. A new run carries its search attributes (cluster, node, phase
 * `received`, alert), a static summary and static details (the alert that started it) for the
 * Temporal UI; a join changes none of them.
 */
export async function startOrJoinRemediation(
  client: Client,
  options: StartRemediationOptions,
): Promise<WorkflowHandleWithSignaledRunId<RemediationWorkflow>> {
  return client.workflow.signalWithStart<RemediationWorkflow, [AlertSignal]>(REMEDIATION_WORKFLOW, {
    workflowId: remediationWorkflowId(options.clusterId, options.node),
    taskQueue: options.taskQueue,
    args: [{ clusterId: options.clusterId, node: options.node, policy: options.policy }],
    signal: alertSignal,
    signalArgs: [options.alert],
    // Searchable from the start (the workflow upserts them again as it goes): a remediation whose
    // first workflow task has not run yet still shows up under its node, phase and alert.
    typedSearchAttributes: [
      { key: CLUSTER_ID, value: options.clusterId },
      { key: NODE, value: options.node },
      { key: PHASE, value: 'received' satisfies RemediationPhase },
      { key: ALERT, value: options.alert.alertName },
    ],
    staticSummary: remediationSummary(options),
    staticDetails: remediationDetails(options),
  });
}

/** The one-line summary the Temporal UI shows for a remediation (set when it starts, never changed). */
export function remediationSummary(
  options: Pick<StartRemediationOptions, 'clusterId' | 'node' | 'alert'>,
): string {
  const { alert } = options;
  const fault = [
    alert.xid !== undefined && `XID ${alert.xid}`,
    alert.dcgmCode !== undefined && alert.dcgmCode,
    alert.gpu !== undefined && `GPU ${alert.gpu}`,
  ].filter(Boolean);
  return `GPU remediation of ${options.node} (cluster ${options.clusterId}): ${alert.alertName}${fault.length ? ` ${fault.join(', ')}` : ''}`;
}

/**
 * The static details (Markdown) of a remediation: the alert that started it, so the UI says why the
 * workflow exists without opening the history. The phase as it moves on is in the current details.
 */
export function remediationDetails(
  options: Pick<StartRemediationOptions, 'clusterId' | 'node' | 'alert'>,
): string {
  const { alert } = options;
  const rows: [string, string | number | undefined][] = [
    ['node', options.node],
    ['cluster', options.clusterId],
    ['alert', alert.alertName],
    ['XID', alert.xid],
    ['DCGM code', alert.dcgmCode],
    ['GPU', alert.gpu],
    ['source', alert.source],
    ['episode', alert.episodeKey],
  ];
  return [
    '| started by | |',
    '| --- | --- |',
    ...rows.filter(([, v]) => v !== undefined).map(([k, v]) => `| ${k} | ${markdownCell(String(v))} |`),
    '',
    'Phase, class and outcome: search attributes FleetmedicPhase, FleetmedicOutcome; live status: the `status` query.',
  ].join('\n');
}

function markdownCell(text: string): string {
  return text
    .replace(/\\/g, '\\\\')
    .replace(/\|/g, '\\|')
    .replace(/[\r\n]+/g, ' ');
}
