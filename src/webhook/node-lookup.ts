import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import http from 'node:http';
import https from 'node:https';
import { ConfigError } from '../errors.js';
import type { NodeFacts } from './rules.js';

/**
 * Node reads for the rollout gates (opt-out annotation, node selector, cluster label).
 * `get` resolves to the node's facts, `null` when the node does not exist, and rejects when
 * Kubernetes cannot be asked: the webhook then answers 503 rather than act on an unchecked node.
 */
export interface NodeLookup {
  get(name: string): Promise<NodeFacts | null>;
}

/** Options of {@link CachedNodeLookup}. */
export interface CachedNodeLookupOptions {
  /** How long a node's facts are reused; an opt-out annotation takes at most this long to apply. */
  readonly ttlMs?: number;
  /** How long "no such node" is remembered (short: a node may be registering). */
  readonly notFoundTtlMs?: number;
  /**
   * From which fraction of its TTL an entry is refreshed in the background while still being
   * answered from the cache (each entry picks a random point between this and 90 %, so entries read
   * together are not refreshed together). 1 turns refresh-ahead off. Default 0.5.
   */
  readonly refreshAhead?: number;
  /** Bound on cached nodes. */
  readonly maxEntries?: number;
  readonly now?: () => number;
  /** Random numbers in [0, 1), for the refresh point (tests fix it). */
  readonly random?: () => number;
}

interface Entry {
  readonly at: number;
  /** When a read starts a background refresh. */
  readonly refreshAt: number;
  readonly facts: NodeFacts | null;
}

/**
 * Caches a {@link NodeLookup} briefly and coalesces concurrent reads of the same node, so a storm of
 * alerts for one node costs one API call per TTL, not one per alert. Failures are not cached.
 *
 * Refresh-ahead: past a random point in the second half of its TTL, an entry still answers at once
 * while one background read replaces it. Under steady alert traffic no request waits for a node read
 * after the first, and the 100 nodes of a storm, read together, are not all re-read in the same
 * instant when they expire. Facts are never served older than the TTL: an expired entry is read
 * again before answering, and a failed background read leaves the entry to expire.
 */
export class CachedNodeLookup implements NodeLookup {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<NodeFacts | null>>();
  private readonly ttlMs: number;
  private readonly notFoundTtlMs: number;
  private readonly refreshAhead: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(
    private readonly inner: NodeLookup,
    options: CachedNodeLookupOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 10_000;
    this.notFoundTtlMs = options.notFoundTtlMs ?? 2_000;
    this.refreshAhead = options.refreshAhead ?? 0.5;
    if (!(this.refreshAhead > 0 && this.refreshAhead <= 1)) {
      throw new RangeError(`refreshAhead must be in (0, 1], got ${this.refreshAhead}`);
    }
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  async get(name: string): Promise<NodeFacts | null> {
    const hit = this.entries.get(name);
    if (hit) {
      const now = this.now();
      const ttl = hit.facts === null ? this.notFoundTtlMs : this.ttlMs;
      if (now - hit.at < ttl) {
        // A failed background read is not an error of this request: the entry stays until it expires.
        if (now >= hit.refreshAt) this.read(name).catch(() => undefined);
        return hit.facts;
      }
      this.entries.delete(name);
    }
    return this.read(name);
  }

  /** One read of `name` at a time; its result replaces the entry. */
  private read(name: string): Promise<NodeFacts | null> {
    const pending = this.inFlight.get(name);
    if (pending) return pending;
    const read = this.inner
      .get(name)
      .then((facts) => {
        this.entries.delete(name);
        if (this.entries.size >= this.maxEntries) {
          const oldest = this.entries.keys().next();
          if (!oldest.done) this.entries.delete(oldest.value);
        }
        const at = this.now();
        const ttl = facts === null ? this.notFoundTtlMs : this.ttlMs;
        const from = Math.min(this.refreshAhead, 0.9);
        const fraction = this.refreshAhead >= 1 ? 1 : from + (0.9 - from) * this.random();
        this.entries.set(name, { at, refreshAt: at + ttl * fraction, facts });
        return facts;
      })
      .finally(() => this.inFlight.delete(name));
    this.inFlight.set(name, read);
    return read;
  }
}

/**
 * Reads nodes from the Kubernetes API (`GET /api/v1/nodes/{name}`) with an explicitly loaded
 * kubeconfig, over one keep-alive connection pool.
 *
 * Not `CoreV1Api.readNode`: client-node 1.x builds a new HTTPS agent for every request, so each read
 * pays a full TLS handshake (13 ms of CPU here; 100 nodes leaving the cache together cost seconds
 * during an alert storm), and its node-fetch fails with "Premature close" when handed a keep-alive
 * agent. The kubeconfig still supplies TLS settings and credentials (applied per request, so
 * refreshed tokens are picked up). A read slower than `timeoutMs` fails, so a hung API server turns
 * into a prompt 503 (which Alertmanager retries) instead of requests piling up.
 */
export class KubernetesNodeLookup implements NodeLookup {
  private readonly server: URL;
  private agent: Promise<http.Agent> | undefined;

  constructor(
    private readonly kc: KubeConfig,
    private readonly timeoutMs = 3_000,
  ) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new ConfigError('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
  }

  async get(name: string): Promise<NodeFacts | null> {
    const options: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(options);
    this.agent ??= Promise.resolve(
      this.server.protocol === 'https:'
        ? new https.Agent({ ...tlsOnly(options), keepAlive: true, maxSockets: 16 })
        : new http.Agent({ keepAlive: true, maxSockets: 16 }),
    );
    const agent = await this.agent;
    const base = this.server.pathname.replace(/\/$/, '');
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = (this.server.protocol === 'https:' ? https : http).request(
        {
          ...tlsOnly(options),
          agent,
          method: 'GET',
          protocol: this.server.protocol,
          hostname: this.server.hostname,
          port: this.server.port,
          path: `${base}/api/v1/nodes/${encodeURIComponent(name)}`,
          headers: { ...options.headers, accept: 'application/json' },
          timeout: this.timeoutMs,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () =>
        req.destroy(new Error(`reading node ${name} took longer than ${this.timeoutMs} ms`)),
      );
      req.on('error', reject);
      req.end();
    });
    if (status === 404) return null;
    if (status !== 200) {
      let message = body.slice(0, 200);
      try {
        message = (JSON.parse(body) as { message?: string }).message ?? message;
      } catch {
        // not a Status object: keep the raw text
      }
      throw new Error(`reading node ${name}: HTTP ${status}: ${message}`);
    }
    const node = JSON.parse(body) as V1Node;
    return {
      name,
      labels: { ...node.metadata?.labels },
      annotations: { ...node.metadata?.annotations },
    };
  }

  /** Closes the idle keep-alive connections. */
  async close(): Promise<void> {
    (await this.agent)?.destroy();
  }
}

/** The TLS fields of request options built from a kubeconfig (CA, client certificate, verification). */
function tlsOnly(
  o: https.RequestOptions,
): Pick<
  https.AgentOptions,
  'ca' | 'cert' | 'key' | 'pfx' | 'passphrase' | 'rejectUnauthorized' | 'servername'
> {
  return {
    ...(o.ca !== undefined && { ca: o.ca }),
    ...(o.cert !== undefined && { cert: o.cert }),
    ...(o.key !== undefined && { key: o.key }),
    ...(o.pfx !== undefined && { pfx: o.pfx }),
    ...(o.passphrase !== undefined && { passphrase: o.passphrase }),
    ...(o.rejectUnauthorized !== undefined && { rejectUnauthorized: o.rejectUnauthorized }),
    ...(o.servername !== undefined && { servername: o.servername }),
  };
}
