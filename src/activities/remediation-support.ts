import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Admission, FleetBudgetConfig, QuarantineVerdict } from '../domain/fleet-budget.js';
import { podsFitElsewhere, type CapacityCheck } from '../domain/capacity.js';
import { isNodeHealthy } from '../domain/node-health.js';
import { makeApiClient } from '../k8s/api-client.js';
import { isApiError } from '../k8s/api-errors.js';
import { GPU_RESOURCE } from '../k8s/labels.js';
import { mergePatch } from '../k8s/patch.js';
import {
  acquireDrainSlot,
  fleetBudgetState,
  fleetBudgetWorkflow,
  fleetBudgetWorkflowId,
  releaseDrainSlot,
  reportNodeFailure,
} from '../workflows/fleet-budget.js';
import { remediationWorkflowId } from '../workflows/ids.js';

/** Annotation on a node: the fault episodes fleetmedic already handled there, with when. */
export const EPISODES_ANNOTATION = 'fleetmedic.io/handled-episodes';
const MAX_EPISODES = 50;

export interface Episode {
  /** Alert fingerprint + startsAt: one fault episode, however often Alertmanager re-sends it. */
  readonly key: string;
  readonly handledAt: string;
}

export interface RemediationSupportDeps {
  readonly kc: KubeConfig;
  readonly client: Client;
  readonly clusterId: string;
  readonly taskQueue: string;
  /** Limits of the fleet budget when this worker starts it (an existing budget keeps its own). */
  readonly budgetConfig?: Partial<FleetBudgetConfig>;
}

/**
 * Activities the remediation workflow needs beside the Kubernetes steps: durable memory of handled
 * fault episodes (on the node, because Temporal forgets closed workflows), and the fleet budget's
 * updates, called through the client so that the caller learns at once whether it got a slot.
 */
export function createRemediationSupportActivities(deps: RemediationSupportDeps) {
  const core = makeApiClient(deps.kc, CoreV1Api);

  async function readEpisodes(node: string): Promise<Episode[] | undefined> {
    try {
      const n = await core.readNode({ name: node });
      const raw = n.metadata?.annotations?.[EPISODES_ANNOTATION];
      if (!raw) return [];
      const parsed = JSON.parse(raw) as unknown;
      return Array.isArray(parsed) ? (parsed as Episode[]) : [];
    } catch (err) {
      if (isApiError(err, 404)) return undefined;
      if (err instanceof SyntaxError) return []; // a damaged annotation must not block remediation
      throw err;
    }
  }

  async function fleetView(): Promise<{ gpuNodeCount: number; healthyNodes: string[] }> {
    const nodes = (await core.listNode()).items.filter(
      (n) => Number(n.status?.capacity?.[GPU_RESOURCE] ?? 0) > 0,
    );
    return {
      gpuNodeCount: nodes.length,
      healthyNodes: nodes.filter((n) => isNodeHealthy(n).healthy).map((n) => n.metadata?.name ?? ''),
    };
  }

  async function budget() {
    // Start the cluster's budget workflow on first use; an existing one is reused.
    try {
      await deps.client.workflow.start(fleetBudgetWorkflow, {
        workflowId: fleetBudgetWorkflowId(deps.clusterId),
        taskQueue: deps.taskQueue,
        args: [{ clusterId: deps.clusterId, config: deps.budgetConfig }],
        workflowIdConflictPolicy: 'USE_EXISTING',
        staticSummary: `fleet budget of cluster ${deps.clusterId}`,
      });
    } catch (err) {
      if (!(err instanceof Error && err.name === 'WorkflowExecutionAlreadyStartedError')) throw err;
    }
    return deps.client.workflow.getHandle(fleetBudgetWorkflowId(deps.clusterId));
  }

  return {
    /** Whether this fault episode was handled within `cooldownMs` (a re-sent alert for a repaired node). */
    async episodeHandled(input: {
      node: string;
      key: string;
      cooldownMs: number;
    }): Promise<boolean | 'node-gone'> {
      const episodes = await readEpisodes(input.node);
      if (episodes === undefined) return 'node-gone';
      const now = Date.now();
      return episodes.some((e) => e.key === input.key && now - Date.parse(e.handledAt) < input.cooldownMs);
    },

    /** Remembers a handled episode on the node (optimistic update; a conflict retries). */
    async recordEpisode(input: { node: string; key: string }): Promise<void> {
      const node = await core.readNode({ name: input.node }).catch((err: unknown) => {
        if (isApiError(err, 404)) return undefined;
        throw err;
      });
      if (!node) return;
      const raw = node.metadata?.annotations?.[EPISODES_ANNOTATION];
      let episodes: Episode[] = [];
      try {
        episodes = raw ? (JSON.parse(raw) as Episode[]) : [];
      } catch {
        episodes = [];
      }
      episodes = [
        ...episodes.filter((e) => e.key !== input.key),
        { key: input.key, handledAt: new Date().toISOString() },
      ];
      await core.patchNode(
        {
          name: input.node,
          body: {
            metadata: {
              resourceVersion: node.metadata?.resourceVersion,
              annotations: { [EPISODES_ANNOTATION]: JSON.stringify(episodes.slice(-MAX_EPISODES)) },
            },
          },
        },
        mergePatch,
      );
    },

    /** Records a failure with the fleet's circuit breaker; says whether automatic quarantine may go on. */
    async budgetReportFailure(input: { node: string }): Promise<QuarantineVerdict> {
      const handle = await budget();
      return handle.executeUpdate(reportNodeFailure, {
        args: [{ node: input.node, ...(await fleetView()) }],
      });
    },

    /**
     * Asks the fleet budget for a drain slot. Slots held by remediations whose workflow has closed
     * (terminated, timed out) are recovered first, so a slot can never leak.
     */
    async budgetAcquire(input: { node: string; remediationTimestamps: number[] }): Promise<Admission> {
      const handle = await budget();
      const state = await handle.query(fleetBudgetState);
      const staleHolders: string[] = [];
      for (const holder of state.draining) {
        if (holder === input.node) continue;
        try {
          const desc = await deps.client.workflow
            .getHandle(remediationWorkflowId(deps.clusterId, holder))
            .describe();
          if (desc.status.name !== 'RUNNING') staleHolders.push(holder);
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) staleHolders.push(holder);
          else throw err;
        }
      }
      return handle.executeUpdate(acquireDrainSlot, {
        args: [
          {
            node: input.node,
            remediationTimestamps: input.remediationTimestamps,
            staleHolders,
            ...(await fleetView()),
          },
        ],
      });
    },

    async budgetRelease(input: { node: string }): Promise<void> {
      const handle = await budget();
      await handle.executeUpdate(releaseDrainSlot, { args: [{ node: input.node }] });
    },

    /**
     * Whether the pods a drain of `node` would evict fit on the remaining schedulable nodes (requests
     * against allocatable, taints, node selectors, required anti-affinity). A drain that would leave
     * pods Pending waits, or asks an operator, instead of evicting.
     */
    async checkCapacity(input: { node: string }): Promise<Pick<CapacityCheck, 'fits' | 'unplaced'>> {
      const [pods, nodes] = await Promise.all([
        core.listPodForAllNamespaces({
          fieldSelector: 'spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed',
        }),
        core.listNode(),
      ]);
      const check = podsFitElsewhere(pods.items, nodes.items, input.node);
      return { fits: check.fits, unplaced: check.unplaced.slice(0, 20) };
    },

    /**
     * Logs that a remediation needs an operator. Only remediations recorded before the `notify-sinks`
     * patch call it; newer ones use the `notify` activity (activities/observability.ts), which sends to
     * the configured sinks.
     */
    notifyOperator(input: {
      node: string;
      workflowId: string;
      message: string;
      reminder: number;
    }): Promise<void> {
      if (!input.message) throw ApplicationFailure.nonRetryable('empty notification', 'InvalidInput');
      process.stderr.write(
        `${JSON.stringify({ level: 'warn', msg: 'operator needed', node: input.node, workflowId: input.workflowId, detail: input.message, reminder: input.reminder })}\n`,
      );
      return Promise.resolve();
    },
  };
}

export type RemediationSupportActivities = ReturnType<typeof createRemediationSupportActivities>;
