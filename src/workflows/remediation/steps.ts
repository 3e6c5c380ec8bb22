/**
 * The remediation's steps as Temporal activities: how each command of the machine is carried out
 * (which worker, which timeouts and retries) and how its result or failure becomes the event the
 * machine is fed. Decisions are the machine's; this file only runs them.
 */
import {
  ActivityFailure as TemporalActivityFailure,
  ApplicationFailure,
  TimeoutFailure,
  proxyActivities,
  proxyLocalActivities,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { KubernetesActivities } from '../../activities/kubernetes/index.js';
import type { NodeAgentActivities } from '../../activities/node-agent.js';
import type { NodeRecordActivities } from '../../activities/node-records.js';
import type { ObservabilityActivities } from '../../activities/observability.js';
import type { QuarantineActivities } from '../../activities/quarantine.js';
import type { RemediationSupportActivities } from '../../activities/remediation-support/index.js';
import { nodeTaskQueue } from '../../contracts/ids.js';
import { FailureType } from '../../errors.js';
import type {
  ActivityCommand,
  ActivityFailure,
  ActivityOutcome,
  Command,
  RemediationState,
} from '../../domain/remediation-machine.js';

/** Who the steps act for: the run's cluster, node and identity. */
export interface StepContext {
  readonly clusterId: string;
  readonly node: string;
  readonly workflowId: string;
  readonly runId: string;
  readonly policy: RemediationState['policy'];
}

/** The effects the machine awaits without a result: they retry until done. */
export type EffectCommand = Extract<
  Command,
  { type: 'releaseSlot' | 'recordRemediation' | 'recordEpisodes' | 'holdNode' | 'clearHold' }
>;

/**
 * Reboots verified by the node's boot ID (read before, a new one awaited after). Without it (histories
 * recorded before) a reboot is the agent's activity alone, followed by validation.
 */
export const REBOOT_BOOT_ID_PATCH = 'reboot-boot-id';

const retryForever = { initialInterval: '1s', maximumInterval: '30s', backoffCoefficient: 2 } as const;

const k8s = proxyActivities<KubernetesActivities>({ startToCloseTimeout: '2 minutes', retry: retryForever });
const support = proxyActivities<RemediationSupportActivities>({
  startToCloseTimeout: '1 minute',
  retry: retryForever,
});
const records = proxyActivities<NodeRecordActivities>({
  startToCloseTimeout: '30 seconds',
  retry: retryForever,
});
/**
 * The single-call writes (release, the remediation count): each is a few API calls, so a worker that
 * dies during one is noticed (and the call retried on another) after 30 s, not minutes.
 */
const writes = proxyActivities<Pick<KubernetesActivities, 'releaseNode' | 'recordRemediation'>>({
  startToCloseTimeout: '30 seconds',
  retry: retryForever,
});

/**
 * The way from the alert to the cordon (episode check, breaker report, quarantine) as one local
 * activity: it runs in the control worker inside the remediation's first workflow task, without a
 * round trip through the Temporal server, so a node that fails in a storm of 150 is cordoned within
 * seconds (see docs/remediation.md, "Benchmark"). Requests for a drain slot and the light path's
 * episode check run the same way. A retry that would wait longer than `localRetryThreshold` becomes a
 * durable timer.
 */
const local = proxyLocalActivities<QuarantineActivities & NodeRecordActivities>({
  startToCloseTimeout: '2 minutes',
  localRetryThreshold: '10 seconds',
  retry: retryForever,
});

function agent(ctx: StepContext) {
  return proxyActivities<NodeAgentActivities>({
    taskQueue: nodeTaskQueue(ctx.clusterId, ctx.node),
    // An agent that never picks the task up is a node we cannot reach: escalate, do not wait forever.
    scheduleToStartTimeout: ctx.policy.agentScheduleToStartMs,
    startToCloseTimeout: ctx.policy.agentStartToCloseMs,
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '1s', maximumInterval: '20s', maximumAttempts: 5 },
  });
}

// Events and notifications must never hold a remediation up: bounded retries, failures recorded.
const observe = proxyActivities<ObservabilityActivities>({
  startToCloseTimeout: '90 seconds',
  scheduleToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1s', maximumInterval: '20s', backoffCoefficient: 2, maximumAttempts: 5 },
});

export { observe };

/** An activity's failure as the machine receives it. */
export function failureOf(err: unknown): ActivityFailure {
  const cause = err instanceof TemporalActivityFailure ? err.cause : err;
  const unreachable =
    err instanceof TemporalActivityFailure &&
    err.cause instanceof TimeoutFailure &&
    err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START;
  const failureType =
    cause instanceof ApplicationFailure
      ? (cause.type ?? undefined)
      : cause instanceof TimeoutFailure
        ? 'Timeout'
        : undefined;
  return {
    failed: true,
    permanent: cause instanceof ApplicationFailure && cause.nonRetryable === true,
    ...(failureType !== undefined && { failureType }),
    message: cause instanceof Error ? cause.message : String(cause),
    ...(unreachable && { unreachable: true }),
  };
}

const nodeGone = (node: string, step: string): ActivityFailure => ({
  failed: true,
  permanent: true,
  failureType: FailureType.NodeNotFound,
  message: `node ${node} does not exist (${step})`,
});

/** Runs an activity command; resolves with the event to feed, never rejects. */
export async function runStep(ctx: StepContext, command: ActivityCommand): Promise<ActivityOutcome> {
  try {
    return await attempt(ctx, command);
  } catch (err) {
    return { type: 'result', activity: command.type, result: failureOf(err) };
  }
}

async function attempt(ctx: StepContext, c: ActivityCommand): Promise<ActivityOutcome> {
  const { clusterId, node, workflowId, runId, policy } = ctx;
  switch (c.type) {
    case 'checkEpisode': {
      const r = await local.checkEpisode.executeWithOptions(
        { summary: `episode ${c.episode} handled before on ${node}?` },
        [{ node, episode: c.episode }],
      );
      return { type: 'result', activity: 'checkEpisode', result: r };
    }
    case 'restartPods': {
      let restarted = 0;
      for (const ns of [...new Set(c.pods.map((p) => p.namespace))]) {
        const r = await k8s.restartPods.executeWithOptions({ summary: `restart pods in ${ns} on ${node}` }, [
          { node, namespace: ns, podNames: c.pods.filter((p) => p.namespace === ns).map((p) => p.name) },
        ]);
        restarted += r.restarted.length;
      }
      return { type: 'result', activity: 'restartPods', result: { restarted } };
    }
    case 'quarantine': {
      const r = await local.quarantineFailedNode.executeWithOptions(
        { summary: `quarantine ${node} unless handled before or refused by the breaker` },
        [{ node, episodeKey: c.episode, workflowId, runId, reason: c.reason }],
      );
      return { type: 'result', activity: 'quarantine', result: r };
    }
    case 'triage': {
      const evidence = await agent(ctx).agentTriage.executeWithOptions(
        { summary: `triage ${node}: dcgmi health, nvidia-smi` },
        [{ clusterId, node, ...(c.expectedGpuCount !== null && { expectedGpuCount: c.expectedGpuCount }) }],
      );
      return { type: 'result', activity: 'triage', result: { evidence } };
    }
    case 'requestSlot': {
      const r = await local.requestDrainSlot.executeWithOptions({ summary: `drain slot for ${node}` }, [
        { node },
      ]);
      return {
        type: 'result',
        activity: 'requestSlot',
        result: r.kind === 'node-gone' ? nodeGone(node, 'drain slot') : { admission: r.admission },
      };
    }
    case 'checkCapacity': {
      const r = await support.checkCapacity.executeWithOptions(
        { summary: `capacity check before draining ${node}` },
        [{ node }],
      );
      const detail = r.unplaced.map((u) => `${u.pod}: ${u.summary}`).join('; ');
      return { type: 'result', activity: 'checkCapacity', result: { fits: r.fits, detail } };
    }
    case 'drain': {
      const r = await k8s.drainNode.executeWithOptions(
        {
          startToCloseTimeout: c.deadlineSeconds * 1000 + 60_000,
          heartbeatTimeout: policy.drainHeartbeatTimeoutMs,
          summary: `drain ${node}`,
          retry: {
            ...retryForever,
            nonRetryableErrorTypes: [FailureType.DrainDeadlineExceeded, FailureType.DrainRefused],
          },
        },
        [
          {
            node,
            workflowId,
            deadlineSeconds: c.deadlineSeconds,
            deleteEmptyDirData: policy.deleteEmptyDirData,
          },
        ],
      );
      return {
        type: 'result',
        activity: 'drain',
        result: r.nodeGone ? nodeGone(node, 'drain') : { evicted: r.evicted, refused429: r.refused429 },
      };
    }
    case 'resetGpu':
      await agent(ctx).agentResetGpu.executeWithOptions({ summary: `reset GPU ${c.gpu} on ${node}` }, [
        { clusterId, node, gpu: c.gpu },
      ]);
      return { type: 'result', activity: 'resetGpu', result: { gpu: c.gpu } };
    case 'readBootId': {
      const r = await k8s.readBootId.executeWithOptions({ summary: `boot ID of ${node} before its reboot` }, [
        { node },
      ]);
      return { type: 'result', activity: 'readBootId', result: { bootId: r.bootId } };
    }
    case 'reboot': {
      const r: { alreadyRebooted?: boolean } = await agent(ctx).agentRebootNode.executeWithOptions(
        { summary: `reboot ${node}` },
        [{ clusterId, node, ...(c.bootIdBefore !== null && { bootIdBefore: c.bootIdBefore }) }],
      );
      // Histories recorded before the patch hold `{ rebooted: true }`.
      return { type: 'result', activity: 'reboot', result: { alreadyRebooted: r.alreadyRebooted === true } };
    }
    case 'awaitBoot': {
      const r = await k8s.awaitNewBoot.executeWithOptions(
        {
          startToCloseTimeout: Math.max(c.deadline - Date.now(), 0) + 120_000,
          heartbeatTimeout: '1 minute',
          summary: `wait for ${node} to come back with a new boot ID`,
          retry: { ...retryForever, nonRetryableErrorTypes: [FailureType.RebootDeadlineExceeded] },
        },
        [{ node, bootIdBefore: c.bootIdBefore, deadline: c.deadline }],
      );
      return { type: 'result', activity: 'awaitBoot', result: { bootId: r.bootId } };
    }
    case 'validate': {
      const diag = await agent(ctx).agentDiag.executeWithOptions(
        {
          startToCloseTimeout: '4 hours',
          heartbeatTimeout: '1 minute',
          scheduleToStartTimeout: policy.agentScheduleToStartMs,
          summary: `validate ${node}: dcgmi diag -r ${c.level}`,
        },
        [{ clusterId, node, level: c.level }],
      );
      return { type: 'result', activity: 'validate', result: { diag } };
    }
    case 'release': {
      const r = await writes.releaseNode.executeWithOptions({ summary: `release ${node}` }, [
        { node, workflowId },
      ]);
      return { type: 'result', activity: 'release', result: { leftCordoned: r.leftCordoned } };
    }
  }
}

/** Runs an effect until it is done (its activity retries); rejects only on a permanent failure. */
export async function runEffect(ctx: StepContext, c: EffectCommand): Promise<void> {
  const { node, workflowId, runId } = ctx;
  switch (c.type) {
    case 'releaseSlot':
      await support.budgetRelease.executeWithOptions({ summary: `return the drain slot of ${node}` }, [
        { node },
      ]);
      return;
    case 'recordRemediation':
      // The workflow's clock: a retry records the same time, which counts once.
      await writes.recordRemediation.executeWithOptions({ summary: `count the remediation of ${node}` }, [
        { node, at: new Date().toISOString() },
      ]);
      return;
    case 'recordEpisodes':
      await records.recordEpisodes.executeWithOptions({ summary: `record handled episodes on ${node}` }, [
        { node, episodes: [...c.episodes] },
      ]);
      return;
    case 'holdNode':
      await records.holdNode.executeWithOptions({ summary: `mark ${node} held by ${c.by}` }, [
        { node, workflowId, runId, by: c.by, reason: c.reason },
      ]);
      return;
    case 'clearHold':
      await records.clearHold.executeWithOptions({ summary: `clear the hold on ${node}` }, [{ node }]);
      return;
  }
}
