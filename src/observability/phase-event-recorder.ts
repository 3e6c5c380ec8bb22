import { CoreV1Api, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '@temporalio/common';
import os from 'node:os';
import PQueue from 'p-queue';
import pRetry, { AbortError } from 'p-retry';
import { makeApiClient } from '../k8s/api-client.js';
import { apiErrorStatus } from '../k8s/api-errors.js';
import type { ControlMetrics } from './metrics.js';
import { NODE_EVENT_NAMESPACE, phaseEvent, previousPhaseSeconds, type PhaseChange } from './phase-events.js';

export interface PhaseEventRecorderOptions {
  readonly kc: KubeConfig;
  /** The worker's cluster: a change for another cluster is dropped (and logged). */
  readonly clusterId: string;
  readonly metrics: ControlMetrics;
  readonly logger: Logger;
  /** `reportingInstance` of the Events (default: this host's name). */
  readonly reportingInstance?: string;
  /** Events being written at once (default 4). */
  readonly concurrency?: number;
  /**
   * Events started per second at most (default 20, as kube-controller-manager's API client allows
   * its controllers; the kubelet's event QPS is 50). Events are the lowest-priority writes of a
   * remediation: in an alert storm they must not compete with the cordons for the API server.
   */
  readonly perSecond?: number;
  /** Events waiting beyond those; more are dropped and counted (default 10,000). */
  readonly maxQueued?: number;
  /** Attempts per Event (default 3: after 1 s, then 2 s). */
  readonly attempts?: number;
  /** Wait before the second attempt in ms, doubled for each further one (default 1000). */
  readonly retryAfterMs?: number;
}

export interface PhaseEventRecorder {
  /**
   * Queues the Event of a phase change and observes how long the previous phase lasted. Never
   * throws, never waits: the Event is written in the background.
   */
  record(change: PhaseChange): void;
  /** Resolves once every queued Event is written, refused or given up. */
  idle(): Promise<void>;
}

/**
 * Writes the Kubernetes Event of each remediation phase change, the way client-go's event recorder
 * does for controllers: in the background, a few at a time and at most `perSecond`, a bounded
 * queue (a full one drops and counts), a few retries, and never a wait or a failure for the caller.
 * The remediation workflow hands each change over through a Temporal sink (`PhaseEventSinks`,
 * registered by `createControlWorkers`), so an Event is no step of the workflow: nothing in its
 * history, no local activity and no workflow task per Event. In an alert storm of 150 nodes that
 * was 450 local activities, each holding its remediation's workflow task until the API server
 * answered, on the same worker that cordons the other nodes; now those Events reach the API server
 * at `perSecond` (each keeps the time of its phase change), after the cordons rather than among
 * them: in bench:remediation, writing them at once cost the cordons about 0.5 s at the median.
 *
 * Best effort, as Events are in Kubernetes: an Event the API server refuses (4xx other than 408 and
 * 429) is dropped at once, others after `attempts`; Events still queued when the worker process
 * ends are lost. The Event's name comes from the run and sequence, so writing one twice (a
 * workflow task that ran twice) finds the first (409) and counts it `exists`.
 */
export function createPhaseEventRecorder(options: PhaseEventRecorderOptions): PhaseEventRecorder {
  const core = makeApiClient(options.kc, CoreV1Api);
  const instance = options.reportingInstance ?? os.hostname();
  const maxQueued = options.maxQueued ?? 10_000;
  const attempts = options.attempts ?? 3;
  const { metrics, logger } = options;
  const queue = new PQueue({
    concurrency: options.concurrency ?? 4,
    intervalCap: options.perSecond ?? 20,
    interval: 1000,
  });

  async function write(change: PhaseChange): Promise<'created' | 'exists'> {
    try {
      await core.createNamespacedEvent({
        namespace: NODE_EVENT_NAMESPACE,
        // eventTime is a MicroTime string (six digits), which the generated Date type cannot express.
        body: phaseEvent(change, instance) as unknown as CoreV1Event,
      });
      return 'created';
    } catch (err) {
      const status = apiErrorStatus(err);
      if (status === 409) return 'exists';
      if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
        throw new AbortError(`the API server refused it (${status}): ${(err as Error).message}`);
      }
      throw err;
    }
  }

  return {
    record(change) {
      const what = { node: change.node, phase: change.phase, workflowId: change.workflowId };
      if (change.clusterId !== options.clusterId) {
        metrics.phaseEvents.inc({ result: 'failed' });
        logger.warn('phase event for another cluster dropped', { ...what, cluster: change.clusterId });
        return;
      }
      const seconds = previousPhaseSeconds(change);
      if (seconds !== undefined) metrics.phaseDuration.observe({ phase: change.previousPhase }, seconds);
      if (queue.size >= maxQueued) {
        metrics.phaseEvents.inc({ result: 'dropped' });
        logger.warn('phase event dropped: the queue is full', { ...what, queued: queue.size });
        return;
      }
      void queue
        .add(() =>
          pRetry(() => write(change), {
            retries: attempts - 1,
            minTimeout: options.retryAfterMs ?? 1000,
            factor: 2,
            randomize: false,
          }),
        )
        .then(
          (result) => metrics.phaseEvents.inc({ result }),
          (err: unknown) => {
            metrics.phaseEvents.inc({ result: 'failed' });
            logger.warn('phase event not recorded', {
              ...what,
              error: err instanceof Error ? err.message : String(err),
            });
          },
        );
    },
    idle: () => queue.onIdle(),
  };
}
