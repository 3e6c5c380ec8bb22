import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { KEY_ID_HEADER, SIGNATURE_HEADER, signRequest, TIMESTAMP_HEADER } from '../../src/webhook/auth.js';
import { HMAC_SECRET, harness, post, type Harness, xidPayload } from './helpers.js';

// Every kind of bad input the issue lists, one test each: the answer is a 4xx that says what was
// wrong, nothing is started, and the server keeps serving.
describe('webhook: bad input is refused with a clear error and starts nothing', () => {
  let h: Harness;
  const NOW = 1_800_000_000_000;
  beforeEach(async () => {
    h = await harness({ clock: () => NOW, limits: { bodyLimitBytes: 64 * 1024, rateLimitMax: 1000 } });
  });
  afterEach(async () => {
    assert.equal(h.starter.calls, 0, 'a workflow was started or signalled from invalid input');
    const health = await h.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(health.statusCode, 200, 'the server stopped answering');
    await h.app.close();
  });

  it('malformed JSON -> 400 with the parser position', async () => {
    const res = await post(h.app, '{"alerts": [ {"status": "firing", ');
    assert.equal(res.status, 400);
    assert.match(String(res.body.error), /^malformed JSON: .*(Unexpected end|JSON)/);
  });

  it('an empty body -> 400', async () => {
    const res = await post(h.app, '');
    assert.equal(res.status, 400);
    assert.match(String(res.body.error), /empty body/);
  });

  it('JSON that is not a payload (a string, null, an array) -> 400', async () => {
    for (const body of ['"hello"', 'null', '[1,2]', '42']) {
      const res = await post(h.app, body);
      assert.equal(res.status, 400, body);
      assert.match(String(res.body.error), /invalid Alertmanager webhook v4 payload/);
    }
  });

  it('wrong types -> 400 naming the field', async () => {
    const body = xidPayload('gpu-node-2') as unknown as { alerts: Record<string, unknown>[] };
    body.alerts[0]!.labels = { alertname: 'GpuXidCritical', Hostname: 'gpu-node-2', gpu: 3 };
    body.alerts[0]!.status = true;
    const res = await post(h.app, body);
    assert.equal(res.status, 400);
    assert.match(String(res.body.error), /alerts\[0\]\.status: .* \(and 1 more\)/);
    const issues = res.body.issues as { path: string; message: string }[];
    assert.deepEqual(issues.map((i) => i.path).sort(), ['alerts[0].labels.gpu', 'alerts[0].status']);
  });

  it('the generic form with wrong types -> 400 naming the field', async () => {
    const res = await post(
      h.app,
      { alerts: [{ alertName: 'GpuXidError', node: 'gpu-node-2', xid: 'seventy-nine' }] },
      { url: '/v1/alerts' },
    );
    assert.equal(res.status, 400);
    assert.match(String(res.body.error), /invalid generic alert payload: alerts\[0\]\.xid/);
  });

  it('a missing node label -> 422 listing the labels looked for', async () => {
    const body = xidPayload('gpu-node-2');
    delete body.alerts[0]!.labels.Hostname;
    const res = await post(h.app, body);
    assert.equal(res.status, 422);
    assert.match(
      String(res.body.error),
      /no usable alert: no node label: expected one of Hostname, hostname, exported_Hostname/,
    );
    assert.deepEqual(
      (res.body.ignored as { code: string }[]).map((o) => o.code),
      ['invalid'],
    );
  });

  it('a node label that is not a node name -> 422', async () => {
    const res = await post(h.app, xidPayload('GPU_NODE;rm -rf'));
    assert.equal(res.status, 422);
    assert.match(String(res.body.error), /Hostname="GPU_NODE;rm -rf" is not a valid Kubernetes node name/);
  });

  it('an unknown alert name -> 202 that says no rule matches it, and starts nothing', async () => {
    const body = xidPayload('gpu-node-2');
    body.alerts[0]!.labels.alertname = 'SomethingElse';
    const res = await post(h.app, body);
    assert.equal(res.status, 202);
    assert.deepEqual(res.body.workflowIds, []);
    const [ignored] = res.body.ignored as { code: string; reason: string }[];
    assert.equal(ignored?.code, 'no-rule');
    assert.match(ignored?.reason ?? '', /no rule matches alert SomethingElse/);
  });

  it('a node that does not exist -> 202 that says so, and starts nothing', async () => {
    const res = await post(h.app, xidPayload('no-such-node'));
    assert.equal(res.status, 202);
    assert.match(
      (res.body.ignored as { reason: string }[])[0]?.reason ?? '',
      /node no-such-node does not exist/,
    );
  });

  it('an oversized body -> 413 with the limit', async () => {
    const body = xidPayload('gpu-node-2');
    body.alerts[0]!.labels.padding = 'x'.repeat(70 * 1024);
    const res = await post(h.app, body);
    assert.equal(res.status, 413);
    assert.match(String(res.body.error), /body larger than the limit of 65536 bytes/);
  });

  it('a wrong content type -> 415', async () => {
    const res = await post(h.app, JSON.stringify(xidPayload()), {
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(res.status, 415);
    assert.match(String(res.body.error), /send application\/json/);
  });

  it('a __proto__ key (prototype poisoning) -> 400', async () => {
    const res = await post(h.app, '{"alerts":[{"status":"firing","labels":{"__proto__":{"x":1}}}]}');
    assert.equal(res.status, 400);
    assert.match(String(res.body.error), /refused JSON/);
  });

  it('a missing token -> 401', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/alerts/alertmanager',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(xidPayload()),
    });
    assert.equal(res.statusCode, 401);
    assert.match(
      res.json<{ error: string }>().error,
      /credentials required: an "Authorization: Bearer <token>" header/,
    );
  });

  it('a wrong token -> 401', async () => {
    const res = await post(h.app, xidPayload(), {
      headers: { authorization: 'Bearer not-the-token-0123456789' },
    });
    assert.equal(res.status, 401);
    assert.match(String(res.body.error), /unknown bearer token/);
  });

  it('a malformed Authorization header (Basic) -> 401', async () => {
    const res = await post(h.app, xidPayload(), { headers: { authorization: 'Basic YWxpY2U6c2VjcmV0' } });
    assert.equal(res.status, 401);
    assert.match(String(res.body.error), /must be "Bearer <token>"/);
  });

  function signed(body: string, ts = Math.floor(NOW / 1000), secret = HMAC_SECRET) {
    return {
      'content-type': 'application/json',
      [KEY_ID_HEADER]: 'other-source',
      [TIMESTAMP_HEADER]: String(ts),
      [SIGNATURE_HEADER]: signRequest(secret, ts, {
        method: 'POST',
        target: '/v1/alerts/alertmanager',
        body,
      }),
    };
  }

  it('a wrong signature -> 401', async () => {
    const body = JSON.stringify(xidPayload());
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/alerts/alertmanager',
      headers: signed(body, undefined, 'wrong-secret-0123456789abcdef'),
      payload: body,
    });
    assert.equal(res.statusCode, 401);
    assert.match(res.json<{ error: string }>().error, /signature does not match the request/);
  });

  it('a signature over a different body -> 401', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/alerts/alertmanager',
      headers: signed(JSON.stringify(xidPayload('gpu-node-1'))),
      payload: JSON.stringify(xidPayload('gpu-node-2')),
    });
    assert.equal(res.statusCode, 401);
  });

  it('a stale signed request -> 401', async () => {
    const body = JSON.stringify({ alerts: [] });
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/alerts/alertmanager',
      headers: signed(body, Math.floor(NOW / 1000) - 3600),
      payload: body,
    });
    assert.equal(res.statusCode, 401);
    assert.match(res.json<{ error: string }>().error, /3600 s away from the server's clock/);
  });

  it('a replayed signed request -> 401 (the original was authenticated)', async () => {
    // An invalid payload, so the original is authenticated but starts nothing either.
    const body = JSON.stringify({ alerts: [] });
    const headers = signed(body);
    const first = await h.app.inject({
      method: 'POST',
      url: '/v1/alerts/alertmanager',
      headers,
      payload: body,
    });
    assert.equal(first.statusCode, 400, 'the original should pass authentication');
    const replay = await h.app.inject({
      method: 'POST',
      url: '/v1/alerts/alertmanager',
      headers,
      payload: body,
    });
    assert.equal(replay.statusCode, 401);
    assert.match(replay.json<{ error: string }>().error, /replayed request/);
  });

  it('too many requests from one caller -> 429', async () => {
    const limited = await harness({ limits: { rateLimitMax: 3, rateLimitWindowMs: 60_000 } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await post(limited.app, '{')).status);
      assert.deepEqual(statuses, [400, 400, 400, 429, 429]);
      const res = await post(limited.app, '{');
      assert.match(String(res.body.error), /rate limit exceeded: at most 3 requests per 1 minute/);
    } finally {
      await limited.app.close();
    }
  });

  it('an unknown route -> 404', async () => {
    const res = await post(h.app, xidPayload(), { url: '/v2/alerts' });
    assert.equal(res.status, 404);
    assert.match(String(res.body.error), /no route POST \/v2\/alerts/);
  });
});
