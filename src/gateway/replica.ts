import {
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhenResult,
  type CircuitBreakerPolicy,
} from 'cockatiel';
import { Pool } from 'undici';
import { isBreakerFailure, type AttemptOutcome, type OomRule } from './classify.js';

/** A replica's breaker state as the API and the metrics name it. */
export type BreakerStateName = 'closed' | 'open' | 'half-open' | 'isolated';

const STATE_NAMES: Record<CircuitState, BreakerStateName> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
};

/** Options shared by every replica of a gateway. */
export interface ReplicaOptions {
  readonly failureThreshold: number;
  readonly halfOpenAfterMs: number;
  readonly connections: number;
  readonly connectTimeoutMs: number;
  readonly oom: OomRule;
  /** Called on every breaker transition (metrics). */
  readonly onStateChange?: (replica: Replica, state: BreakerStateName) => void;
}

/** What `/v1/gateway/replicas` shows of a replica. */
export interface ReplicaView {
  readonly id: string;
  readonly url: string;
  readonly breaker: BreakerStateName;
  readonly ready: boolean;
  readonly ejected: boolean;
  readonly inFlight: number;
  readonly lastFailure?: string;
}

/**
 * One upstream replica: a keep-alive connection pool, a consecutive-failure circuit breaker
 * (cockatiel), and what the health checks and the error classes learned about it. All of it is
 * per-process: another gateway process has its own.
 */
export class Replica {
  readonly pool: Pool;
  readonly breaker: CircuitBreakerPolicy;
  /** False while the replica fails its health check or says it is loading its model. */
  ready = true;
  /** True after a refused or reset connection, until a health check passes. */
  ejected = false;
  inFlight = 0;
  lastFailure: string | undefined;
  private openedAt = 0;

  constructor(
    readonly id: string,
    readonly url: string,
    private readonly options: ReplicaOptions,
  ) {
    this.pool = new Pool(url, {
      connections: options.connections,
      connectTimeout: options.connectTimeoutMs,
      // Our own timers bound each phase (classify.ts names them); undici's would race them.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    this.breaker = circuitBreaker(
      handleWhenResult((r) => isBreakerFailure(r as AttemptOutcome, options.oom)),
      { halfOpenAfter: options.halfOpenAfterMs, breaker: new ConsecutiveBreaker(options.failureThreshold) },
    );
    this.breaker.onStateChange((state) => {
      if (state === CircuitState.Open) this.openedAt = Date.now();
      options.onStateChange?.(this, STATE_NAMES[state]);
    });
  }

  get breakerState(): BreakerStateName {
    return STATE_NAMES[this.breaker.state];
  }

  /**
   * Whether a request may go here now: ready, not ejected, and the breaker closed, or open for at
   * least the half-open delay (the request becomes its half-open probe). A half-open breaker already
   * has its probe in flight: cockatiel would hold further calls until it ends, so they go elsewhere.
   */
  routable(now: number): boolean {
    if (!this.ready || this.ejected) return false;
    switch (this.breaker.state) {
      case CircuitState.Closed:
        return true;
      case CircuitState.Open:
        return now - this.openedAt >= this.options.halfOpenAfterMs;
      default:
        return false;
    }
  }

  /** Runs one attempt through the breaker; the attempt itself never throws. */
  execute(attempt: () => Promise<AttemptOutcome>): Promise<AttemptOutcome> {
    return this.breaker.execute(attempt);
  }

  view(): ReplicaView {
    return {
      id: this.id,
      url: this.url,
      breaker: this.breakerState,
      ready: this.ready,
      ejected: this.ejected,
      inFlight: this.inFlight,
      ...(this.lastFailure !== undefined && { lastFailure: this.lastFailure }),
    };
  }

  /** Closes the pool once the requests in flight are done. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
