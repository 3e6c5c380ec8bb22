import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReplicaView } from '../../src/gateway/replica.js';
import type { RunningGateway } from '../../src/gateway/server.js';
import { answeredBy, chat, gatewayOver, sseData, standins, until } from './helpers.js';

async function views(gw: RunningGateway): Promise<ReplicaView[]> {
  const res = await fetch(`${gw.url}/v1/gateway/replicas`);
  return ((await res.json()) as { replicas: ReplicaView[] }).replicas;
}

async function metric(gw: RunningGateway, line: RegExp): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const found = text.split('\n').find((l) => line.test(l));
  return found ? Number(found.split(' ').pop()) : 0;
}

describe('gateway: routing and error classes', () => {
  it('proxies chat completions and marks every answer with the replica and the attempts', async () => {
    const replicas = await standins(2);
    const gw = await gatewayOver(replicas);
    const res = await chat(gw);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { choices: { message: { content: string } }[] };
    assert.equal(body.choices[0]?.message.content, ' w0 w1 w2 w3 w4 w5 w6 w7');
    assert.notEqual(answeredBy(res, replicas), -1);
    assert.equal(res.headers.get('x-fleetmedic-attempts'), '1');
    const models = await fetch(`${gw.url}/v1/models`);
    assert.equal(models.status, 200);
    assert.equal(((await models.json()) as { data: { id: string }[] }).data[0]?.id, 'standin');
    const health = await fetch(`${gw.url}/healthz`);
    assert.deepEqual(await health.json(), { ok: true, replicas: 2, routable: 2 });
  });

  it('the breaker opens after N consecutive failures, half-opens after the configured time and closes', async () => {
    const [replica] = await standins(1, { faults: { fail: true } });
    const gw = await gatewayOver([replica!], {
      breaker: { failureThreshold: 3, halfOpenAfterMs: 300 },
      retry: { maxAttempts: 1 },
    });
    for (let i = 0; i < 3; i++) assert.equal((await chat(gw)).status, 500);
    assert.equal((await views(gw))[0]?.breaker, 'open');
    const refused = await chat(gw);
    assert.equal(refused.status, 503, 'an open breaker gets no request, and there is no fallback');
    assert.equal(refused.headers.get('x-fleetmedic-attempts'), '0');
    assert.equal(replica!.stats.requests, 3);
    replica!.faults = {};
    await sleep(350);
    const probe = await chat(gw);
    assert.equal(probe.status, 200, 'the half-open probe succeeds');
    assert.equal((await views(gw))[0]?.breaker, 'closed');
    assert.equal(await metric(gw, /^fleetmedic_gateway_breaker_transitions_total\{.*state="half-open"/), 1);
  });

  it('a half-open probe that fails opens the breaker again', async () => {
    const [replica] = await standins(1, { faults: { fail: true } });
    const gw = await gatewayOver([replica!], {
      breaker: { failureThreshold: 2, halfOpenAfterMs: 200 },
      retry: { maxAttempts: 1 },
    });
    for (let i = 0; i < 2; i++) await chat(gw);
    await sleep(250);
    assert.equal((await chat(gw)).status, 500);
    assert.equal((await views(gw))[0]?.breaker, 'open');
    assert.equal((await chat(gw)).status, 503);
  });

  it('4xx answers never trip the breaker', async () => {
    const [replica] = await standins(1, { faults: { badRequest: true } });
    const gw = await gatewayOver([replica!], { breaker: { failureThreshold: 2 } });
    for (let i = 0; i < 8; i++) {
      const res = await chat(gw);
      assert.equal(res.status, 400);
      assert.equal(res.headers.get('x-fleetmedic-attempts'), '1', '4xx is not retried either');
    }
    assert.equal((await views(gw))[0]?.breaker, 'closed');
  });

  it('the retry budget holds when every replica fails at once: retries stay within 20 % of active requests', async () => {
    const replicas = await standins(3, { concurrency: 100, faults: { fail: true, slowMs: 150 } });
    const gw = await gatewayOver(replicas, {
      breaker: { failureThreshold: 1000 },
      retry: { budgetPercent: 20, minConcurrent: 3, maxAttempts: 3 },
    });
    const n = 30;
    const answers = await Promise.all(Array.from({ length: n }, () => chat(gw)));
    const attempts = answers.reduce((sum, r) => sum + Number(r.headers.get('x-fleetmedic-attempts')), 0);
    const upstream = replicas.reduce((sum, r) => sum + r.stats.requests, 0);
    assert.equal(attempts, upstream, 'every attempt is counted in the header');
    assert.ok(answers.every((r) => r.status === 500));
    // Without a budget: 90 attempts. With it: 30 first attempts, then at most 6 (20 % of 30) retries at
    // once, then at most 3 (the minimum) third attempts.
    assert.ok(upstream <= n + 6 + 3, `attempts ${upstream}`);
    assert.ok((await metric(gw, /^fleetmedic_gateway_retry_budget_exhausted_total/)) >= n - 6);
  });

  it('a failing replica costs retries, not answers, while the budget allows', async () => {
    const replicas = await standins(3);
    replicas[0]!.faults = { fail: true };
    const gw = await gatewayOver(replicas, { breaker: { failureThreshold: 1000 } });
    // In pairs: two retries at once stay under the minimum of 3 concurrent retries.
    const answers: Response[] = [];
    for (let i = 0; i < 6; i++) answers.push(...(await Promise.all([chat(gw), chat(gw)])));
    assert.ok(answers.every((r) => r.status === 200));
    assert.ok(answers.every((r) => answeredBy(r, replicas) !== 0));
    assert.ok(answers.some((r) => r.headers.get('x-fleetmedic-attempts') === '2'));
  });

  it('falls back when every breaker is open, and says so', async () => {
    const replicas = await standins(2, { faults: { fail: true } });
    const [fallback] = await standins(1, { model: 'compressed' });
    const gw = await gatewayOver(replicas, {
      breaker: { failureThreshold: 1 },
      fallbackUrl: fallback!.url,
      fallbackModel: 'compressed',
    });
    const first = await chat(gw);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('x-fleetmedic-fallback'), 'no-replica');
    assert.equal(first.headers.get('x-fleetmedic-replica'), 'fallback');
    assert.equal(first.headers.get('x-fleetmedic-attempts'), '3');
    assert.deepEqual(
      (await views(gw)).map((v) => v.breaker),
      ['open', 'open'],
    );
    const next = await chat(gw);
    assert.equal(next.headers.get('x-fleetmedic-fallback'), 'no-replica');
    assert.equal(next.headers.get('x-fleetmedic-attempts'), '1');
    assert.equal(((await next.json()) as { model: string }).model, 'compressed');
  });

  it('an out-of-memory answer goes to the fallback model at once', async () => {
    const replicas = await standins(2, { faults: { oom: true } });
    const [fallback] = await standins(1);
    const gw = await gatewayOver(replicas, { fallbackUrl: fallback!.url });
    const res = await chat(gw);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-fleetmedic-fallback'), 'oom');
    assert.equal(res.headers.get('x-fleetmedic-attempts'), '2');
    assert.equal(replicas[0]!.stats.requests + replicas[1]!.stats.requests, 1, 'no retry on another replica');
  });

  it('a slow replica times out before its first byte and the request succeeds elsewhere', async () => {
    const replicas = await standins(2);
    replicas[0]!.faults = { slowMs: 3_000 };
    const gw = await gatewayOver(replicas, {
      timeouts: { ttfbMs: 200 },
      breaker: { failureThreshold: 1000 },
    });
    for (let i = 0; i < 4; i++) {
      const started = Date.now();
      const res = await chat(gw);
      assert.equal(res.status, 200);
      assert.equal(answeredBy(res, replicas), 1);
      assert.ok(Date.now() - started < 1_500);
    }
    assert.ok((await metric(gw, /^fleetmedic_gateway_retries_total\{reason="timeout-ttfb"\}/)) >= 1);
  });

  it('503 "Loading model" routes elsewhere and marks the replica not ready, without a breaker count', async () => {
    const replicas = await standins(2);
    const gw = await gatewayOver(replicas, {
      breaker: { failureThreshold: 1 },
      health: { intervalMs: 60_000 },
    });
    await until('the first health check', () => replicas[0]!.stats.health > 0);
    replicas[0]!.faults = { loading: true };
    for (let i = 0; i < 4; i++) {
      const res = await chat(gw);
      assert.equal(res.status, 200);
      assert.equal(answeredBy(res, replicas), 1);
    }
    const [loading] = await views(gw);
    assert.equal(loading?.ready, false);
    assert.equal(loading?.breaker, 'closed');
    assert.equal(await metric(gw, /^fleetmedic_gateway_retries_total\{reason="not-ready"\}/), 1);
  });

  it('passes 429 on with its Retry-After, without retry or breaker count', async () => {
    const [replica] = await standins(1, { faults: { rateLimited: true } });
    const gw = await gatewayOver([replica!], { breaker: { failureThreshold: 1 } });
    for (let i = 0; i < 3; i++) {
      const res = await chat(gw);
      assert.equal(res.status, 429);
      assert.equal(res.headers.get('retry-after'), '7');
      assert.equal(res.headers.get('x-fleetmedic-attempts'), '1');
    }
    assert.equal((await views(gw))[0]?.breaker, 'closed');
  });

  it('sheds load with 429 and Retry-After at the concurrency limit instead of queueing', async () => {
    const [replica] = await standins(1, { faults: { slowMs: 300 } });
    const gw = await gatewayOver([replica!], { maxConcurrent: 2, retryAfterSeconds: 2 });
    const answers = await Promise.all(Array.from({ length: 5 }, () => chat(gw)));
    const statuses = answers.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 429, 429, 429]);
    const shed = answers.find((r) => r.status === 429)!;
    assert.equal(shed.headers.get('retry-after'), '2');
    assert.equal(((await shed.json()) as { error: { code: string } }).error.code, 'overloaded');
    assert.equal(replica!.stats.requests, 2);
  });

  it('a refused connection ejects the replica and the request is retried elsewhere', async () => {
    const replicas = await standins(2);
    const gw = await gatewayOver(replicas, { health: { intervalMs: 60_000 } });
    await until('the first health checks', () => replicas.every((r) => r.stats.health > 0));
    await replicas[0]!.close();
    for (let i = 0; i < 3; i++) {
      const res = await chat(gw);
      assert.equal(res.status, 200);
      assert.equal(answeredBy(res, replicas), 1);
    }
    const [dead] = await views(gw);
    assert.equal(dead?.ejected, true);
  });
});

describe('gateway: streams', () => {
  it('passes SSE through event by event, to [DONE]', async () => {
    const replicas = await standins(2);
    const gw = await gatewayOver(replicas);
    const res = await chat(gw, { stream: true });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    assert.equal(res.headers.get('x-fleetmedic-attempts'), '1');
    const data = sseData(await res.text());
    assert.equal(data.length, 10);
    assert.equal(data.at(-1), '[DONE]');
    const chunks = data
      .slice(0, -1)
      .map((d) => JSON.parse(d) as { choices: { delta: { content?: string } }[] });
    assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), ' w0 w1 w2 w3 w4 w5 w6 w7');
  });

  it('a stream that fails before its first event is retried on another replica', async () => {
    const replicas = await standins(2);
    replicas[0]!.faults = { dieAfterChunks: 0 };
    const gw = await gatewayOver(replicas, { breaker: { failureThreshold: 1000 } });
    for (let i = 0; i < 3; i++) {
      const res = await chat(gw, { stream: true });
      assert.equal(answeredBy(res, replicas), 1);
      assert.equal(sseData(await res.text()).at(-1), '[DONE]');
    }
  });

  it('a replica dying mid-stream ends the stream with an OpenAI error event, never a silent truncation', async () => {
    const replicas = await standins(2, { faults: { dieAfterChunks: 3 } });
    const gw = await gatewayOver(replicas);
    const res = await chat(gw, { stream: true });
    assert.equal(res.status, 200);
    const data = sseData(await res.text());
    assert.equal(data.length, 4);
    assert.ok(!data.includes('[DONE]'));
    const last = JSON.parse(data.at(-1)!) as { error: { type: string; code: string; message: string } };
    assert.equal(last.error.type, 'upstream_error');
    assert.equal(last.error.code, 'stream_broken');
    assert.equal(await metric(gw, /^fleetmedic_gateway_stream_breaks_total\{result="error-event"\}/), 1);
  });

  it('with continuation on, a stream broken mid-way continues on another replica as one stream', async () => {
    const replicas = await standins(2);
    const gw = await gatewayOver(replicas, { continuation: true, breaker: { failureThreshold: 1000 } });
    replicas[0]!.faults = { dieAfterChunks: 3 };
    let data: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await chat(gw, { stream: true, max_tokens: 8, temperature: 0 });
      data = sseData(await res.text());
      if (answeredBy(res, replicas) === 0) break;
    }
    assert.equal(data.at(-1), '[DONE]');
    const chunks = data.slice(0, -1).map(
      (d) =>
        JSON.parse(d) as {
          id: string;
          choices: { delta: { content?: string }; finish_reason: string | null }[];
        },
    );
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'one id');
    assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), ' w0 w1 w2 w3 w4 w5 w6 w7');
    assert.deepEqual(
      chunks.map((c) => c.choices[0]?.finish_reason).filter((f) => f !== null),
      ['length'],
      'one finish_reason',
    );
    assert.equal(replicas[1]!.stats.requests >= 1, true);
    assert.equal(await metric(gw, /^fleetmedic_gateway_stream_breaks_total\{result="continued"\}/), 1);
  });

  it('a client that goes away cancels the upstream request', async () => {
    const [replica] = await standins(1, { faults: { slowMs: 5_000 } });
    const gw = await gatewayOver([replica!]);
    const ac = new AbortController();
    const pending = chat(gw, { stream: true }, { signal: ac.signal });
    await until('the request upstream', () => replica!.stats.inFlight === 1);
    ac.abort();
    await assert.rejects(pending);
    await until('the stand-in to see the abort', () => replica!.stats.aborted === 1);
    assert.equal(replica!.stats.completed, 0);
    assert.equal((await views(gw))[0]?.breaker, 'closed');
  });

  it('a stream that stalls after two events ends, after the idle timeout, with an error event; the upstream is cancelled', async () => {
    const replicas = await standins(1, { faults: { stallAfterChunks: 2 } });
    const gw = await gatewayOver(replicas, { timeouts: { streamIdleMs: 300, requestMs: 20_000 } });
    const started = Date.now();
    const res = await chat(gw, { stream: true });
    assert.equal(res.status, 200);
    const data = sseData(await res.text());
    const took = Date.now() - started;
    assert.equal(data.length, 3, JSON.stringify(data));
    assert.ok(!data.includes('[DONE]'));
    const last = JSON.parse(data.at(-1)!) as { error: { type: string; code: string } };
    assert.equal(last.error.type, 'upstream_error');
    assert.ok(took >= 300 && took < 5_000, `the stream ended after ${took} ms`);
    await until('the stalled upstream request cancelled', () => replicas[0]!.stats.aborted === 1);
  });

  it('with continuation on, a stalled stream continues on another replica after the idle timeout', async () => {
    const replicas = await standins(2);
    const gw = await gatewayOver(replicas, {
      continuation: true,
      breaker: { failureThreshold: 1000 },
      timeouts: { streamIdleMs: 300, requestMs: 20_000 },
    });
    replicas[0]!.faults = { stallAfterChunks: 3 };
    let data: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await chat(gw, { stream: true, max_tokens: 8, temperature: 0 });
      data = sseData(await res.text());
      if (answeredBy(res, replicas) === 0) break;
    }
    assert.equal(data.at(-1), '[DONE]');
    const text = data
      .slice(0, -1)
      .map(
        (d) =>
          (JSON.parse(d) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '',
      )
      .join('');
    assert.equal(text, ' w0 w1 w2 w3 w4 w5 w6 w7');
  });

  it('the request deadline bounds every attempt together: 504 when it passes, no attempt after it', async () => {
    const replicas = await standins(3, { faults: { slowMs: 400 } });
    const gw = await gatewayOver(replicas, {
      timeouts: { requestMs: 900, ttfbMs: 350 },
      breaker: { failureThreshold: 1000 },
    });
    const started = Date.now();
    const res = await chat(gw);
    const took = Date.now() - started;
    assert.equal(res.status, 504, await res.text());
    assert.ok(took < 2_000, `answered after ${took} ms, past the 900 ms deadline`);
    await sleep(600);
    const attempts = replicas.reduce((n, r) => n + r.stats.requests, 0);
    assert.ok(attempts >= 2 && attempts <= 3, `${attempts} attempts within a 900 ms deadline at 350 ms each`);
  });
});
