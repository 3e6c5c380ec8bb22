import { ApplicationFailure } from '@temporalio/common';
import type { Admission, QuarantineVerdict } from '../domain/fleet-budget.js';
import type { KubernetesActivities, QuarantineNodeResult, QuarantineSteps } from './kubernetes.js';
import { episodeHandledOn, type RemediationSupportActivities } from './remediation-support.js';

export interface QuarantineFailedNodeInput {
  readonly node: string;
  /** The fault episode of the alert (fingerprint + startsAt), see `episodeHandled`. */
  readonly episodeKey: string;
  readonly cooldownMs: number;
  readonly workflowId: string;
  /** Why, in a few words an operator reads, recorded on the node with the cordon. */
  readonly reason: string;
}

/** How the step from an alert to the cordon ended. */
export type QuarantineOutcome =
  | { readonly kind: 'node-gone' }
  | { readonly kind: 'duplicate-episode' }
  | { readonly kind: 'blocked'; readonly verdict: QuarantineVerdict }
  | {
      readonly kind: 'quarantined';
      readonly result: QuarantineNodeResult;
      /** The breaker's count of nodes failed within the last minute (see `QuarantineVerdict`). */
      readonly recentFailures?: number;
    };

/** How a request for a drain slot ended. */
export type DrainSlotOutcome =
  { readonly kind: 'node-gone' } | { readonly kind: 'answered'; readonly admission: Admission };

export interface QuarantineDeps {
  readonly support: Pick<RemediationSupportActivities, 'budgetReportFailure' | 'budgetAcquire'>;
  readonly kubernetes: Pick<KubernetesActivities, 'getNode'>;
  /** The node read and quarantine of `quarantineFailedNode` (see `createQuarantineSteps`). */
  readonly steps: Pick<QuarantineSteps, 'read' | 'quarantine'>;
}

/**
 * Steps of the remediation that the workflow runs as local activities, each made of several of the
 * control worker's activities: in an alert storm every hand-over between steps (a result back to the
 * workflow, the next step dispatched, each remote activity a round trip through the server) waits
 * behind the other remediations' work, so one step instead of several cuts that waiting.
 */
export function createQuarantineActivities(deps: QuarantineDeps) {
  return {
    /**
     * Reads the node once, checks that the alert's fault episode was not handled already (as
     * `episodeHandled`) and that the node belongs to this cluster, reports the failure to the fleet's
     * breaker (`budgetReportFailure`) and, when automation may go on, quarantines the node (as
     * `quarantineNode`: label, NoSchedule taint, cordon, ownership record), planned from that same
     * read: one read of the node less per alert, which in a storm of 150 is 150 requests fewer to
     * the API server before the cordons. A node changed since the read fails the patch's
     * resourceVersion precondition and is read again. Each step is idempotent, so a retry after a
     * failure part-way repeats the earlier steps harmlessly: the breaker counts distinct nodes, the
     * quarantine of a node this workflow already quarantined changes nothing.
     *
     * @throws what the steps throw: non-retryable `InvalidInput`, `WrongCluster` (before the breaker
     *   hears of the node), and the quarantine's `NodeNotFound`, `Forbidden`, `QuarantinedByOther`,
     *   ...; the rest is retried.
     */
    async quarantineFailedNode(input: QuarantineFailedNodeInput): Promise<QuarantineOutcome> {
      for (const field of ['node', 'episodeKey', 'workflowId', 'reason'] as const) {
        if (typeof input?.[field] !== 'string' || input[field] === '')
          throw ApplicationFailure.nonRetryable(
            `quarantineFailedNode: ${field} must be a non-empty string, got ${JSON.stringify(input?.[field])}`,
            'InvalidInput',
          );
      }
      const { node, episodeKey, cooldownMs, workflowId, reason } = input;
      const current = await deps.steps.read(node);
      if (current === undefined) return { kind: 'node-gone' };
      if (episodeHandledOn(current, episodeKey, cooldownMs, Date.now())) return { kind: 'duplicate-episode' };
      const verdict = await deps.support.budgetReportFailure({ node });
      if (!verdict.allowed) return { kind: 'blocked', verdict };
      return {
        kind: 'quarantined',
        result: await deps.steps.quarantine({ node, workflowId, reason }, current),
        ...(verdict.recentFailures !== undefined && { recentFailures: verdict.recentFailures }),
      };
    },

    /**
     * Reads the node's remediation history (`getNode`) and asks the fleet budget for a drain slot
     * with it (`budgetAcquire`), as one step: the workflow runs it as a local activity after triage,
     * and again after each refusal, so that 150 remediations waiting for a slot do not each cost two
     * activities and two workflow tasks per try.
     *
     * @throws what the steps throw (non-retryable `InvalidInput`, ...); the rest is retried.
     */
    async requestDrainSlot(input: { node: string }): Promise<DrainSlotOutcome> {
      const view = await deps.kubernetes.getNode({ node: input?.node });
      if (!view.exists) return { kind: 'node-gone' };
      const admission = await deps.support.budgetAcquire({
        node: view.name,
        remediationTimestamps: view.remediations.map((t) => Date.parse(t)),
      });
      return { kind: 'answered', admission };
    },
  };
}

export type QuarantineActivities = ReturnType<typeof createQuarantineActivities>;
