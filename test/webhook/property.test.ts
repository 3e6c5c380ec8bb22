import fc from 'fast-check';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { harness, TOKEN, xidPayload, type Harness } from './helpers.js';

type Json = Record<string, unknown>;

/** One defect that makes an Alertmanager alert unusable, whatever else it carries. */
const alertDefect = fc.constantFrom(
  (a: Json) => {
    const labels = { ...(a.labels as Json) };
    for (const k of ['Hostname', 'hostname', 'node', 'kubernetes_node']) delete labels[k];
    return { ...a, labels };
  },
  (a: Json) => ({ ...a, labels: { ...(a.labels as Json), Hostname: 'NOT A NODE' } }),
  (a: Json) => ({ ...a, labels: { ...(a.labels as Json), xid: 'x79' } }),
  (a: Json) => ({ ...a, labels: { ...(a.labels as Json), gpu: '3.5' } }),
  (a: Json) => ({ ...a, labels: { ...(a.labels as Json), gpu: 3 } }),
  (a: Json) => ({ ...a, status: 'pending' }),
  (a: Json) => ({ ...a, status: 1 }),
  (a: Json) => ({ ...a, startsAt: 'not-a-time' }),
  (a: Json) => {
    const labels = { ...(a.labels as Json) };
    delete labels.alertname;
    return { ...a, labels };
  },
  (a: Json) => ({ ...a, labels: 'Hostname=gpu-node-2' }),
  (a: Json) => {
    const copy = { ...a };
    delete copy.labels;
    return copy;
  },
);

/** A payload in which every alert has a defect (plus random extra fields, which must be ignored). */
const brokenAlertmanager = fc
  .tuple(
    fc.array(fc.tuple(alertDefect, fc.constantFrom('gpu-node-1', 'gpu-node-2', 'gpu-node-3')), {
      minLength: 1,
      maxLength: 5,
    }),
    fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
  )
  .map(([defects, extra]) => {
    const base = xidPayload();
    return {
      ...extra,
      ...base,
      alerts: defects.map(([defect, node]) =>
        defect({ ...base.alerts[0]!, labels: { ...base.alerts[0]!.labels, Hostname: node } }),
      ),
    };
  });

/** Payload-level defects: wrong version, alerts not a list, empty, too many. */
const brokenEnvelope = fc.constantFrom<unknown>(
  { ...xidPayload(), version: '3' },
  { ...xidPayload(), alerts: {} },
  { ...xidPayload(), alerts: [] },
  { ...xidPayload(), alerts: null },
  { receiver: 'x' },
);

/** Generic-form alerts that are each wrong in one field. */
const brokenGeneric = fc
  .record({
    alertName: fc.oneof(fc.constant(''), fc.integer(), fc.constant('GpuXidError')),
    node: fc.oneof(
      fc.constant('Bad Node'),
      fc.constant(''),
      fc.integer(),
      fc.string({ maxLength: 3 }).map((s) => `${s}_`),
    ),
    xid: fc.oneof(fc.string(), fc.double(), fc.constant(-1)),
    gpu: fc.oneof(fc.string(), fc.constant(-1), fc.constant(5000)),
  })
  .map((a) => ({ alerts: [a] }));

/**
 * Well-formed alerts with random labels, some naming a rule's alert on a node that must not be
 * touched (opted out, or unknown to the cluster): accepted, but nothing may start.
 */
const randomLabels = fc
  .array(
    fc.record({
      status: fc.constantFrom('firing', 'resolved'),
      labels: fc
        .tuple(
          fc.dictionary(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), { maxKeys: 6 }),
          fc.constantFrom('gpu-node-4', 'unknown-node', 'gpu-node-9.example'),
          fc.oneof(fc.constant('GpuXidCritical'), fc.constant('GpuHealth'), fc.string({ maxLength: 12 })),
        )
        .map(([labels, node, alertname]) => ({ ...labels, Hostname: node, alertname })),
      fingerprint: fc.stringMatching(/^[0-9a-f]{0,16}$/),
    }),
    { minLength: 1, maxLength: 4 },
  )
  .map((alerts) => ({ version: '4', alerts }));

const input = fc.oneof(
  {
    arbitrary: brokenAlertmanager.map((b) => ({
      url: '/v1/alerts/alertmanager',
      body: JSON.stringify(b),
      invalid: true,
    })),
    weight: 4,
  },
  {
    arbitrary: brokenEnvelope.map((b) => ({
      url: '/v1/alerts/alertmanager',
      body: JSON.stringify(b),
      invalid: true,
    })),
    weight: 1,
  },
  {
    arbitrary: brokenGeneric.map((b) => ({ url: '/v1/alerts', body: JSON.stringify(b), invalid: true })),
    weight: 2,
  },
  {
    arbitrary: fc
      .tuple(fc.constantFrom('/v1/alerts/alertmanager', '/v1/alerts'), fc.jsonValue({ maxDepth: 4 }))
      .map(([url, v]) => ({
        url,
        body: JSON.stringify(v) ?? 'null',
        invalid: false,
      })),
    weight: 2,
  },
  {
    arbitrary: fc
      .tuple(fc.constantFrom('/v1/alerts/alertmanager', '/v1/alerts'), fc.string({ maxLength: 200 }))
      .map(([url, body]) => ({
        url,
        body,
        invalid: false,
      })),
    weight: 2,
  },
  {
    arbitrary: randomLabels.map((b) => ({
      url: '/v1/alerts/alertmanager',
      body: JSON.stringify(b),
      invalid: false,
    })),
    weight: 2,
  },
);

describe('webhook: 1,000 generated payloads', () => {
  let h: Harness;
  before(async () => {
    h = await harness({ limits: { rateLimitMax: 1_000_000 } });
  });
  after(async () => {
    await h?.app.close();
  });

  it('never answer 5xx, never start a workflow, always say what was wrong', async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(input, async ({ url, body, invalid }) => {
        const res = await h.app.inject({
          method: 'POST',
          url,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
          payload: body,
        });
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        assert.ok(res.statusCode < 500, `status ${res.statusCode} for ${body.slice(0, 200)}: ${res.body}`);
        assert.equal(h.starter.calls, 0, `a workflow was started from ${body.slice(0, 200)}`);
        const answer = res.json<{ error?: string; ignored?: { reason: string }[] }>();
        if (res.statusCode >= 400) {
          assert.ok(
            typeof answer.error === 'string' && answer.error.length > 10,
            `no error message: ${res.body}`,
          );
        } else {
          // Accepted, but every alert is listed as ignored or rejected, each with its reason.
          assert.ok(answer.ignored && answer.ignored.every((o) => o.reason.length > 0), res.body);
        }
        if (invalid)
          assert.ok(
            res.statusCode === 400 || res.statusCode === 422,
            `invalid payload got ${res.statusCode}: ${res.body}`,
          );
      }),
      { numRuns: 1000 },
    );
    const health = await h.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(health.statusCode, 200);
    // Every kind of answer was exercised, not only one.
    assert.ok(
      (statuses.get(400) ?? 0) > 100 && (statuses.get(422) ?? 0) > 20 && (statuses.get(202) ?? 0) > 50,
      JSON.stringify([...statuses]),
    );
  });
});
