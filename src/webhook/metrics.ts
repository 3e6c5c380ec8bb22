import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

/**
 * The webhook's Prometheus metrics, in a registry of its own (so several servers in one process, as
 * in tests, do not collide). Every alert lands in exactly one `result` of
 * `fleetmedic_webhook_alerts_total`, so "no alert is lost silently" can be checked from a dashboard.
 */
export interface WebhookMetrics {
  readonly registry: Registry;
  /**
   * Alerts by result: started, joined, resolved_recorded, shadow, ignored, rejected, failed, and
   * truncated (left out of a notification by Alertmanager's `max_alerts`).
   */
  readonly alerts: Counter<'result' | 'format'>;
  /** Alerts ignored, by reason code (no-rule, opted-out, not-selected, ...). */
  readonly ignored: Counter<'code'>;
  /** Signal-with-starts Temporal acknowledged, by action: started (a run this webhook had not seen) or joined. */
  readonly workflows: Counter<'action'>;
  /** Firing alerts answered from Temporal's acknowledgement of an identical alert moments before. */
  readonly deduplicated: Counter;
  /** Request latency by route and status code. */
  readonly latency: Histogram<'route' | 'status'>;
  /** Failed Temporal calls (each makes the request answer 503). */
  readonly temporalErrors: Counter<'operation'>;
  /** Failed node reads (each makes the request answer 503). */
  readonly nodeLookupErrors: Counter;
  /** Requests refused by authentication, by reason (a missing or wrong credential, a scope, too many failures). */
  readonly authFailures: Counter<'reason'>;
}

/** Creates the metrics; `defaultMetrics` adds the process metrics (memory, CPU, event loop lag). */
export function createWebhookMetrics(options: { defaultMetrics?: boolean } = {}): WebhookMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return {
    registry,
    alerts: new Counter({
      name: 'fleetmedic_webhook_alerts_total',
      help: 'Alerts received, by result',
      labelNames: ['result', 'format'],
      registers: [registry],
    }),
    ignored: new Counter({
      name: 'fleetmedic_webhook_alerts_ignored_total',
      help: 'Alerts that started nothing, by reason code',
      labelNames: ['code'],
      registers: [registry],
    }),
    workflows: new Counter({
      name: 'fleetmedic_webhook_workflows_total',
      help: 'Remediation workflows signalled, by action (started or joined)',
      labelNames: ['action'],
      registers: [registry],
    }),
    deduplicated: new Counter({
      name: 'fleetmedic_webhook_alerts_deduplicated_total',
      help: 'Firing alerts identical to one Temporal acknowledged within the dedupe window (not signalled again)',
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'fleetmedic_webhook_request_duration_seconds',
      help: 'Webhook request latency, from arrival to answer (after Temporal acknowledged)',
      labelNames: ['route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    temporalErrors: new Counter({
      name: 'fleetmedic_webhook_temporal_errors_total',
      help: 'Temporal calls that failed (the request was answered 503)',
      labelNames: ['operation'],
      registers: [registry],
    }),
    nodeLookupErrors: new Counter({
      name: 'fleetmedic_webhook_node_lookup_errors_total',
      help: 'Kubernetes node reads that failed (the request was answered 503)',
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'fleetmedic_webhook_auth_failures_total',
      help: 'Requests refused by authentication, by reason (missing, wrong-token, bad-signature, replayed, scope, too-many-failures, ...)',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
}
