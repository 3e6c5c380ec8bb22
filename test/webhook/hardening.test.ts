import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { KEY_ID_HEADER, signRequest, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../../src/webhook/auth.js';
import { createWebhookMetrics } from '../../src/webhook/metrics.js';
import {
  startWebhookServer,
  UNAVAILABLE_MESSAGE,
  type ListenOptions,
  type WebhookDeps,
} from '../../src/webhook/server.js';
import { generatePki, type TestPki } from '../helpers/temporal-tls.js';
import { FakeOperator } from '../operator/fake-operator.js';
import {
  AUTH,
  CLUSTER,
  FakeNodes,
  FakeStarter,
  HMAC_SECRET,
  OPERATOR_TOKEN,
  rules,
  TOKEN,
  xidPayload,
} from './helpers.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/** One request to a real listener, from `localAddress` (127.0.0.0/8 only), over HTTPS when `ca` is set. */
function send(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    localAddress?: string;
    ca?: Buffer;
  } = {},
): Promise<Answer> {
  const target = new URL(url);
  assert.match(target.hostname, /^127\./, 'tests talk to loopback only');
  return new Promise((resolve, reject) => {
    const lib = target.protocol === 'https:' ? https : http;
    const req = lib.request(
      target,
      {
        method: options.method ?? 'GET',
        headers: options.headers,
        timeout: 5000,
        ...(options.localAddress && { localAddress: options.localAddress }),
        ...(options.ca && { ca: options.ca }),
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let body: Record<string, unknown>;
          try {
            body = JSON.parse(text) as Record<string, unknown>;
          } catch {
            body = { raw: text };
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}

const json = { 'content-type': 'application/json' };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Log lines the server wrote, parsed. */
function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

function deps(over: Partial<WebhookDeps & ListenOptions> = {}): WebhookDeps & ListenOptions {
  return {
    clusterId: CLUSTER,
    taskQueue: 'fleetmedic',
    rules: rules(),
    starter: new FakeStarter(),
    nodes: new FakeNodes(),
    auth: AUTH,
    metrics: createWebhookMetrics({ defaultMetrics: false }),
    operator: new FakeOperator(),
    ...over,
  };
}

// Credentials, signatures, failure limits, 5xx answers, TLS and the metrics listener, against the
// webhook listening on 127.0.0.1 (the Temporal and Kubernetes sides are fakes).
describe('webhook hardening (real listener on 127.0.0.1)', () => {
  const alert = JSON.stringify(xidPayload('gpu-node-2'));

  it('scopes: alerts credentials post alerts only, operator credentials act only, as themselves', async () => {
    const operator = new FakeOperator();
    const { logger, lines } = capturedLogger();
    const unscoped = 'unscoped-token-0123456789abcdef';
    const w = await startWebhookServer(
      deps({
        operator,
        logger,
        auth: { ...AUTH, tokens: [...AUTH.tokens, { caller: 'legacy', token: unscoped }] },
      }),
    );
    try {
      const posted = await send(`${w.url}/v1/alerts/alertmanager`, {
        method: 'POST',
        headers: { ...json, ...bearer(TOKEN) },
        body: alert,
      });
      assert.equal(posted.status, 202, JSON.stringify(posted.body));
      const acted = await send(`${w.url}/v1/automation/pause`, {
        method: 'POST',
        headers: { ...json, ...bearer(OPERATOR_TOKEN) },
        body: '{"reason":"window"}',
      });
      assert.deepEqual([acted.status, acted.body.by], [200, 'chatops-alice']);
      const read = await send(`${w.url}/v1/remediations`, { headers: bearer(OPERATOR_TOKEN) });
      assert.equal(read.status, 200);

      for (const token of [TOKEN, unscoped]) {
        for (const [method, url] of [
          ['POST', '/v1/automation/pause'],
          ['POST', '/v1/automation/reset-breaker'],
          ['POST', '/v1/remediations/gpu-node-2/approve'],
          ['GET', '/v1/remediations'],
          ['GET', '/v1/remediations/gpu-node-2'],
        ]) {
          const res = await send(`${w.url}${url}`, { method, headers: bearer(token) });
          assert.equal(res.status, 403, `${url}: ${JSON.stringify(res.body)}`);
          assert.match(
            String(res.body.error),
            /lacks the "operator" scope that operator actions and reads need/,
          );
        }
      }
      const wrongWay = await send(`${w.url}/v1/alerts/alertmanager`, {
        method: 'POST',
        headers: { ...json, ...bearer(OPERATOR_TOKEN) },
        body: alert,
      });
      assert.equal(wrongWay.status, 403);
      assert.match(String(wrongWay.body.error), /credential chatops-alice lacks the "alerts" scope/);
      assert.deepEqual(operator.calls, [
        ['setPaused', true, { by: 'chatops-alice', reason: 'window' }],
        ['list', {}],
        ['budget'],
      ]);
      // The unscoped credential is named once, at start, and still posts alerts.
      const warned = lines.filter((l) => l.credential !== undefined);
      assert.deepEqual(
        warned.map((l) => [l.level, l.credential]),
        [[40, 'legacy']],
      );
      assert.match(String(warned[0]?.msg), /names no scope: it may post alerts only/);
      const legacy = await send(`${w.url}/v1/alerts?dryRun=true`, {
        method: 'POST',
        headers: { ...json, ...bearer(unscoped) },
        body: '{"alerts":[{"alertName":"GpuXidError","node":"gpu-node-2","xid":79}]}',
      });
      assert.equal(legacy.status, 200, JSON.stringify(legacy.body));
    } finally {
      await w.close();
    }
  });

  it('HMAC covers method, path, query, timestamp and body; a moved or replayed signature is refused', async () => {
    const w = await startWebhookServer(deps());
    try {
      const body = '{"alerts":[{"alertName":"GpuXidError","node":"gpu-node-2","xid":79}]}';
      const ts = Math.floor(Date.now() / 1000);
      const headers = {
        ...json,
        [KEY_ID_HEADER]: 'other-source',
        [TIMESTAMP_HEADER]: String(ts),
        [SIGNATURE_HEADER]: signRequest(HMAC_SECRET, ts, {
          method: 'POST',
          target: '/v1/alerts?dryRun=true',
          body,
        }),
      };
      // The same signature on the same path without the query would act instead of answering a dry run.
      const moved = await send(`${w.url}/v1/alerts`, { method: 'POST', headers, body });
      assert.equal(moved.status, 401);
      assert.match(String(moved.body.error), /does not match the request/);
      const ok = await send(`${w.url}/v1/alerts?dryRun=true`, { method: 'POST', headers, body });
      assert.deepEqual([ok.status, ok.body.caller], [200, 'other-source']);
      const replay = await send(`${w.url}/v1/alerts?dryRun=true`, { method: 'POST', headers, body });
      assert.equal(replay.status, 401);
      assert.match(String(replay.body.error), /replayed request/);
      // A signed read: no body, the query signed.
      const target = '/v1/remediations?limit=5';
      const read = await send(`${w.url}${target}`, {
        headers: {
          [KEY_ID_HEADER]: 'other-source',
          [TIMESTAMP_HEADER]: String(ts),
          [SIGNATURE_HEADER]: signRequest(HMAC_SECRET, ts, { method: 'GET', target, body: '' }),
        },
      });
      assert.equal(read.status, 200, JSON.stringify(read.body));
    } finally {
      await w.close();
    }
  });

  it('failed authentications are limited per source; other sources are not slowed', async () => {
    const w = await startWebhookServer(deps({ limits: { authFailureMax: 10, authFailureWindowMs: 60_000 } }));
    try {
      const from = (localAddress: string, token: string) =>
        send(`${w.url}/v1/alerts/alertmanager`, {
          method: 'POST',
          headers: { ...json, ...bearer(token) },
          body: alert,
          localAddress,
        });
      const statuses: number[] = [];
      for (let i = 0; i < 11; i++)
        statuses.push((await from('127.0.0.2', 'wrong-token-0123456789abcdef')).status);
      assert.deepEqual(statuses, [...Array<number>(10).fill(401), 429]);
      // Blocked: even the right token from that source waits, so the block tells a guesser nothing.
      const blocked = await from('127.0.0.2', TOKEN);
      assert.equal(blocked.status, 429);
      assert.match(
        String(blocked.body.error),
        /too many failed authentications from this address: retry in \d+ s/,
      );
      const retryAfter = Number(blocked.headers['retry-after']);
      assert.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After ${retryAfter}`);
      const other = await from('127.0.0.1', TOKEN);
      assert.equal(other.status, 202, JSON.stringify(other.body));
      const metrics = await send(w.metricsUrl);
      assert.match(
        String(metrics.body.raw),
        /fleetmedic_webhook_auth_failures_total\{reason="wrong-token"\} 10/,
      );
      assert.match(
        String(metrics.body.raw),
        /fleetmedic_webhook_auth_failures_total\{reason="too-many-failures"\} 2/,
      );
    } finally {
      await w.close();
    }
  });

  it('5xx answers carry a generic message and the request ID; the details are in the log under it', async () => {
    const { logger, lines } = capturedLogger();
    const starter = new FakeStarter();
    starter.fail = new Error('14 UNAVAILABLE: dns resolution failed for temporal-frontend.internal:7233');
    const operator = new FakeOperator();
    operator.fail = new Error('TypeError: cannot read secret-detail of undefined');
    const w = await startWebhookServer(deps({ starter, operator, logger }));
    try {
      const down = await send(`${w.url}/v1/alerts/alertmanager`, {
        method: 'POST',
        headers: { ...json, ...bearer(TOKEN) },
        body: alert,
      });
      assert.equal(down.status, 503);
      assert.equal(down.headers['retry-after'], '5');
      const id = down.headers['x-request-id'];
      assert.match(String(id), /^[0-9a-f-]{36}$/);
      assert.deepEqual(down.body, { error: UNAVAILABLE_MESSAGE, requestId: id });
      const logged = lines.filter((l) => l.requestId === id);
      assert.ok(
        logged.some((l) => /temporal-frontend\.internal/.test(JSON.stringify(l))),
        'the details are not in the log',
      );

      const bug = await send(`${w.url}/v1/remediations/gpu-node-2`, { headers: bearer(OPERATOR_TOKEN) });
      assert.equal(bug.status, 500);
      assert.deepEqual(bug.body, { error: 'internal error', requestId: bug.headers['x-request-id'] });
      const bugLine = lines.find((l) => l.requestId === bug.headers['x-request-id'] && l.level === 50);
      assert.match(JSON.stringify(bugLine), /secret-detail/);

      // Below 500 the answer still says what was wrong, with a request ID in the header.
      const bad = await send(`${w.url}/v1/alerts/alertmanager`, {
        method: 'POST',
        headers: { ...json, ...bearer(TOKEN) },
        body: '{"alerts": [',
      });
      assert.equal(bad.status, 400);
      assert.match(String(bad.body.error), /malformed JSON/);
      assert.match(String(bad.headers['x-request-id']), /^[0-9a-f-]{36}$/);
      assert.notEqual(bad.headers['x-request-id'], id);
    } finally {
      await w.close();
    }
  });

  describe('TLS listener', () => {
    let dir: string;
    let pki: TestPki;
    before(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-webhook-tls-'));
      pki = await generatePki(dir);
    });
    after(async () => {
      await fs.rm(dir, { recursive: true, force: true });
    });

    it('serves HTTPS to a client trusting the CA, and nothing to one that does not or speaks plain HTTP', async () => {
      const w = await startWebhookServer(
        deps({ tls: { cert: await fs.readFile(pki.serverCert), key: await fs.readFile(pki.serverKey) } }),
      );
      try {
        assert.match(w.url, /^https:\/\/127\.0\.0\.1:\d+$/);
        const ca = await fs.readFile(pki.ca);
        const ok = await send(`${w.url}/v1/alerts/alertmanager`, {
          method: 'POST',
          headers: { ...json, ...bearer(TOKEN) },
          body: alert,
          ca,
        });
        assert.equal(ok.status, 202, JSON.stringify(ok.body));
        await assert.rejects(
          send(`${w.url}/healthz`),
          /self-signed certificate|unable to verify|certificate/i,
        );
        await assert.rejects(send(`${w.url.replace('https:', 'http:')}/healthz`));
      } finally {
        await w.close();
      }
    });
  });

  it('/metrics: on its own loopback listener when asked; never unauthenticated on a public address unless allowed', async () => {
    const w = await startWebhookServer(deps({ metricsListener: { port: 0 } }));
    try {
      assert.match(w.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      assert.notEqual(new URL(w.metricsUrl).port, new URL(w.url).port);
      const m = await send(w.metricsUrl);
      assert.equal(m.status, 200);
      assert.match(String(m.body.raw), /fleetmedic_webhook_alerts_total/);
      assert.equal((await send(`${w.url}/metrics`)).status, 404, 'the webhook still serves /metrics');
      assert.equal((await send(`${w.url}/healthz`)).status, 200);
    } finally {
      await w.close();
    }
    // Refused before anything binds: the checks come first.
    await assert.rejects(
      startWebhookServer(deps({ host: '0.0.0.0' })),
      /\/metrics would be served on 0\.0\.0\.0.*--allow-unauthenticated-metrics/,
    );
    await assert.rejects(
      startWebhookServer(deps({ metricsListener: { host: '0.0.0.0', port: 0 } })),
      /\/metrics would be served on 0\.0\.0\.0/,
    );
  });
});
