import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The gateway's Prometheus metrics, in a registry of its own (several gateways in one test process). */
export interface GatewayMetrics {
  readonly registry: Registry;
  /** Client requests by route, status and who answered (replica, fallback, shed, gateway). */
  readonly requests: Counter<'route' | 'status' | 'source'>;
  /** Attempts against replicas by replica and outcome kind. */
  readonly attempts: Counter<'replica' | 'outcome'>;
  /** Retries on another replica, by reason (connection, timeout-ttfb, status-500, not-ready, ...). */
  readonly retries: Counter<'reason'>;
  /** Retries refused because the retry budget was spent. */
  readonly budgetExhausted: Counter;
  /** Replicas taken out of routing, by reason (connection, health, not-ready). */
  readonly ejections: Counter<'replica' | 'reason'>;
  /** Breaker transitions, by the state entered. */
  readonly breakerTransitions: Counter<'replica' | 'state'>;
  /** Current breaker state: 0 closed, 1 open, 2 half-open, 3 isolated. */
  readonly breakerState: Gauge<'replica'>;
  /** 1 when a replica is routable as far as health checks and ejections go. */
  readonly replicaReady: Gauge<'replica'>;
  readonly fallbacks: Counter<'reason'>;
  readonly shed: Counter;
  /** Streams that broke after the client got part: continued elsewhere, or ended with an error event. */
  readonly streamBreaks: Counter<'result'>;
  readonly inFlight: Gauge;
  readonly latency: Histogram<'route'>;
  /** Time to the first body byte (a stream's first token) given to the client. */
  readonly ttfb: Histogram<'route' | 'stream'>;
}

const BREAKER_VALUES = { closed: 0, open: 1, 'half-open': 2, isolated: 3 } as const;

/** The numeric value of a breaker state in `fleetmedic_gateway_breaker_state`. */
export function breakerStateValue(state: keyof typeof BREAKER_VALUES): number {
  return BREAKER_VALUES[state];
}

/** Creates the metrics; `defaultMetrics` adds the process metrics (CPU, memory, event loop lag). */
export function createGatewayMetrics(options: { defaultMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
  return {
    registry,
    requests: new Counter({
      name: 'fleetmedic_gateway_requests_total',
      help: 'Client requests, by route, status and source of the answer (replica, fallback, shed, gateway)',
      labelNames: ['route', 'status', 'source'],
      registers,
    }),
    attempts: new Counter({
      name: 'fleetmedic_gateway_attempts_total',
      help: 'Attempts against replicas, by replica and outcome',
      labelNames: ['replica', 'outcome'],
      registers,
    }),
    retries: new Counter({
      name: 'fleetmedic_gateway_retries_total',
      help: 'Retries on another replica, by reason',
      labelNames: ['reason'],
      registers,
    }),
    budgetExhausted: new Counter({
      name: 'fleetmedic_gateway_retry_budget_exhausted_total',
      help: 'Retries not made because the retry budget was spent',
      registers,
    }),
    ejections: new Counter({
      name: 'fleetmedic_gateway_ejections_total',
      help: 'Replicas taken out of routing, by reason',
      labelNames: ['replica', 'reason'],
      registers,
    }),
    breakerTransitions: new Counter({
      name: 'fleetmedic_gateway_breaker_transitions_total',
      help: 'Circuit breaker state changes, by the state entered',
      labelNames: ['replica', 'state'],
      registers,
    }),
    breakerState: new Gauge({
      name: 'fleetmedic_gateway_breaker_state',
      help: 'Circuit breaker state per replica: 0 closed, 1 open, 2 half-open, 3 isolated',
      labelNames: ['replica'],
      registers,
    }),
    replicaReady: new Gauge({
      name: 'fleetmedic_gateway_replica_ready',
      help: '1 when health checks pass and the replica is not ejected',
      labelNames: ['replica'],
      registers,
    }),
    fallbacks: new Counter({
      name: 'fleetmedic_gateway_fallbacks_total',
      help: 'Requests answered by the fallback model service, by reason (no-replica, oom)',
      labelNames: ['reason'],
      registers,
    }),
    shed: new Counter({
      name: 'fleetmedic_gateway_shed_total',
      help: 'Requests refused with 429 at the concurrency limit',
      registers,
    }),
    streamBreaks: new Counter({
      name: 'fleetmedic_gateway_stream_breaks_total',
      help: 'Streams broken mid-way, by result (continued, error-event)',
      labelNames: ['result'],
      registers,
    }),
    inFlight: new Gauge({
      name: 'fleetmedic_gateway_in_flight',
      help: 'Client requests in flight',
      registers,
    }),
    latency: new Histogram({
      name: 'fleetmedic_gateway_request_duration_seconds',
      help: 'Client request duration, arrival to last byte',
      labelNames: ['route'],
      buckets,
      registers,
    }),
    ttfb: new Histogram({
      name: 'fleetmedic_gateway_time_to_first_byte_seconds',
      help: 'Arrival to the first body byte sent to the client (a stream: its first token)',
      labelNames: ['route', 'stream'],
      buckets,
      registers,
    }),
  };
}
