import type { V1Node } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import type { Admission } from '../domain/fleet-budget.js';
import type { ActivityResults } from '../domain/remediation-machine.js';
import { FailureType } from '../errors.js';
import { episodeVerdict, parseEpisodeRecord } from '../k8s/episodes.js';
import { GPU_RESOURCE } from '../k8s/labels.js';
import { holdOf, parseHold } from '../k8s/node-hold.js';
import { EPISODES_ANNOTATION, HOLD_ANNOTATION } from '../k8s/remediation-labels.js';
import { objectName, text, validateInput } from './input.js';
import type { KubernetesActivities, QuarantineSteps } from './kubernetes/index.js';
import type { RemediationSupportActivities } from './remediation-support/index.js';

export interface QuarantineFailedNodeInput {
  readonly node: string;
  /** The fault episode of the alert (see `checkEpisode` in activities/node-records.ts). */
  readonly episodeKey: string;
  readonly workflowId: string;
  /** The run quarantining, written into the ownership record. */
  readonly runId: string;
  /** Why, in a few words an operator reads, recorded on the node with the cordon. */
  readonly reason: string;
}

/** How the step from an alert to the cordon ended: the remediation machine's `quarantine` result. */
export type QuarantineOutcome = ActivityResults['quarantine'];

const quarantineFailedNodeSchema = z.object({
  node: objectName,
  episodeKey: text(1024),
  workflowId: text(1000),
  runId: text(256),
  reason: text(1024),
});

/** The node's `nvidia.com/gpu` capacity as an integer, or null when it reports none (or nonsense). */
function gpuCountOf(node: V1Node): number | null {
  const raw = node.status?.capacity?.[GPU_RESOURCE];
  return raw !== undefined && /^\d{1,6}$/.test(raw) ? Number(raw) : null;
}

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
     * Reads the node once (refusing a node of another cluster before the breaker hears of it), stops
     * at an episode the node's record says was handled (`duplicate-episode`: nothing reported,
     * nothing changed), reports the failure to the fleet's breaker (`budgetReportFailure`) and, when
     * automation may go on, quarantines the node (as `quarantineNode`: label, NoSchedule taint,
     * cordon, ownership record naming this run), planned from that same read: in a storm of 150 that
     * is 150 reads fewer before the cordons. A node changed since the read fails the patch's
     * resourceVersion precondition and is read again. Each step is idempotent, so a retry after a
     * failure part-way repeats the earlier steps harmlessly: the breaker counts distinct nodes, the
     * quarantine of a node this workflow already quarantined changes nothing.
     *
     * The result carries what the run needs next from the same read: the node's GPU count (triage
     * expects it), an operator's hold left by an earlier run (an unreadable one counts as a hold),
     * and whether the episode record was unreadable (the node is quarantined all the same).
     *
     * @throws non-retryable `InvalidInput` (naming the field), `NodeNotFound`, `WrongCluster`, and the
     *   quarantine's `Forbidden`, `QuarantinedByOther`, `InvalidAnnotation`; the rest is retried.
     */
    async quarantineFailedNode(input: QuarantineFailedNodeInput): Promise<QuarantineOutcome> {
      const { node, episodeKey, workflowId, runId, reason } = validateInput(
        'quarantineFailedNode',
        quarantineFailedNodeSchema,
        input,
      );
      const current = await deps.steps.read(node);
      if (current === undefined) {
        throw ApplicationFailure.nonRetryable(`node ${node} not found`, FailureType.NodeNotFound);
      }
      const annotations = current.metadata?.annotations ?? {};
      const episodes = parseEpisodeRecord(annotations[EPISODES_ANNOTATION]);
      if (episodes.ok && episodeVerdict(episodes.entries, episodeKey) === 'handled') {
        return { kind: 'duplicate-episode' };
      }
      const verdict = await deps.support.budgetReportFailure({ node });
      if (!verdict.allowed) return { kind: 'blocked', verdict };
      const { record } = await deps.steps.quarantine({ node, workflowId, runId, reason }, current);
      return {
        kind: 'quarantined',
        gpuCount: gpuCountOf(current),
        preexistingCordon: record.preexistingCordon,
        ...(verdict.recentFailures !== undefined && { recentFailures: verdict.recentFailures }),
        // Unreadable: the node is contained regardless; the run asks an operator before going on.
        episodes: episodes.ok ? 'new' : 'unreadable',
        hold: holdOf(parseHold(annotations[HOLD_ANNOTATION])),
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
