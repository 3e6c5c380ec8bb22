import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { createWatchdogActivities } from '../../src/activities/drill/watchdog.js';
import type { ProbeRecord } from '../../src/drill/probe-record.js';
import { createReport, DEFAULT_THRESHOLDS } from '../../src/drill/report.js';
import { renderHtml } from '../../src/drill/report-html.js';
import { renderMarkdown } from '../../src/drill/report-markdown.js';
import { continuityBreach, DEFAULT_WATCHDOG } from '../../src/drill/watchdog.js';

const T0 = 1_800_000_000_000;
const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-watchdog-'));
after(() => fs.rm(tmp, { recursive: true, force: true }));

function rec(t: number, outcome: 'ok' | 'failed' | 'slow' | 'fallback' | 'gap', stream = false): ProbeRecord {
  return {
    t,
    stream,
    status: outcome === 'failed' ? 0 : 200,
    ok: outcome !== 'failed',
    latencyMs: outcome === 'slow' ? 20_000 : 40,
    ttftMs: stream ? 10 : null,
    tokens: 4,
    tokensPerS: 100,
    replica: outcome === 'fallback' ? 'fallback' : 'r1',
    fallback: outcome === 'fallback',
    attempts: 1,
    ...(outcome === 'failed' && { error: 'ECONNREFUSED' }),
    ...(outcome === 'gap' && { gap: true as const }),
  };
}

/** 20 req/s over `[from, from + seconds)`, each `outcome(i)`. */
function burst(
  from: number,
  seconds: number,
  outcome: (i: number) => Parameters<typeof rec>[1],
): ProbeRecord[] {
  return Array.from({ length: seconds * 20 }, (_, i) => rec(from + i * 50, outcome(i), i % 2 === 1));
}

describe('continuity watchdog (pure decision)', () => {
  it('fires when continuity over the window falls below the threshold, naming the figures', () => {
    const records = [
      ...burst(T0, 10, () => 'ok'),
      ...burst(T0 + 10_000, 10, (i) => (i % 4 === 0 ? 'ok' : 'failed')),
    ];
    const breach = continuityBreach(records, T0 + 20_000, DEFAULT_WATCHDOG);
    assert.ok(breach);
    assert.equal(breach.requests, 200);
    assert.equal(breach.failed, 150);
    assert.equal(breach.continuity, 0.25);
    assert.match(
      breach.detail,
      /^continuity 0\.25 < 0\.5 over the last 10 s \(50 of 200 requests successful, 150 failed, 0 degraded\)$/,
    );
  });

  it('does not fire on a healthy window, on a failure outside the window, nor on too few requests', () => {
    const failedEarly = [...burst(T0, 10, () => 'failed'), ...burst(T0 + 10_000, 10, () => 'ok')];
    assert.equal(continuityBreach(failedEarly, T0 + 20_000, DEFAULT_WATCHDOG), null);
    const few = burst(T0, 1, () => 'failed').slice(0, 9);
    assert.equal(continuityBreach(few, T0 + 1_000, DEFAULT_WATCHDOG), null);
    assert.ok(continuityBreach(burst(T0, 1, () => 'failed').slice(0, 10), T0 + 1_000, DEFAULT_WATCHDOG));
  });

  it('counts degraded answers (slow, fallback) as not successful, and gaps not at all', () => {
    const degraded = burst(T0, 10, (i) => (i % 2 === 0 ? 'slow' : 'fallback'));
    const breach = continuityBreach(degraded, T0 + 10_000, DEFAULT_WATCHDOG);
    assert.equal(breach?.degraded, 200);
    assert.equal(breach?.failed, 0);
    const gaps = burst(T0, 10, () => 'gap');
    assert.equal(continuityBreach(gaps, T0 + 10_000, DEFAULT_WATCHDOG), null);
  });

  it('property: fires exactly when at least minRequests were measured and successful/measured < abortBelow', () => {
    const outcome = fc.constantFrom<Parameters<typeof rec>[1]>('ok', 'failed', 'slow', 'fallback', 'gap');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 30_000 }), outcome), { maxLength: 400 }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.integer({ min: 1_000, max: 20_000 }),
        fc.integer({ min: 1, max: 50 }),
        (raw, abortBelow, windowMs, minRequests) => {
          const records = raw.map(([t, o]) => rec(T0 + t, o));
          const now = T0 + 30_000;
          const inWindow = records.filter((r) => r.t >= now - windowMs && !r.gap);
          const ok = inWindow.filter((r) => r.ok && !r.fallback && r.latencyMs <= 10_000).length;
          const expected =
            inWindow.length >= minRequests && inWindow.length > 0 && ok / inWindow.length < abortBelow;
          const breach = continuityBreach(records, now, { abortBelow, windowMs, minRequests });
          assert.equal(breach !== null, expected);
          if (breach) assert.equal(breach.requests, inWindow.length);
        },
      ),
    );
  });

  it('property: a window of successful requests never fires, whatever the threshold', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 600 }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        (n, abortBelow) => {
          const records = Array.from({ length: n }, (_, i) => rec(T0 + i * 10, 'ok', i % 3 === 0));
          assert.equal(continuityBreach(records, T0 + 6_000, { ...DEFAULT_WATCHDOG, abortBelow }), null);
        },
      ),
    );
  });
});

/** Starts watching `file` (threshold 0.5, 10 s window, 10 requests) and checks it stays quiet for `ms`. */
async function watchQuietly(file: string, ms: number, why: string) {
  const { watchContinuity } = createWatchdogActivities();
  const watching = watchContinuity({ file, abortBelow: 0.5, windowMs: 10_000, minRequests: 10, pollMs: 50 });
  let settled = false;
  void watching.then(() => (settled = true));
  await new Promise((r) => setTimeout(r, ms));
  assert.equal(settled, false, why);
  // Wrapped: an async function returning the promise itself would wait for it.
  return { watching };
}

describe('watchContinuity activity (a real probe file)', () => {
  it('returns the breach once failures appended to the file cross the threshold, reading only complete lines', async () => {
    const file = path.join(tmp, 'probe.jsonl');
    const now = Date.now();
    await fs.writeFile(
      file,
      burst(now - 5_000, 2, () => 'ok')
        .map((r) => JSON.stringify(r))
        .join('\n') + '\n',
    );
    const { watching } = await watchQuietly(file, 300, 'fired on a healthy file');
    // Failures, the last line half written: it is not read until complete.
    const failures = burst(Date.now() - 3_000, 3, () => 'failed').map((r) => JSON.stringify(r));
    await fs.appendFile(file, failures.join('\n') + '\n' + failures[0]!.slice(0, 20));
    const breach = await watching;
    assert.equal(breach.failed, 60);
    assert.ok(breach.continuity < 0.5);
  });

  it('arms at the first successful answer: failures of a gateway still warming up do not abort', async () => {
    const file = path.join(tmp, 'warmup.jsonl');
    const now = Date.now();
    const lines = (rs: ProbeRecord[]) => rs.map((r) => JSON.stringify(r)).join('\n') + '\n';
    // 15 failures (no replica Ready at the gateway yet), then the service answers.
    await fs.writeFile(file, lines(burst(now - 1_000, 1, (i) => (i < 15 ? 'failed' : 'ok'))));
    const { watching } = await watchQuietly(file, 400, 'fired on the warm-up failures');
    // Once armed, a real drop fires.
    await fs.appendFile(file, lines(burst(Date.now() - 1_000, 1, () => 'failed')));
    const breach = await watching;
    assert.ok(breach.continuity < 0.5 && breach.failed >= 10, JSON.stringify(breach));
  });

  it('arms after its window when nothing ever succeeded: a service that never answers still aborts', async () => {
    const file = path.join(tmp, 'dead.jsonl');
    const { watchContinuity } = createWatchdogActivities();
    const started = Date.now();
    const watching = watchContinuity({ file, abortBelow: 0.5, windowMs: 1_000, minRequests: 10, pollMs: 50 });
    await new Promise((r) => setTimeout(r, 1_100));
    await fs.writeFile(
      file,
      burst(Date.now() - 600, 1, () => 'failed')
        .map((r) => JSON.stringify(r))
        .join('\n') + '\n',
    );
    const breach = await watching;
    assert.ok(breach.failed >= 10 && breach.continuity === 0, JSON.stringify(breach));
    assert.ok(Date.now() - started >= 1_000);
  });

  it('refuses a threshold outside (0, 1] naming the field', async () => {
    const { watchContinuity } = createWatchdogActivities();
    await assert.rejects(
      watchContinuity({ file: path.join(tmp, 'x'), abortBelow: 2, windowMs: 10_000, minRequests: 10 }),
      /abortBelow/,
    );
  });
});

describe('an aborted drill in its report', () => {
  it('fails the verdict with the abort as its first reason, shown in Markdown and on the HTML timeline', () => {
    const report = createReport({
      drillId: 'abort-1',
      deployment: { namespace: 'ns', name: 'llama' },
      clusterId: 'c1',
      startedAt: T0,
      endedAt: T0 + 60_000,
      phases: [],
      preflight: [],
      probeFile: '',
      thresholds: DEFAULT_THRESHOLDS,
      aborted: {
        reason: 'the continuity watchdog fired: continuity 0.10 < 0.5',
        stage: 'eviction',
        at: T0 + 30_000,
      },
    });
    assert.equal(report.verdict.pass, false);
    assert.equal(
      report.verdict.reasons[0],
      'aborted during eviction: the continuity watchdog fired: continuity 0.10 < 0.5',
    );
    assert.match(renderMarkdown(report), /aborted during eviction: the continuity watchdog fired/);
    assert.match(renderHtml(report), /<text class="mark"[^>]*>aborted<\/text>/);
  });
});
