import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import type { GatewayConfig } from './config.js';
import { LlamaCppContinuer } from './continuation.js';
import { loadInClusterKubeConfig, loadKubeConfig } from '../k8s/kubeconfig.js';
import {
  CombinedDiscovery,
  KubernetesPodDiscovery,
  StaticDiscovery,
  type ReplicaDiscovery,
} from './discovery.js';
import { Gateway } from './gateway.js';
import { createGatewayMetrics, type GatewayMetrics } from './metrics.js';
import { ReplicaSet } from './replica-set.js';
import { openAiError } from './sse.js';

/** The proxied OpenAI routes. */
const PROXIED = new Set(['/v1/chat/completions', '/v1/completions']);
/** Request headers passed upstream. */
const FORWARDED = ['content-type', 'accept', 'authorization', 'x-request-id'];

/** A running gateway. */
export interface RunningGateway {
  /** `http://host:port`. */
  readonly url: string;
  readonly gateway: Gateway;
  readonly replicas: ReplicaSet;
  readonly metrics: GatewayMetrics;
  /**
   * A graceful end, as on SIGTERM in a pod: `/healthz` answers 503 (the pod leaves its Service),
   * every answer carries `Connection: close` so that clients move their keep-alive connections to
   * another pod after the request they have sent, and once no connection is left (or after `maxMs`)
   * the gateway closes, letting requests in flight finish.
   *
   * @returns the client connections still open at `maxMs`, which the close then ends: an idle one
   *   ends as its client may be sending on it (HTTP/1.1 has no way to say so first). None when the
   *   clients' keep-alive timeout (`keepAliveMs`, their hint) is shorter than the drain.
   */
  drain(maxMs: number): Promise<{ openAtLimit: number }>;
  close(): Promise<void>;
}

/** What {@link startGateway} takes besides the configuration. */
export interface StartGatewayOptions {
  /** Discovery beside the static replicas; default: the pod watch when `kube` is configured. */
  readonly discovery?: ReplicaDiscovery;
  /** Told about pod watch errors (the watch restarts by itself). */
  readonly onDiscoveryError?: (err: unknown) => void;
  readonly metrics?: GatewayMetrics;
  /** Health-check jitter source (tests). */
  readonly random?: () => number;
}

/**
 * Starts the gateway on plain node:http (streams need the raw response, which fastify gives only
 * through `reply.hijack()`; measured: no latency difference either way, docs/gateway.md):
 * `/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/healthz`, `/metrics` and
 * `/v1/gateway/replicas`.
 *
 * @example const gw = await startGateway(parseGatewayConfig({ replicas: ['http://127.0.0.1:8081'] }));
 */
export async function startGateway(
  config: GatewayConfig,
  options: StartGatewayOptions = {},
): Promise<RunningGateway> {
  const metrics = options.metrics ?? createGatewayMetrics();
  const replicas = new ReplicaSet({
    replica: {
      failureThreshold: config.breaker.failureThreshold,
      halfOpenAfterMs: config.breaker.halfOpenAfterMs,
      connections: config.connectionsPerReplica,
      connectTimeoutMs: config.timeouts.connectMs,
      oom: { status: config.oom.status, bodyPattern: new RegExp(config.oom.bodyPattern, 'i') },
    },
    health: config.health,
    metrics,
    ...(options.random && { random: options.random }),
  });
  const fallback = config.fallbackUrl
    ? new Pool(config.fallbackUrl, {
        connections: config.connectionsPerReplica,
        headersTimeout: 0,
        bodyTimeout: 0,
      })
    : undefined;
  const gateway = new Gateway(config, {
    replicas,
    metrics,
    ...(fallback && { fallback }),
    ...(config.continuation && { continuer: new LlamaCppContinuer() }),
  });
  const parts: ReplicaDiscovery[] = [];
  if (config.replicas.length > 0) parts.push(new StaticDiscovery(config.replicas));
  if (options.discovery) parts.push(options.discovery);
  else if (config.kube) {
    const { kube } = config;
    parts.push(
      new KubernetesPodDiscovery({
        // parseGatewayConfig checked that exactly one of the two is set.
        kc: kube.inCluster ? loadInClusterKubeConfig() : loadKubeConfig(kube.kubeconfig!),
        namespace: kube.namespace,
        deployment: kube.deployment,
        port: kube.port,
        loopbackOnly: config.loopbackOnly,
        ...(options.onDiscoveryError && { onError: options.onDiscoveryError }),
      }),
    );
  }
  const discovery = new CombinedDiscovery(parts);
  await discovery.start((endpoints) => replicas.update(endpoints));

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.keepAliveTimeout = config.keepAliveMs;
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  let draining = false;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    // Draining: the connection ends with this answer, so the client's next request opens another,
    // which the Service sends to a pod that is not going away.
    if (draining) res.setHeader('connection', 'close');
    if (req.method === 'POST' && PROXIED.has(path)) return proxyPost(path, req, res);
    if (req.method !== 'GET')
      return sendJson(res, 405, openAiError('method not allowed', 'invalid_request_error'));
    switch (path) {
      case '/v1/models':
        return gateway.proxy(
          path,
          { method: 'GET', path, headers: forwarded(req), stream: false },
          undefined,
          res,
        );
      case '/healthz': {
        const routable = replicas.list().filter((r) => r.routable(Date.now())).length;
        if (draining) {
          return sendJson(res, 503, {
            ok: false,
            draining: true,
            replicas: replicas.list().length,
            routable,
          });
        }
        return sendJson(res, 200, { ok: true, replicas: replicas.list().length, routable });
      }
      case '/metrics': {
        const text = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
        return;
      }
      case '/v1/gateway/replicas':
        return sendJson(res, 200, {
          replicas: replicas.list().map((r) => r.view()),
          retryBudget: {
            activeRequests: gateway.budget.activeRequests,
            activeRetries: gateway.budget.activeRetries,
            limit: gateway.budget.limit,
          },
        });
      default:
        return sendJson(res, 404, openAiError(`no route ${path}`, 'invalid_request_error', 'not_found'));
    }
  }

  async function proxyPost(path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, config.bodyLimitBytes);
    if (body === undefined) {
      return sendJson(
        res,
        413,
        openAiError('request body too large', 'invalid_request_error', 'body_too_large'),
      );
    }
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error('not an object');
    } catch {
      return sendJson(res, 400, openAiError('the body must be a JSON object', 'invalid_request_error'));
    }
    const request = {
      method: 'POST' as const,
      path,
      headers: forwarded(req),
      body,
      stream: json.stream === true,
    };
    return gateway.proxy(path, request, json, res);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const shown = config.host.includes(':') ? `[${config.host}]` : config.host;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      // Connections busy now end with their answer: a kept-alive client would hold the close open.
      draining = true;
      await discovery.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await replicas.close();
      await fallback?.close();
    })());
  return {
    url: `http://${shown}:${port}`,
    gateway,
    replicas,
    metrics,
    drain: async (maxMs) => {
      draining = true;
      const deadline = Date.now() + maxMs;
      while (sockets.size > 0 && Date.now() < deadline) await sleep(25);
      const openAtLimit = sockets.size;
      await close();
      return { openAtLimit };
    },
    close,
  };
}

function forwarded(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of FORWARDED) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  return headers;
}

/** The whole body, or undefined past `limit` bytes. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
