import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { CoreV1Api, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import os from 'node:os';
import { FailureType } from '../errors.js';
import { makeApiClient } from '../k8s/api-client.js';
import { apiErrorStatus } from '../k8s/api-errors.js';
import type { NotificationInput } from '../notify/message.js';
import type { Notifier } from '../notify/notifier.js';
import type { ControlMetrics } from '../observability/metrics.js';
import {
  NODE_EVENT_NAMESPACE,
  phaseEvent,
  previousPhaseSeconds,
  type PhaseChange,
} from '../observability/phase-events.js';

export type { NotificationInput } from '../notify/message.js';
export type { PhaseChange } from '../observability/phase-events.js';

export interface ObservabilityDeps {
  readonly kc: KubeConfig;
  readonly clusterId: string;
  readonly notifier: Notifier;
  readonly metrics: ControlMetrics;
  /** `reportingInstance` of the Events (default: this host's name). */
  readonly reportingInstance?: string;
}

/**
 * What the remediation workflow uses to be seen outside Temporal: a Kubernetes Event on the Node at
 * each phase change (which also feeds the phase-duration histogram), and notifications to the
 * configured sinks. The workflow never lets either block or fail a remediation: it starts the Event
 * without waiting and gives notifications a bounded retry policy, then records the failure.
 */
export function createObservabilityActivities(deps: ObservabilityDeps) {
  const core = makeApiClient(deps.kc, CoreV1Api);
  const instance = deps.reportingInstance ?? os.hostname();

  function assertCluster(activity: string, clusterId: string): void {
    if (clusterId !== deps.clusterId) {
      throw ApplicationFailure.nonRetryable(
        `${activity}: asked for cluster ${clusterId}, this worker serves ${deps.clusterId}`,
        FailureType.WrongCluster,
      );
    }
  }

  return {
    /**
     * Records a phase change as an Event about the Node (idempotent: the name is
     * derived from the run and sequence, a retry finds its own Event) and observes how long the
     * previous phase lasted (once, on the first attempt).
     */
    async recordPhaseEvent(change: PhaseChange): Promise<'created' | 'exists'> {
      assertCluster('recordPhaseEvent', change.clusterId);
      if (Context.current().info.attempt === 1) {
        const seconds = previousPhaseSeconds(change);
        if (seconds !== undefined)
          deps.metrics.phaseDuration.observe({ phase: change.previousPhase }, seconds);
      }
      try {
        await core.createNamespacedEvent({
          namespace: NODE_EVENT_NAMESPACE,
          // eventTime is a MicroTime string (six digits), which the generated Date type cannot express.
          body: phaseEvent(change, instance) as unknown as CoreV1Event,
        });
        deps.metrics.phaseEvents.inc({ result: 'created' });
        return 'created';
      } catch (err) {
        const status = apiErrorStatus(err);
        if (status === 409) {
          deps.metrics.phaseEvents.inc({ result: 'exists' });
          return 'exists';
        }
        deps.metrics.phaseEvents.inc({ result: 'failed' });
        if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
          throw ApplicationFailure.create({
            message: `the API server refused the Event for node ${change.node} (${status}): ${(err as Error).message}`,
            type: FailureType.EventRefused,
            nonRetryable: true,
            cause: err as Error,
          });
        }
        throw err;
      }
    },

    /**
     * Sends a notification to every configured sink that wants its kind. Throws when a sink failed
     * (retryable unless every failure is permanent); a retry only tries the sinks that failed.
     */
    async notify(input: NotificationInput): Promise<{ delivered: string[] }> {
      assertCluster('notify', input.cluster);
      const result = await deps.notifier.send(input);
      if (result.failed.length === 0) return { delivered: [...result.delivered] };
      const detail = result.failed.map((f) => f.message).join('; ');
      throw ApplicationFailure.create({
        message: `notification ${input.kind} for ${input.node} not delivered: ${detail}`,
        type: FailureType.NotificationFailed,
        nonRetryable: result.failed.every((f) => f.permanent),
        details: [{ delivered: result.delivered, failed: result.failed.map((f) => f.sink) }],
      });
    },
  };
}

export type ObservabilityActivities = ReturnType<typeof createObservabilityActivities>;
