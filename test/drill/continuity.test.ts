import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  classifyRecord,
  coverageGaps,
  DEFAULT_SLO,
  percentile,
  summarizeContinuity,
  type Outcome,
} from '../../src/drill/continuity.js';
import type { ProbeRecord } from '../../src/drill/probe-record.js';

const T0 = 1_800_000_000_000;

function rec(t: number, overrides: Partial<ProbeRecord> = {}): ProbeRecord {
  return {
    t: T0 + t,
    stream: false,
    status: 200,
    ok: true,
    latencyMs: 100,
    ttftMs: null,
    tokens: 16,
    tokensPerS: 160,
    replica: 'http://127.128.0.1:8080',
    fallback: false,
    attempts: 1,
    ...overrides,
  };
}
const streamRec = (t: number, o: Partial<ProbeRecord> = {}) => rec(t, { stream: true, ttftMs: 30, ...o });
const failed = (t: number, o: Partial<ProbeRecord> = {}) =>
  rec(t, { status: 503, ok: false, error: 'HTTP 503: no replica', ...o });

describe('continuity: how a request counts', () => {
  const table: [string, ProbeRecord, Outcome | undefined][] = [
    ['2xx, complete, within the SLO', rec(0), 'successful'],
    ['a stream within the SLO', streamRec(0), 'successful'],
    ['a fallback answer (header)', rec(0, { fallback: true }), 'degraded'],
    ['a fallback answer (replica "fallback")', rec(0, { replica: 'fallback' }), 'degraded'],
    ['slower than the total SLO', rec(0, { latencyMs: 10_001 }), 'degraded'],
    ['a stream whose first token came after 2 s', streamRec(0, { ttftMs: 2_001 }), 'degraded'],
    ['a stream with no content token', streamRec(0, { ttftMs: null }), 'degraded'],
    ['a non-streamed answer of 5 s (no TTFT for it)', rec(0, { latencyMs: 5_000 }), 'successful'],
    ['non-2xx', failed(0), 'failed'],
    [
      'a stream that broke after its 200',
      streamRec(0, { ok: false, error: 'the stream ended without data: [DONE]' }),
      'failed',
    ],
    ['a connection error', rec(0, { status: 0, ok: false, error: 'ECONNREFUSED' }), 'failed'],
    [
      'ok but with an error (inconsistent record): failed, never successful',
      rec(0, { error: 'x' }),
      'failed',
    ],
    ['a gap record: not a request', rec(0, { ok: false, status: 0, gap: true }), undefined],
    ['cut by the probe stop: not judged', rec(0, { ok: false, stopped: true }), undefined],
  ];
  for (const [what, r, outcome] of table) {
    it(`${what}: ${outcome ?? 'not counted'}`, () => assert.equal(classifyRecord(r, DEFAULT_SLO), outcome));
  }
});

describe('continuity: a window', () => {
  it('counts the requests that started in the window, overall and per kind, with gaps, the outage and percentiles', () => {
    const records = [
      rec(-10), // before the window
      rec(0),
      streamRec(50),
      failed(100),
      streamRec(150, { ok: false, status: 200, error: 'error event: stream_broken' }),
      failed(200),
      rec(250, { fallback: true, latencyMs: 300 }),
      rec(300, { ok: false, status: 0, gap: true, error: 'not sent' }),
      rec(350, { ok: false, status: 0, gap: true, error: 'not sent' }),
      rec(400),
      streamRec(450, { ttftMs: 50, latencyMs: 400 }),
      rec(1_000), // after the window
    ];
    const s = summarizeContinuity(records, { from: T0, to: T0 + 500 }, { expectedIntervalMs: 50 });
    assert.equal(s.requests, 8);
    assert.equal(s.successful, 4);
    assert.equal(s.degraded, 1);
    assert.equal(s.failed, 3);
    assert.equal(s.continuity, 0.5);
    assert.deepEqual(
      { ...s.streams },
      { requests: 3, successful: 2, degraded: 0, failed: 1, continuity: 2 / 3 },
    );
    assert.deepEqual(
      { ...s.nonStreamed },
      { requests: 5, successful: 2, degraded: 1, failed: 2, continuity: 0.4 },
    );
    assert.equal(s.unsent, 2);
    assert.deepEqual(s.gaps, [{ from: T0 + 250, to: T0 + 400, ms: 150 }]);
    assert.equal(s.gapMs, 150);
    assert.deepEqual(s.longestOutage, { from: T0 + 100, to: T0 + 250, ms: 150, failed: 3, ongoing: false });
    assert.deepEqual(s.latencyMs, { p50: 100, p99: 400 });
    assert.deepEqual(s.ttftMs, { p50: 30, p99: 50 });
  });

  it('an outage that lasts to the window end is ongoing and ends there', () => {
    const s = summarizeContinuity([rec(0), failed(50), failed(100)], { from: T0, to: T0 + 1_000 });
    assert.deepEqual(s.longestOutage, { from: T0 + 50, to: T0 + 1_000, ms: 950, failed: 2, ongoing: true });
  });

  it('an empty window has no continuity (null), one gap as long as the window, no outage', () => {
    const s = summarizeContinuity([], { from: T0, to: T0 + 1_000 });
    assert.equal(s.continuity, null);
    assert.deepEqual(s.gaps, [{ from: T0, to: T0 + 1_000, ms: 1_000 }]);
    assert.equal(s.longestOutage, null);
    assert.deepEqual(s.latencyMs, { p50: null, p99: null });
  });

  it('a probe that starts late or stops early leaves gaps at the window edges', () => {
    assert.deepEqual(coverageGaps([T0 + 500, T0 + 550], { from: T0, to: T0 + 1_000 }, 50), [
      { from: T0, to: T0 + 500, ms: 500 },
      { from: T0 + 550, to: T0 + 1_000, ms: 450 },
    ]);
  });

  it('percentiles are nearest-rank', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(values, 50), 50);
    assert.equal(percentile(values, 99), 99);
    assert.equal(percentile([7], 99), 7);
    assert.equal(percentile([], 50), null);
  });
});

const arbRecord = fc
  .record({
    t: fc.integer({ min: 0, max: 10_000 }).map((t) => T0 + t),
    stream: fc.boolean(),
    status: fc.constantFrom(0, 200, 200, 200, 429, 500, 503),
    ok: fc.boolean(),
    latencyMs: fc.integer({ min: 0, max: 20_000 }),
    ttftMs: fc.option(fc.integer({ min: 0, max: 5_000 }), { nil: null }),
    tokens: fc.nat(64),
    tokensPerS: fc.constant(null),
    replica: fc.constantFrom(null, 'http://127.0.0.1:1', 'fallback'),
    fallback: fc.boolean(),
    attempts: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
    error: fc.option(fc.constant('boom'), { nil: undefined }),
    gap: fc.option(fc.constant(true as const), { freq: 8, nil: undefined }),
    stopped: fc.option(fc.constant(true as const), { freq: 8, nil: undefined }),
  })
  .map((r) => {
    const { error, gap, stopped, ...rest } = r;
    return {
      ...rest,
      ...(error && { error }),
      ...(gap && { gap }),
      ...(stopped && { stopped }),
    };
  });
const WINDOW = { from: T0, to: T0 + 10_000 };

describe('continuity: properties', () => {
  it('continuity is in [0, 1], or null with no request', () => {
    fc.assert(
      fc.property(fc.array(arbRecord), (records) => {
        const s = summarizeContinuity(records, WINDOW);
        for (const c of [s.continuity, s.streams.continuity, s.nonStreamed.continuity]) {
          if (c !== null) assert.ok(c >= 0 && c <= 1);
        }
        assert.equal(s.continuity === null, s.requests === 0);
        assert.equal(s.requests, s.successful + s.degraded + s.failed);
        assert.equal(s.requests, s.streams.requests + s.nonStreamed.requests);
      }),
    );
  });

  it('adding a failed request never raises it', () => {
    fc.assert(
      fc.property(fc.array(arbRecord), arbRecord, (records, extra) => {
        const worse: ProbeRecord = {
          ...extra,
          ok: false,
          status: 503,
          error: 'HTTP 503',
          gap: undefined,
          stopped: undefined,
        };
        const before = summarizeContinuity(records, WINDOW);
        const after = summarizeContinuity([...records, worse], WINDOW);
        assert.ok((after.continuity ?? 0) <= (before.continuity ?? 1));
        const kind = worse.stream ? 'streams' : 'nonStreamed';
        assert.ok((after[kind].continuity ?? 0) <= (before[kind].continuity ?? 1));
        assert.equal(after.failed, before.failed + 1);
      }),
    );
  });

  it('all-ok records within the SLO give 1.0', () => {
    const okRecord = fc.record({
      t: fc.integer({ min: 0, max: 10_000 }),
      stream: fc.boolean(),
      latencyMs: fc.integer({ min: 0, max: DEFAULT_SLO.totalMs }),
      ttftMs: fc.integer({ min: 0, max: DEFAULT_SLO.ttftMs }),
      status: fc.integer({ min: 200, max: 299 }),
    });
    fc.assert(
      fc.property(fc.array(okRecord, { minLength: 1 }), (list) => {
        const records = list.map(({ t, ...r }) => rec(t, { ...r, ttftMs: r.stream ? r.ttftMs : null }));
        const s = summarizeContinuity(records, WINDOW);
        assert.equal(s.continuity, 1);
        assert.equal(s.longestOutage, null);
      }),
    );
  });

  it('a fallback answer never counts as successful', () => {
    fc.assert(
      fc.property(fc.array(arbRecord), (records) => {
        const viaFallback = records.map((r) => ({ ...r, fallback: true }));
        assert.equal(summarizeContinuity(viaFallback, WINDOW).successful, 0);
        for (const r of records)
          if (r.fallback || r.replica === 'fallback') assert.notEqual(classifyRecord(r), 'successful');
      }),
    );
  });

  it('a gap is never counted as success: gap records change no count, and every gap is reported', () => {
    fc.assert(
      fc.property(fc.array(arbRecord), fc.array(fc.integer({ min: 0, max: 10_000 })), (records, dueAt) => {
        const gaps = dueAt.map((t) => rec(t, { ok: true, status: 200, gap: true }));
        const before = summarizeContinuity(records, WINDOW);
        const after = summarizeContinuity([...records, ...gaps], WINDOW);
        assert.equal(after.successful, before.successful);
        assert.equal(after.continuity, before.continuity);
        assert.equal(after.unsent, before.unsent + gaps.length);
        assert.deepEqual(after.gaps, before.gaps, 'a slot not sent is no start');
        const starts = records.filter((r) => !r.gap).map((r) => r.t);
        for (const g of after.gaps) assert.ok(!starts.some((t) => t > g.from && t < g.to));
      }),
    );
  });
});
