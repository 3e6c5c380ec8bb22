import type { KubeConfig } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import { InvalidArgumentError } from 'commander';
import path from 'node:path';
import type { Config } from '../config/config.js';
import { loadNotifyConfig, type NotifyConfig } from '../notify/config.js';
import { readStackState } from '../stack/state.js';
import { httpSink, Notifier, type NotificationSink } from '../notify/notifier.js';
import { assertLoopbackUrl } from '../k8s/loopback.js';
import { createControlMetrics, type ControlMetrics } from './metrics.js';
import { startMetricsServer, type RunningMetricsServer } from './metrics-server.js';

/** What the control worker needs to be observable: its notifier, its metrics, and their endpoint. */
export interface ControlObservability {
  readonly notifier: Notifier;
  readonly metrics: ControlMetrics;
  /** The metrics endpoint, when a port was given. */
  readonly server?: RunningMetricsServer;
  close(): Promise<void>;
}

export interface ControlObservabilityOptions {
  readonly kc: KubeConfig;
  readonly client: Client;
  readonly clusterId: string;
  readonly namespace?: string;
  /** The sinks; none means notifications are only logged. */
  readonly notify?: NotifyConfig;
  /** Extra sinks (tests, embedders) beside the configured ones. */
  readonly extraSinks?: readonly NotificationSink[];
  /** The Temporal UI's address, for links in notifications. */
  readonly uiUrl?: string;
  /** Serve `/metrics` on this port (0 = any free port); without it no endpoint is started. */
  readonly metricsPort?: number;
  readonly metricsHost?: string;
  readonly defaultMetrics?: boolean;
  /** A simulated cluster: every sink must be a loopback URL (refused at start otherwise). */
  readonly simulated?: boolean;
}

/**
 * Wires the notifier (configured sinks, counted in `fleetmedic_notifications_total`) and the metrics
 * (scrape-time gauges read from `kc` and `client`), and starts the metrics endpoint when asked.
 */
export async function setupControlObservability(
  options: ControlObservabilityOptions,
): Promise<ControlObservability> {
  if (options.simulated) {
    for (const sink of options.notify?.sinks ?? [])
      assertLoopbackUrl(sink.url, `notification sink "${sink.name}"`);
  }
  const metrics = createControlMetrics({
    defaultMetrics: options.defaultMetrics,
    sources: {
      kc: options.kc,
      client: options.client,
      clusterId: options.clusterId,
      namespace: options.namespace,
    },
  });
  const notifier = new Notifier({
    sinks: [...(options.notify?.sinks ?? []).map(httpSink), ...(options.extraSinks ?? [])],
    uiUrl: options.uiUrl,
    namespace: options.namespace,
    onResult: (sink, _kind, result) => metrics.notifications.inc({ sink, result }),
  });
  const server =
    options.metricsPort !== undefined
      ? await startMetricsServer({
          registry: metrics.registry,
          host: options.metricsHost,
          port: options.metricsPort,
        })
      : undefined;
  return {
    notifier,
    metrics,
    ...(server && { server }),
    close: async () => {
      await server?.close();
    },
  };
}

/** The `fleetmedic worker` flags that override the configuration's observability keys. */
export interface WorkerObservabilityFlags {
  readonly metricsPort?: number;
  readonly notifyConfig?: string;
}

/** Parses `--metrics-port` (commander argument parser). */
export function parsePortFlag(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535)
    throw new InvalidArgumentError(
      `--metrics-port must be a port number from 0 to 65535, got ${JSON.stringify(value)}`,
    );
  return Number(value);
}

/**
 * The control worker's observability from the configuration (`FLEETMEDIC_NOTIFY_CONFIG`,
 * `FLEETMEDIC_METRICS_PORT`, `FLEETMEDIC_METRICS_HOST`, `FLEETMEDIC_TEMPORAL_UI_URL`) and the worker's
 * flags; the Temporal UI link defaults to the embedded stack's UI when the worker serves it.
 */
export async function workerObservability(options: {
  readonly config: Config;
  readonly flags: WorkerObservabilityFlags;
  readonly kc: KubeConfig;
  readonly client: Client;
  readonly clusterId: string;
  readonly namespace: string;
  /** True when the targets are the embedded stack's. */
  readonly embedded: boolean;
  /** True when the cluster carries the simulation marker: sinks must be loopback. */
  readonly simulated: boolean;
}): Promise<ControlObservability> {
  const { config, flags } = options;
  const notifyFile =
    flags.notifyConfig !== undefined ? path.resolve(flags.notifyConfig) : config.notifyConfig;
  const notify = notifyFile !== undefined ? await loadNotifyConfig(notifyFile) : undefined;
  const uiUrl =
    config.temporalUiUrl ??
    (options.embedded ? (await readStackState(config.stateDir))?.temporal.uiUrl : undefined);
  return setupControlObservability({
    kc: options.kc,
    client: options.client,
    clusterId: options.clusterId,
    namespace: options.namespace,
    ...(notify && { notify }),
    ...(uiUrl !== undefined && { uiUrl }),
    metricsPort: flags.metricsPort ?? config.metricsPort,
    metricsHost: config.metricsHost,
    simulated: options.simulated,
  });
}
