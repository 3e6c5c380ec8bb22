/**
 * The node activities: quarantine and release, the reads of nodes and their pods that the fleet
 * budget and the capacity check need, and the node's remediation history.
 */
import type { AppsV1Api, V1DaemonSet } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { FailureType } from '../../errors.js';
import { gpuDaemonSetBlockers, type GpuDaemonSetSelector } from '../../k8s/gpu-daemonsets.js';
import { holdOf, parseHold } from '../../k8s/node-hold.js';
import {
  appendRemediation,
  parseRemediations,
  planRelease,
  releaseBlockers,
  remediationsPatch,
} from '../../k8s/node-ownership.js';
import { HOLD_ANNOTATION, REMEDIATIONS_ANNOTATION } from '../../k8s/remediation-labels.js';
import {
  nodeSummary,
  nodeView,
  podView,
  type MissingNodeView,
  type NodeSummary,
  type NodeView,
  type PodView,
} from '../../k8s/views.js';
import { nonEmptyStrings, objectName, text, validateInput } from '../input.js';
import type { NodeAccess, QuarantineNodeInput, QuarantineNodeResult } from './node-access.js';
import { LIST_PAGE, type PodEviction } from './pods.js';

export interface ReleaseNodeInput {
  node: string;
  workflowId: string;
}

export interface ReleaseNodeResult {
  node: string;
  /** True when this call removed the quarantine; false when it was already gone (a retry). */
  released: boolean;
  /** True when this call uncordoned the node. */
  uncordoned: boolean;
  /** True when the node stays cordoned because someone else had cordoned it before fleetmedic. */
  leftCordoned: boolean;
}

export interface RecordRemediationInput {
  node: string;
  /** ISO time of the remediation; recording the same time twice counts once. */
  at: string;
}

export interface RecordRemediationResult {
  node: string;
  /** The history on the node after the call, oldest first (at most 20). */
  remediations: string[];
}

const releaseNodeSchema = z.object({ node: objectName, workflowId: text(1000) });

const nodeSchema = z.object({ node: objectName });

const listGpuNodesSchema = z.object({ labelKeys: nonEmptyStrings.optional() });

const recordRemediationSchema = z.object({
  node: objectName,
  at: text(64).refine((at) => !Number.isNaN(Date.parse(at)), 'must be an ISO-8601 time'),
});

/**
 * The node activities on the cluster of `access`. `gpuSelectors`: the GPU DaemonSets that must run on
 * a node before `releaseNode` returns it to service.
 */
export function createNodeActivities(
  access: NodeAccess,
  pods: PodEviction,
  apps: AppsV1Api,
  gpuSelectors: readonly GpuDaemonSetSelector[],
) {
  const { core, readNode, requireNode, patchNode } = access;
  // Annotated, so that control flow knows a call never returns.
  const fail: (err: unknown, doing: string) => never = access.fail;
  const { listPodsOnNode } = pods;

  /** Every DaemonSet of the cluster: their pod templates say which must run on a node. */
  async function listDaemonSets(): Promise<V1DaemonSet[]> {
    const all: V1DaemonSet[] = [];
    let cont: string | undefined;
    try {
      do {
        const page = await apps.listDaemonSetForAllNamespaces({ limit: LIST_PAGE, _continue: cont });
        all.push(...page.items);
        cont = page.metadata?._continue || undefined;
      } while (cont);
    } catch (err) {
      fail(err, 'listing DaemonSets');
    }
    return all;
  }

  return {
    /**
     * Takes a node out of service: the `fleetmedic.io/quarantined` label, a `fleetmedic.io/quarantine`
     * NoSchedule taint, a cordon and the ownership record, in one optimistic update. Repeating it for
     * the same workflow changes nothing. A node someone else had cordoned is recorded with
     * `preexistingCordon: true`, so release never uncordons it.
     *
     * @throws non-retryable `NodeNotFound`, `Forbidden`, `QuarantinedByOther`, `InvalidAnnotation`,
     *   `WrongCluster`, `InvalidInput`; 409 (the node changed meanwhile) is retried at once, then by
     *   Temporal.
     */
    quarantineNode: (input: QuarantineNodeInput): Promise<QuarantineNodeResult> => access.quarantine(input),

    /**
     * Returns a node to service, if this workflow owns its quarantine and the node can serve: the node
     * Ready, allocatable `nvidia.com/gpu` equal to capacity, every DaemonSet pod on it Running and
     * Ready, and a Running and Ready pod there of every GPU DaemonSet (the worker's
     * `gpuDaemonSetSelectors`) that would run on it once the quarantine taint is gone. Then removes
     * the taint, label and record, and uncordons only when fleetmedic did the cordoning. A retry
     * after success is a no-op.
     *
     * @throws retryable `NodeNotReadyForRelease` naming what is missing; non-retryable `NodeHeld`
     *   (an operator's hold is on the node, readable or not), `NotOwner`, `NodeNotFound`, `Forbidden`,
     *   `InvalidAnnotation`, `WrongCluster`, `InvalidInput`.
     */
    releaseNode: async (input: ReleaseNodeInput): Promise<ReleaseNodeResult> => {
      const { node: name, workflowId } = validateInput('releaseNode', releaseNodeSchema, input);
      const node = await requireNode(name);
      const hold = holdOf(parseHold(node.metadata?.annotations?.[HOLD_ANNOTATION]));
      if (hold !== null) {
        throw ApplicationFailure.nonRetryable(
          `node ${name} is held by ${hold.by} (${hold.reason}): not releasing it for ${workflowId}; ` +
            `an operator clears the hold (fleetmedic release ${name}, or mark-repaired)`,
          FailureType.NodeHeld,
        );
      }
      const plan = planRelease(node, workflowId);
      if (plan.action === 'refuse') throw ApplicationFailure.nonRetryable(plan.message, plan.reason);
      if (plan.action === 'noop') {
        return {
          node: name,
          released: false,
          uncordoned: false,
          leftCordoned: node.spec?.unschedulable === true,
        };
      }
      const [pods, daemonSets] = await Promise.all([listPodsOnNode(name), listDaemonSets()]);
      const blockers = [
        ...releaseBlockers(node, pods),
        ...gpuDaemonSetBlockers(node, gpuSelectors, daemonSets, pods),
      ];
      if (blockers.length > 0) {
        throw ApplicationFailure.retryable(
          `node ${name} is not ready to return to service: ${blockers.join('; ')}`,
          FailureType.NodeNotReadyForRelease,
          { node: name, blockers },
        );
      }
      await patchNode(name, plan.patch);
      return { node: name, released: true, uncordoned: plan.uncordon, leftCordoned: !plan.uncordon };
    },

    /** A compact view of one node, or `{ exists: false }`. */
    getNode: async (input: { node: string }): Promise<NodeView | MissingNodeView> => {
      const { node: name } = validateInput('getNode', nodeSchema, input);
      const node = await readNode(name);
      return node ? nodeView(node) : { name, exists: false };
    },

    /**
     * Summaries of every node with `nvidia.com/gpu` capacity (for the fleet budget's healthy fraction
     * and the capacity check). `labelKeys` adds labels beyond the default subset.
     */
    listGpuNodes: async (input: { labelKeys?: string[] } = {}): Promise<NodeSummary[]> => {
      const labelKeys = validateInput('listGpuNodes', listGpuNodesSchema, input ?? {}).labelKeys ?? [];
      const out: NodeSummary[] = [];
      let cont: string | undefined;
      try {
        do {
          const page = await core.listNode({ limit: LIST_PAGE, _continue: cont });
          for (const node of page.items) {
            const summary = nodeSummary(node, labelKeys);
            if (summary.gpuCapacity > 0) out.push(summary);
          }
          cont = page.metadata?._continue || undefined;
        } while (cont);
      } catch (err) {
        fail(err, 'listing nodes');
      }
      return out;
    },

    /**
     * Appends a remediation time to the node's `fleetmedic.io/remediations` history (the newest 20
     * are kept) in an optimistic update, and returns the history. Recording the same `at` twice counts
     * once, so a retry does not inflate the count the replace-hardware guard reads.
     *
     * @throws non-retryable `InvalidAnnotation` when the history on the node is unreadable (it is not
     *   reset silently: the count guards a hardware decision).
     */
    recordRemediation: async (input: RecordRemediationInput): Promise<RecordRemediationResult> => {
      const { node: name, at } = validateInput('recordRemediation', recordRemediationSchema, input);
      const node = await requireNode(name);
      const parsed = parseRemediations(node.metadata?.annotations?.[REMEDIATIONS_ANNOTATION]);
      if (!parsed.ok) {
        throw ApplicationFailure.nonRetryable(
          `node ${name}: annotation ${REMEDIATIONS_ANNOTATION} is unreadable (${parsed.error}); fix it by hand`,
          FailureType.InvalidAnnotation,
        );
      }
      const history = appendRemediation(parsed.at, at);
      const unchanged = history.length === parsed.at.length && history.every((h, k) => h === parsed.at[k]);
      if (!unchanged) await patchNode(name, remediationsPatch(node, history));
      return { node: name, remediations: history };
    },

    /** Compact views of the pods on a node (for the capacity check before a drain). */
    podsOnNode: async (input: { node: string }): Promise<PodView[]> => {
      const { node: name } = validateInput('podsOnNode', nodeSchema, input);
      await requireNode(name);
      return (await listPodsOnNode(name)).map(podView);
    },
  };
}
