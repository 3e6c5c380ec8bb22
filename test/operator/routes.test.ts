import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OperatorError, type NodeRemediation } from '../../src/client/operator-client.js';
import { signRequest } from '../../src/webhook/auth.js';
import { UNAVAILABLE_MESSAGE } from '../../src/webhook/server.js';
import { BUDGET, FakeOperator } from './fake-operator.js';
import { AUTH, HMAC_SECRET, harness, OPERATOR_TOKEN, TOKEN } from '../webhook/helpers.js';

async function setup(auth = AUTH) {
  const operator = new FakeOperator();
  const { app } = await harness({ operator, auth });
  const request = async (
    method: 'GET' | 'POST',
    url: string,
    options: { payload?: string; headers?: Record<string, string> } = {},
  ) => {
    const res = await app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, ...options.headers },
      ...(options.payload !== undefined && { payload: options.payload }),
    });
    return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
  };
  const json = (payload: unknown) => ({
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    headers: { 'content-type': 'application/json' },
  });
  return { app, operator, request, json };
}

// The HTTP operator routes with a fake operator service: input checking, identity and status codes.
// The real service against the embedded stack is in operator.e2e.test.ts.
describe('operator routes', () => {
  it('records the credential as the identity, for a token and for an HMAC key', async () => {
    const { app, operator, request, json } = await setup();
    const ok = await request('POST', '/v1/remediations/gpu-node-2/approve', json({ reason: 'ok' }));
    assert.equal(ok.status, 200);
    assert.equal(ok.body.by, 'chatops-alice');
    const body = '{"reason":"signed"}';
    const ts = Math.floor(Date.now() / 1000);
    const signed = await app.inject({
      method: 'POST',
      url: '/v1/automation/pause',
      headers: {
        'content-type': 'application/json',
        'x-fleetmedic-key-id': 'other-source',
        'x-fleetmedic-timestamp': String(ts),
        'x-fleetmedic-signature': signRequest(HMAC_SECRET, ts, {
          method: 'POST',
          target: '/v1/automation/pause',
          body,
        }),
      },
      payload: body,
    });
    assert.equal(signed.statusCode, 200, signed.body);
    assert.deepEqual(operator.calls, [
      ['decide', 'gpu-node-2', 'approve', { by: 'chatops-alice', reason: 'ok' }],
      ['setPaused', true, { by: 'other-source', reason: 'signed' }],
    ]);
    // The same signature on another route does not match it (the path is signed), and again is a replay.
    const headers = {
      'content-type': 'application/json',
      'x-fleetmedic-key-id': 'other-source',
      'x-fleetmedic-timestamp': String(ts),
      'x-fleetmedic-signature': signRequest(HMAC_SECRET, ts, {
        method: 'POST',
        target: '/v1/automation/pause',
        body,
      }),
    };
    const moved = await app.inject({ method: 'POST', url: '/v1/automation/resume', headers, payload: body });
    assert.equal(moved.statusCode, 401);
    assert.match(moved.body, /does not match the request/);
    const replayed = await app.inject({
      method: 'POST',
      url: '/v1/automation/pause',
      headers,
      payload: body,
    });
    assert.equal(replayed.statusCode, 401);
    assert.match(replayed.body, /replayed request/);
    await app.close();
  });

  it('refuses bad input with what was wrong, and acts on none of it', async () => {
    const { app, operator, request, json } = await setup();
    const cases: [string, 'GET' | 'POST', string, ReturnType<typeof json> | undefined, RegExp][] = [
      [
        'a body `by`',
        'POST',
        '/v1/remediations/gpu-node-2/approve',
        json({ by: 'mallory' }),
        /body\.by is not accepted/,
      ],
      [
        'an unknown field',
        'POST',
        '/v1/automation/pause',
        json({ reason: 'x', force: true }),
        /body: Unrecognized key.*force/,
      ],
      ['a reason that is not a string', 'POST', '/v1/automation/pause', json({ reason: 7 }), /body\.reason/],
      ['an empty reason', 'POST', '/v1/automation/pause', json({ reason: '  ' }), /reason must not be empty/],
      [
        'a reason too long',
        'POST',
        '/v1/automation/pause',
        json({ reason: 'x'.repeat(1001) }),
        /at most 1000/,
      ],
      ['a body that is an array', 'POST', '/v1/automation/pause', json([]), /body/],
      ['malformed JSON', 'POST', '/v1/automation/pause', json('{"reason": '), /malformed JSON/],
      ['an empty JSON body', 'POST', '/v1/automation/pause', json(''), /empty body/],
      [
        'a node name with capitals',
        'POST',
        '/v1/remediations/GPU-7/approve',
        json({}),
        /params\.node: a node name is a DNS-1123/,
      ],
      ['a node name with a quote', 'GET', "/v1/remediations/gpu'7", undefined, /params\.node/],
      ['an unknown phase', 'GET', '/v1/remediations?phase=sleeping', undefined, /query\.phase/],
      [
        'an unknown query parameter',
        'GET',
        '/v1/remediations?sort=age',
        undefined,
        /query: Unrecognized key/,
      ],
      ['a bad limit', 'GET', '/v1/remediations?limit=0', undefined, /query\.limit/],
    ];
    for (const [what, method, url, options, message] of cases) {
      const res = await request(method, url, options);
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
      assert.match(String(res.body.error), message, what);
    }
    assert.deepEqual(operator.calls, []);
    const unknown = await request('POST', '/v1/remediations/gpu-node-2/explode', json({}));
    assert.equal(unknown.status, 404);
    await app.close();
  });

  it('maps refusals, missing remediations and an unreachable Temporal to 409, 404 and 503', async () => {
    const { app, operator, request } = await setup();
    for (const [kind, status] of [
      ['refused', 409],
      ['not-found', 404],
      ['unavailable', 503],
      ['invalid', 400],
    ] as const) {
      operator.fail = new OperatorError(kind, `the ${kind} message`);
      const res = await request('POST', '/v1/remediations/gpu-node-2/reject');
      assert.equal(res.status, status, kind);
      // A 5xx says nothing of what failed: that is in the log, under the request ID.
      assert.equal(res.body.error, status === 503 ? UNAVAILABLE_MESSAGE : `the ${kind} message`);
    }
    operator.fail = new Error('a bug');
    const bug = await request('GET', '/v1/remediations/gpu-node-2');
    assert.equal(bug.status, 500);
    assert.equal(bug.body.error, 'internal error');
    assert.match(String(bug.body.requestId), /^[0-9a-f-]{36}$/);
    await app.close();
  });

  it('routes every decision, retry-drain as retry, with the caller as the identity', async () => {
    const { app, operator, request, json } = await setup();
    const routes = [
      ['approve', 'approve'],
      ['reject', 'reject'],
      ['mark-repaired', 'mark-repaired'],
      ['release', 'release'],
      ['retry', 'retry'],
      ['retry-drain', 'retry'],
    ] as const;
    for (const [route, action] of routes) {
      const res = await request(
        'POST',
        `/v1/remediations/gpu-node-2/${route}`,
        json({ reason: `why ${route}` }),
      );
      assert.equal(res.status, 200, `${route}: ${JSON.stringify(res.body)}`);
      assert.deepEqual(res.body, {
        node: 'gpu-node-2',
        action,
        by: 'chatops-alice',
        reason: `why ${route}`,
        result: `${action} accepted for gpu-node-2`,
      });
    }
    // Without a body the decision carries no reason.
    assert.equal((await request('POST', '/v1/remediations/gpu-node-3/release')).status, 200);
    assert.deepEqual(operator.calls, [
      ...routes.map(([route, action]) => [
        'decide',
        'gpu-node-2',
        action,
        { by: 'chatops-alice', reason: `why ${route}` },
      ]),
      ['decide', 'gpu-node-3', 'release', { by: 'chatops-alice' }],
    ]);
    await app.close();
  });

  it('refuses release and retry to a credential without the operator scope, and a body naming someone', async () => {
    const { app, operator, json } = await setup();
    for (const route of ['release', 'retry', 'retry-drain']) {
      const res = await app.inject({
        method: 'POST',
        url: `/v1/remediations/gpu-node-2/${route}`,
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(res.statusCode, 403, route);
      assert.match(
        String((JSON.parse(res.body) as { error: string }).error),
        /credential alertmanager lacks the "operator" scope/,
        route,
      );
      const named = await app.inject({
        method: 'POST',
        url: `/v1/remediations/gpu-node-2/${route}`,
        headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, ...json({}).headers },
        payload: JSON.stringify({ by: 'mallory', reason: 'x' }),
      });
      assert.equal(named.statusCode, 400, route);
      assert.match(named.body, /body\.by is not accepted/, route);
    }
    assert.deepEqual(operator.calls, []);
    await app.close();
  });

  it("answers a refused release or retry with 409 and the workflow's message, no open run with 404 or 409", async () => {
    const { app, operator, request } = await setup();
    const refused =
      'retry refused: node gpu-node-2 is not waiting for retry (phase quarantined; it accepts mark-repaired, release)';
    operator.fail = new OperatorError('refused', refused);
    const retry = await request('POST', '/v1/remediations/gpu-node-2/retry-drain');
    assert.equal(retry.status, 409);
    assert.equal(retry.body.error, refused);
    const ended =
      'release refused: node gpu-node-2 has no open remediation to release: its last one has ended ' +
      '(completed, outcome returned-to-service; ...)';
    operator.fail = new OperatorError('refused', ended);
    assert.deepEqual(await request('POST', '/v1/remediations/gpu-node-2/release'), {
      status: 409,
      body: { error: ended },
    });
    operator.fail = new OperatorError(
      'not-found',
      'release refused: node gpu-node-9 has no open remediation',
    );
    assert.equal((await request('POST', '/v1/remediations/gpu-node-9/release')).status, 404);
    await app.close();
  });

  it('shows the decisions a run accepts now in the node JSON', async () => {
    const { app, operator, request } = await setup();
    const held: NodeRemediation = {
      workflowId: 'remediation/fmunit/gpu-node-2',
      runId: 'run-1',
      status: 'RUNNING',
      startedAt: '2025-01-01T00:00:00.000Z',
      closedAt: null,
      ageSeconds: 60,
      remediation: null,
      actions: ['retry', 'mark-repaired', 'reject', 'release'],
      phase: 'quarantined',
      outcome: null,
    };
    operator.nodes.set('gpu-node-2', held);
    const res = await request('GET', '/v1/remediations/gpu-node-2');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.actions, ['retry', 'mark-repaired', 'reject', 'release']);
    await app.close();
  });

  it('passes list filters through and answers without a body', async () => {
    const { app, operator, request } = await setup();
    const res = await request(
      'GET',
      '/v1/remediations?all=true&phase=awaiting-approval&node=gpu-node-2&limit=5',
    );
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { remediations: [], budget: BUDGET });
    assert.equal((await request('POST', '/v1/automation/resume')).status, 200);
    assert.deepEqual(operator.calls, [
      ['list', { all: true, phase: 'awaiting-approval', node: 'gpu-node-2', limit: 5 }],
      ['budget'],
      ['setPaused', false, { by: 'chatops-alice' }],
    ]);
    await app.close();
  });

  it('refuses operator routes with 403 when no credential is configured', async () => {
    const { app, operator } = await setup({ tokens: [], hmacKeys: [] });
    const res = await app.inject({ method: 'POST', url: '/v1/automation/pause' });
    assert.equal(res.statusCode, 403);
    assert.match(res.body, /operator actions need a configured credential/);
    assert.equal((await app.inject({ method: 'GET', url: '/v1/remediations' })).statusCode, 403);
    assert.deepEqual(operator.calls, []);
    await app.close();
  });

  it('has no operator routes when the server is built without an operator service', async () => {
    const { app } = await harness();
    const res = await app.inject({
      method: 'GET',
      url: '/v1/remediations',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(res.statusCode, 404);
    await app.close();
  });

  it('release of a node a drill cordoned goes to the drill reaper: reverted, or refused while the drill runs', async () => {
    const operator = new FakeOperator();
    const asked: string[] = [];
    const releaseDrill = (node: string) => {
      asked.push(node);
      if (node === 'gpu-node-7')
        return Promise.resolve('release gpu-node-7: uncordoned (drill nightly is closed)');
      if (node === 'gpu-node-8') {
        return Promise.reject(
          new OperatorError(
            'refused',
            'release refused: node gpu-node-8 is cordoned by drill d2: `fleetmedic drill-cancel d2`',
          ),
        );
      }
      return Promise.resolve(undefined);
    };
    const { app } = await harness({ operator, auth: AUTH, releaseDrill });
    const post = async (url: string) => {
      const res = await app.inject({
        method: 'POST',
        url,
        headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
      });
      return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
    };
    const reverted = await post('/v1/remediations/gpu-node-7/release');
    assert.equal(reverted.status, 200);
    assert.equal(reverted.body.result, 'release gpu-node-7: uncordoned (drill nightly is closed)');
    assert.equal(reverted.body.by, 'chatops-alice');
    const refused = await post('/v1/remediations/gpu-node-8/release');
    assert.equal(refused.status, 409);
    assert.match(String(refused.body.error), /fleetmedic drill-cancel d2/);
    // No drill on the node: the release goes to its remediation; other decisions never ask the reaper.
    assert.equal((await post('/v1/remediations/gpu-node-2/release')).status, 200);
    assert.equal((await post('/v1/remediations/gpu-node-7/approve')).status, 200);
    assert.deepEqual(asked, ['gpu-node-7', 'gpu-node-8', 'gpu-node-2']);
    assert.deepEqual(
      operator.calls.map((c) => c.slice(0, 3)),
      [
        ['decide', 'gpu-node-2', 'release'],
        ['decide', 'gpu-node-7', 'approve'],
      ],
    );
  });
});
