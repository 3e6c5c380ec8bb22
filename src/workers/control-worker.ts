import type { KubeConfig } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import { Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createKubernetesActivities } from '../activities/kubernetes.js';
import { createObservabilityActivities } from '../activities/observability.js';
import { createRemediationSupportActivities } from '../activities/remediation-support.js';
import {
  DEFAULT_FLEET_BUDGET,
  validateFleetBudgetConfig,
  type FleetBudgetConfig,
} from '../domain/fleet-budget.js';
import { ConfigError } from '../errors.js';
import { Notifier } from '../notify/notifier.js';
import { createControlMetrics, type ControlMetrics } from '../observability/metrics.js';

export interface ControlWorkerOptions {
  readonly connection: NativeConnection;
  readonly client: Client;
  readonly kc: KubeConfig;
  readonly clusterId: string;
  readonly taskQueue: string;
  readonly namespace?: string;
  /** A prebuilt bundle (tests build it once per file); without it the worker bundles src/workflows. */
  readonly workflowBundle?: WorkerOptions['workflowBundle'];
  /** Fleet budget limits used when this worker starts the cluster's budget workflow. */
  readonly budgetConfig?: Partial<FleetBudgetConfig>;
  /**
   * Notification sinks and metrics (see `setupControlObservability`); without them notifications are
   * only logged and the metrics go to a registry nobody serves.
   */
  readonly observability?: { readonly notifier: Notifier; readonly metrics: ControlMetrics };
  /** Extra activities (checkpointing, drills) registered beside the cluster ones. */
  readonly extraActivities?: Record<string, (...args: never[]) => Promise<unknown>>;
}

/** Path of the workflows entry for the bundler, whether running from src (tsx) or dist (compiled). */
export function workflowsPath(): string {
  const here = fileURLToPath(import.meta.url);
  return path.join(path.dirname(here), '..', 'workflows', `index${path.extname(here)}`);
}

/**
 * The control worker: every workflow plus the cluster activities (Kubernetes API, fleet budget,
 * episode memory, node Events and notifications) on the `fleetmedic` task queue. Node-local steps run on the node agents' own queues.
 */
export async function createControlWorker(options: ControlWorkerOptions): Promise<Worker> {
  // A budget the budget workflow would refuse must stop the worker now: started with it, the budget
  // workflow fails at once and every remediation's budget call would retry against a closed workflow.
  const invalidBudget = validateFleetBudgetConfig({ ...DEFAULT_FLEET_BUDGET, ...options.budgetConfig });
  if (invalidBudget) throw new ConfigError(`invalid fleet budget for the control worker: ${invalidBudget}`);
  const activities = {
    ...createKubernetesActivities({ kc: options.kc, clusterId: options.clusterId }),
    ...createRemediationSupportActivities({
      kc: options.kc,
      client: options.client,
      clusterId: options.clusterId,
      taskQueue: options.taskQueue,
      budgetConfig: options.budgetConfig,
    }),
    ...createObservabilityActivities({
      kc: options.kc,
      clusterId: options.clusterId,
      notifier: options.observability?.notifier ?? new Notifier({ sinks: [] }),
      metrics: options.observability?.metrics ?? createControlMetrics({ defaultMetrics: false }),
    }),
    ...options.extraActivities,
  };
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue: options.taskQueue,
    activities,
    ...(options.workflowBundle
      ? { workflowBundle: options.workflowBundle }
      : { workflowsPath: workflowsPath() }),
  });
}
