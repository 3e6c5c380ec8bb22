import Fastify from 'fastify';
import type { Registry } from 'prom-client';

/** A listening metrics endpoint. */
export interface RunningMetricsServer {
  /** `http://host:port` (the port the OS picked when 0 was asked for). */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves `registry` on `GET /metrics` (and `GET /healthz`) at `host:port`, 127.0.0.1 unless told
 * otherwise. The metrics carry node names and cluster state, not secrets; bind a wider address only
 * where the network in front of it is trusted (a pod network scraped by Prometheus).
 *
 * @example const server = await startMetricsServer({ registry, port: 9464 });
 */
export async function startMetricsServer(options: {
  readonly registry: Registry;
  readonly host?: string;
  readonly port?: number;
}): Promise<RunningMetricsServer> {
  const host = options.host ?? '127.0.0.1';
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_request, reply) => {
    void reply.header('content-type', options.registry.contentType);
    return options.registry.metrics();
  });
  app.get('/healthz', () => ({ ok: true }));
  await app.listen({ host, port: options.port ?? 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { url: `http://${shown}:${port}`, close: () => app.close() };
}
