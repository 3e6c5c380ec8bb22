import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time.js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { makeApiClient } from '../k8s/api-client.js';
import { GPU_RESOURCE } from '../k8s/labels.js';
import { QUARANTINED_LABEL } from '../k8s/remediation-labels.js';
import type { FleetState } from '../domain/fleet-budget.js';
import { fleetBudgetState, fleetBudgetWorkflowId } from '../contracts/fleet-budget.js';
import { nodeTaskQueue } from '../contracts/ids.js';

/**
 * The control worker's Prometheus metrics, in a registry of its own (like the webhook's). Counters and
 * the phase histogram are fed by the activities of this process; the gauges are computed when
 * Prometheus scrapes, from the cluster and from Temporal, so they are right whichever worker ran what.
 */
export interface ControlMetrics {
  readonly registry: Registry;
  /** Seconds each remediation phase lasted, observed when the next phase begins. */
  readonly phaseDuration: Histogram<'phase'>;
  /** Notifications by sink and result (sent, failed, already-sent). */
  readonly notifications: Counter<'sink' | 'result'>;
  /** Node Events recorded (or not) at phase changes. */
  readonly phaseEvents: Counter<'result'>;
  /** Scrape-time reads that failed, by source (nodes, fleet-budget, task-queues). */
  readonly scrapeErrors: Counter<'source'>;
}

/** Where the scrape-time gauges read from; without it they are not registered (unit tests). */
export interface ScrapeSources {
  readonly kc: KubeConfig;
  readonly client: Client;
  readonly clusterId: string;
  readonly namespace?: string;
  /** How long a fleet budget query answer is reused (default 5 s). */
  readonly budgetCacheMs?: number;
  /** How long the agents' poller check is reused (default 30 s): it costs one call per GPU node. */
  readonly agentsCacheMs?: number;
  /** A poller not seen for this long is gone (default 2 min; a live one long-polls about every 60 s). */
  readonly pollerStaleMs?: number;
}

/** Phase histogram buckets: seconds to days (an operator approval can take a weekend). */
const PHASE_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 86_400, 3 * 86_400];

/**
 * Creates the metrics. With `sources`, also the scrape-time gauges:
 * `fleetmedic_nodes_quarantined`, `fleetmedic_fleet_budget_slots_in_use`, `_limit`,
 * `fleetmedic_fleet_breaker_open`, `fleetmedic_automation_paused`, `fleetmedic_unreachable_agents`.
 */
export function createControlMetrics(
  options: { defaultMetrics?: boolean; sources?: ScrapeSources } = {},
): ControlMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const metrics: ControlMetrics = {
    registry,
    phaseDuration: new Histogram({
      name: 'fleetmedic_phase_duration_seconds',
      help: 'How long remediation phases lasted, by phase (observed when the next phase begins)',
      labelNames: ['phase'],
      buckets: PHASE_BUCKETS,
      registers: [registry],
    }),
    notifications: new Counter({
      name: 'fleetmedic_notifications_total',
      help: 'Notifications by sink and result (sent, failed, already-sent on a retry)',
      labelNames: ['sink', 'result'],
      registers: [registry],
    }),
    phaseEvents: new Counter({
      name: 'fleetmedic_phase_events_total',
      help: 'Kubernetes Events recorded on nodes at phase changes, by result (created, exists, failed)',
      labelNames: ['result'],
      registers: [registry],
    }),
    scrapeErrors: new Counter({
      name: 'fleetmedic_metrics_scrape_errors_total',
      help: 'Scrape-time reads that failed (the gauges of that source are left out of the scrape), by source',
      labelNames: ['source'],
      registers: [registry],
    }),
  };
  if (options.sources) registerScrapeGauges(metrics, options.sources);
  return metrics;
}

/** A value computed at most once per `ttlMs`; concurrent scrapes share one computation. */
function cached<T>(ttlMs: number, compute: () => Promise<T>): () => Promise<T> {
  let at = 0;
  let value: Promise<T> | undefined;
  return () => {
    if (value === undefined || Date.now() - at >= ttlMs) {
      at = Date.now();
      value = compute();
      value.catch(() => {
        value = undefined; // a failure is not cached
      });
    }
    return value;
  };
}

function registerScrapeGauges(metrics: ControlMetrics, sources: ScrapeSources): void {
  const { registry, scrapeErrors } = metrics;
  const core = makeApiClient(sources.kc, CoreV1Api, 10_000);
  const namespace = sources.namespace ?? 'default';

  const budget = cached<FleetState | null>(sources.budgetCacheMs ?? 5_000, async () => {
    try {
      return await sources.client.workflow
        .getHandle(fleetBudgetWorkflowId(sources.clusterId))
        .query(fleetBudgetState);
    } catch (err) {
      // No budget workflow yet (no remediation has run): nothing is in use, nothing is open.
      if (err instanceof Error && err.name === 'WorkflowNotFoundError') return null;
      throw err;
    }
  });

  /** A collect function that sets the gauge from the budget state, or leaves it out when the query failed. */
  const fromBudget = (value: (s: FleetState | null) => number | undefined) =>
    async function collect(this: Gauge) {
      this.reset();
      try {
        const v = value(await budget());
        if (v !== undefined) this.set(v);
      } catch {
        scrapeErrors.inc({ source: 'fleet-budget' });
      }
    };

  new Gauge({
    name: 'fleetmedic_fleet_budget_slots_in_use',
    help: 'Drain slots of the fleet budget held now',
    registers: [registry],
    collect: fromBudget((s) => s?.draining.length ?? 0),
  });
  new Gauge({
    name: 'fleetmedic_fleet_budget_slots_limit',
    help: 'Drain slots of the fleet budget (maxConcurrentDrains); absent until the budget workflow runs',
    registers: [registry],
    collect: fromBudget((s) => s?.config.maxConcurrentDrains),
  });
  new Gauge({
    name: 'fleetmedic_fleet_breaker_open',
    help: '1 while the fleet circuit breaker is open (automatic quarantine stopped until an operator resets it)',
    registers: [registry],
    collect: fromBudget((s) => (s?.breaker.state === 'open' ? 1 : 0)),
  });
  new Gauge({
    name: 'fleetmedic_automation_paused',
    help: '1 while an operator has paused automatic remediation',
    registers: [registry],
    collect: fromBudget((s) => (s?.paused ? 1 : 0)),
  });

  new Gauge({
    name: 'fleetmedic_nodes_quarantined',
    help: `Nodes carrying fleetmedic's quarantine label (${QUARANTINED_LABEL}=true), read at scrape time`,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        const nodes = await core.listNode({ labelSelector: `${QUARANTINED_LABEL}=true` });
        this.set(nodes.items.length);
      } catch {
        scrapeErrors.inc({ source: 'nodes' });
      }
    },
  });

  const staleMs = sources.pollerStaleMs ?? 120_000;
  const unreachableNodes = cached<string[]>(sources.agentsCacheMs ?? 30_000, async () => {
    const gpuNodes = (await core.listNode()).items
      .filter((n) => Number(n.status?.capacity?.[GPU_RESOURCE] ?? 0) > 0)
      .map((n) => n.metadata?.name ?? '')
      .filter((n) => n !== '');
    const now = Date.now();
    const unreachable: string[] = [];
    // Bounded concurrency: one DescribeTaskQueue per GPU node.
    for (let i = 0; i < gpuNodes.length; i += 16) {
      await Promise.all(
        gpuNodes.slice(i, i + 16).map(async (node) => {
          const answer = await sources.client.workflowService.describeTaskQueue({
            namespace,
            taskQueue: { name: nodeTaskQueue(sources.clusterId, node) },
            taskQueueType: 2, // TASK_QUEUE_TYPE_ACTIVITY: node agents serve activities only
          });
          const live = (answer.pollers ?? []).some((p) => {
            const seen = optionalTsToMs(p.lastAccessTime);
            return seen !== undefined && now - seen < staleMs;
          });
          if (!live) unreachable.push(node);
        }),
      );
    }
    return unreachable.sort();
  });
  new Gauge({
    name: 'fleetmedic_unreachable_agents',
    help: 'GPU nodes whose node agent task queue has had no poller recently (DescribeTaskQueue)',
    registers: [registry],
    async collect() {
      this.reset();
      try {
        this.set((await unreachableNodes()).length);
      } catch {
        scrapeErrors.inc({ source: 'task-queues' });
      }
    },
  });
}
