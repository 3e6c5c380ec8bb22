import { WorkflowNotFoundError } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import { startOrJoinRemediation, type StartRemediationOptions } from '../client/remediation-client.js';
import type { AlertSignal } from '../domain/remediation-plan.js';
import { remediationWorkflowId } from '../contracts/ids.js';
import { alertSignal } from '../contracts/remediation.js';

/**
 * What the webhook needs from Temporal: start or join a node's remediation with a firing alert, and
 * record a resolved alert in the running one. Both resolve only once Temporal has acknowledged, and
 * reject when it cannot be reached (the webhook then answers 503 so the sender retries).
 */
export interface RemediationStarter {
  /** Signal-with-start of the node's remediation workflow. */
  startOrJoin(options: StartRemediationOptions): Promise<{ workflowId: string; runId: string }>;
  /**
   * Signals a resolved alert to the node's running remediation; `undefined` when none runs (a
   * resolved alert never starts a remediation).
   */
  recordResolved(options: {
    clusterId: string;
    node: string;
    alert: AlertSignal;
  }): Promise<{ workflowId: string } | undefined>;
}

/**
 * The {@link RemediationStarter} backed by a Temporal client. Every call carries a deadline, so an
 * unreachable Temporal fails the request within `timeoutMs` instead of hanging the sender.
 */
export class TemporalRemediationStarter implements RemediationStarter {
  constructor(
    private readonly client: Client,
    private readonly timeoutMs = 5_000,
  ) {}

  async startOrJoin(options: StartRemediationOptions): Promise<{ workflowId: string; runId: string }> {
    const handle = await this.client.withDeadline(Date.now() + this.timeoutMs, () =>
      startOrJoinRemediation(this.client, options),
    );
    return { workflowId: handle.workflowId, runId: handle.signaledRunId };
  }

  async recordResolved(options: {
    clusterId: string;
    node: string;
    alert: AlertSignal;
  }): Promise<{ workflowId: string } | undefined> {
    const workflowId = remediationWorkflowId(options.clusterId, options.node);
    try {
      await this.client.withDeadline(Date.now() + this.timeoutMs, () =>
        this.client.workflow.getHandle(workflowId).signal(alertSignal, options.alert),
      );
      return { workflowId };
    } catch (err) {
      // A closed or never-started workflow: nothing to record the resolution in.
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }
}
