import { after } from 'node:test';
import { parseGatewayConfig, type GatewayConfigInput } from '../../src/gateway/config.js';
import { startGateway, type RunningGateway, type StartGatewayOptions } from '../../src/gateway/server.js';
import { startStandin, type RunningStandin, type StandinOptions } from '../../src/gateway/standin.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

/** Stand-in replicas, closed after the file. */
export async function standins(n: number, options: StandinOptions = {}): Promise<RunningStandin[]> {
  const list = await Promise.all(Array.from({ length: n }, () => startStandin({ serviceMs: 5, ...options })));
  for (const s of list) cleanups.push(() => s.close());
  return list;
}

/** A gateway over `replicas` with quick defaults for tests (health checks every 50 ms). */
export async function gatewayOver(
  replicas: RunningStandin[],
  config: GatewayConfigInput = {},
  options: StartGatewayOptions = {},
): Promise<RunningGateway> {
  const gw = await startGateway(
    parseGatewayConfig({
      port: 0,
      replicas: replicas.map((r) => r.url),
      ...config,
      health: { intervalMs: 50, jitter: 0.2, ...config.health },
    }),
    options,
  );
  cleanups.push(() => gw.close());
  return gw;
}

/** A chat completion request to the gateway. */
export async function chat(
  gw: RunningGateway,
  body: Record<string, unknown> = {},
  init: { signal?: AbortSignal } = {},
): Promise<Response> {
  return fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'standin', messages: [{ role: 'user', content: 'hi' }], ...body }),
    ...init,
  });
}

/** Which replica answered: the index in `replicas`, -1 for none, 'fallback'. */
export function answeredBy(res: Response, replicas: RunningStandin[]): number | 'fallback' {
  const id = res.headers.get('x-fleetmedic-replica');
  if (id === 'fallback') return 'fallback';
  return replicas.findIndex((r) => r.url === id);
}

/** The data lines of an SSE body. */
export function sseData(text: string): string[] {
  return text
    .split('\n\n')
    .map((e) => e.trim())
    .filter((e) => e.startsWith('data:'))
    .map((e) => e.slice(5).trim());
}

/** Polls `probe` until true, or fails after `timeoutMs`. */
export async function until(what: string, probe: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
