import Fastify from 'fastify';

/** One request the receiver got. */
export interface Received {
  readonly path: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
}

/**
 * A webhook receiver on 127.0.0.1 and a free port for notification tests: records every POST, and
 * answers each path with the status `respond` picks (200 by default), after `delayMs` if set and once
 * `hold` lets it.
 */
export async function startReceiver(
  options: {
    respond?: (path: string, count: number) => number;
    delayMs?: (path: string) => number;
    /** Holds the answer to `path` until the returned promise settles (a sink that hangs). */
    hold?: (path: string) => Promise<void> | undefined;
  } = {},
) {
  const received: Received[] = [];
  const app = Fastify({ logger: false });
  app.post('/*', async (request, reply) => {
    received.push({ path: request.url, headers: request.headers, body: request.body });
    const count = received.filter((r) => r.path === request.url).length;
    const delay = options.delayMs?.(request.url) ?? 0;
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    await options.hold?.(request.url);
    const status = options.respond?.(request.url, count) ?? 200;
    return reply.code(status).send(status < 300 ? 'ok' : 'receiver says no');
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    /** Bodies POSTed to `path`. */
    bodies: <T = unknown>(path: string) => received.filter((r) => r.path === path).map((r) => r.body as T),
    close: () => app.close(),
  };
}
