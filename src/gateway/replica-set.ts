import type { Endpoint } from './discovery.js';
import { breakerStateValue, type GatewayMetrics } from './metrics.js';
import { Replica, type ReplicaOptions } from './replica.js';

/** Active health checking settings. */
export interface HealthCheckOptions {
  readonly path: string;
  readonly intervalMs: number;
  readonly jitter: number;
  readonly timeoutMs: number;
}

/**
 * The replicas the gateway routes to: follows discovery, checks each replica's `/health` on a
 * jittered interval, and picks the least busy routable replica for each attempt.
 */
export class ReplicaSet {
  private readonly replicas = new Map<string, Replica>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private cursor = 0;
  private closed = false;

  constructor(
    private readonly options: {
      readonly replica: Omit<ReplicaOptions, 'onStateChange'>;
      readonly health: HealthCheckOptions;
      readonly metrics: GatewayMetrics;
      readonly random?: () => number;
    },
  ) {}

  /** Replicas known now, routable or not. */
  list(): Replica[] {
    return [...this.replicas.values()];
  }

  /**
   * Replaces the set with `endpoints`. A replica that leaves gets no new request at once; its pool
   * closes when its requests in flight are done.
   */
  update(endpoints: readonly Endpoint[]): void {
    if (this.closed) return;
    const wanted = new Map(endpoints.map((e) => [e.id, e]));
    for (const [id, replica] of this.replicas) {
      const next = wanted.get(id);
      if (next?.url === replica.url) continue;
      this.remove(id, replica);
    }
    for (const endpoint of wanted.values()) {
      if (!this.replicas.has(endpoint.id)) this.add(endpoint);
    }
  }

  /**
   * The least busy routable replica not in `exclude`; ties go round-robin. Undefined when none is
   * routable: the gateway never "panics" into replicas it knows are dead.
   */
  pick(exclude: ReadonlySet<string>, now = Date.now()): Replica | undefined {
    const all = [...this.replicas.values()];
    let best: Replica | undefined;
    for (let i = 0; i < all.length; i++) {
      const replica = all[(this.cursor + i) % all.length]!;
      if (exclude.has(replica.id) || !replica.routable(now)) continue;
      if (!best || replica.inFlight < best.inFlight) best = replica;
    }
    this.cursor = (this.cursor + 1) % Math.max(1, all.length);
    return best;
  }

  /** Takes a replica out of routing until a health check passes, and checks it at once. */
  eject(replica: Replica, reason: string): void {
    if (!this.replicas.has(replica.id)) return;
    if (!replica.ejected) this.options.metrics.ejections.inc({ replica: replica.id, reason });
    replica.ejected = true;
    this.publishReady(replica);
    this.schedule(replica, 0);
  }

  /** Marks a replica not ready (it answered "Loading model") until a health check passes. */
  markNotReady(replica: Replica): void {
    if (!this.replicas.has(replica.id)) return;
    if (replica.ready) this.options.metrics.ejections.inc({ replica: replica.id, reason: 'not-ready' });
    replica.ready = false;
    this.publishReady(replica);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await Promise.all([...this.replicas.values()].map((r) => r.close()));
    this.replicas.clear();
  }

  private add(endpoint: Endpoint): void {
    const { metrics } = this.options;
    const replica = new Replica(endpoint.id, endpoint.url, {
      ...this.options.replica,
      onStateChange: (r, state) => {
        metrics.breakerTransitions.inc({ replica: r.id, state });
        metrics.breakerState.set({ replica: r.id }, breakerStateValue(state));
      },
    });
    this.replicas.set(endpoint.id, replica);
    metrics.breakerState.set({ replica: replica.id }, 0);
    this.publishReady(replica);
    this.schedule(replica, 0);
  }

  private remove(id: string, replica: Replica): void {
    this.replicas.delete(id);
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    this.options.metrics.breakerState.remove({ replica: id });
    this.options.metrics.replicaReady.remove({ replica: id });
    replica.close().catch(() => {});
  }

  private publishReady(replica: Replica): void {
    this.options.metrics.replicaReady.set({ replica: replica.id }, replica.ready && !replica.ejected ? 1 : 0);
  }

  private schedule(replica: Replica, delayMs?: number): void {
    if (this.closed) return;
    clearTimeout(this.timers.get(replica.id));
    const { intervalMs, jitter } = this.options.health;
    const random = this.options.random ?? Math.random;
    const delay = delayMs ?? intervalMs * (1 - jitter + 2 * jitter * random());
    const timer = setTimeout(() => {
      void this.check(replica).finally(() => {
        if (this.replicas.get(replica.id) === replica) this.schedule(replica);
      });
    }, delay);
    timer.unref();
    this.timers.set(replica.id, timer);
  }

  private async check(replica: Replica): Promise<void> {
    const { path, timeoutMs } = this.options.health;
    let healthy = false;
    try {
      const res = await replica.pool.request({
        path,
        method: 'GET',
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body.dump();
      healthy = res.statusCode === 200;
    } catch {
      healthy = false;
    }
    if (this.replicas.get(replica.id) !== replica) return;
    if (!healthy && replica.ready && !replica.ejected) {
      this.options.metrics.ejections.inc({ replica: replica.id, reason: 'health' });
    }
    replica.ready = healthy;
    if (healthy) replica.ejected = false;
    this.publishReady(replica);
  }
}
