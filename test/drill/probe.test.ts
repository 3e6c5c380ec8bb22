import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { summarizeContinuity } from '../../src/drill/continuity.js';
import {
  parseProbeOptions,
  runProbe,
  streamAt,
  type ProbeOptionsInput,
  type RecordSink,
} from '../../src/drill/probe.js';
import { parseProbeRecords, type ProbeRecord } from '../../src/drill/probe-record.js';
import { gatewayOver, standins } from '../gateway/helpers.js';

const cli = fileURLToPath(new URL('../../bin/fleetmedic.js', import.meta.url));
const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-drill-probe-'));
after(() => fs.rm(tmp, { recursive: true, force: true }));

function memorySink(): RecordSink & { records: ProbeRecord[]; closed: boolean } {
  const sink = {
    records: [] as ProbeRecord[],
    closed: false,
    write: (r: ProbeRecord) => void sink.records.push(r),
    close: () => void (sink.closed = true),
  };
  return sink;
}

async function probe(input: ProbeOptionsInput) {
  const sink = memorySink();
  const summary = await runProbe(parseProbeOptions(input), { sink });
  return { summary, records: sink.records };
}

describe('drill probe: options', () => {
  it('fills in the defaults: 20 req/s, half streamed, rate × 10 s in flight', () => {
    const o = parseProbeOptions({ targetUrl: 'http://127.0.0.1:8090/' });
    assert.equal(o.rate, 20);
    assert.equal(o.streamShare, 0.5);
    assert.equal(o.maxInFlight, 200);
    assert.equal(o.maxTokens, 16);
    assert.equal(o.targetUrl, 'http://127.0.0.1:8090');
    assert.equal(o.durationS, undefined);
  });

  const bad: [string, ProbeOptionsInput, RegExp][] = [
    [
      'a rate that is not a number',
      { targetUrl: 'http://127.0.0.1:1', rate: 'abc' },
      /--rate: .*"abc" \(string\)/,
    ],
    ['a zero rate', { targetUrl: 'http://127.0.0.1:1', rate: '0' }, /--rate: expected a number above 0/],
    ['a stream share above 1', { targetUrl: 'http://127.0.0.1:1', streamShare: '1.5' }, /--stream-share/],
    ['a fractional max-tokens', { targetUrl: 'http://127.0.0.1:1', maxTokens: '1.5' }, /--max-tokens/],
    ['a target that is not a URL', { targetUrl: 'localhost:80' }, /--target-url/],
    ['a target outside loopback', { targetUrl: 'http://10.0.0.1:8090' }, /refusing the probe target/],
  ];
  for (const [what, input, pattern] of bad) {
    it(`refuses ${what}, naming the flag`, () => assert.throws(() => parseProbeOptions(input), pattern));
  }

  it('--any-address allows a target outside loopback', () => {
    assert.equal(
      parseProbeOptions({ targetUrl: 'http://10.0.0.1:8090', anyAddress: true }).targetUrl,
      'http://10.0.0.1:8090',
    );
  });

  it('spreads the stream share evenly', () => {
    const pattern = (share: number, n: number) => Array.from({ length: n }, (_, i) => streamAt(i, share));
    assert.deepEqual(pattern(0.5, 4), [false, true, false, true]);
    assert.equal(pattern(0.25, 100).filter(Boolean).length, 25);
    assert.equal(pattern(0, 10).filter(Boolean).length, 0);
    assert.equal(pattern(1, 10).filter(Boolean).length, 10);
  });
});

describe('drill probe: against a stand-in replica', () => {
  it('writes one record per request, half streamed, with TTFT and tokens', async () => {
    const [replica] = await standins(1);
    const { summary, records } = await probe({ targetUrl: replica!.url, rate: 40, durationS: 1 });
    assert.equal(records.length, 40);
    // On a loaded machine the probe's own timer can run late: those slots are gaps, never hidden.
    assert.equal(summary.sent + summary.unsent, 40);
    assert.ok(summary.unsent <= 4, `unsent ${summary.unsent}`);
    assert.deepEqual(summary, {
      sent: summary.sent,
      ok: summary.sent,
      notOk: 0,
      unsent: summary.unsent,
      stopped: 0,
    });
    assert.equal(replica!.stats.requests, summary.sent);
    assert.equal(records.filter((r) => r.stream).length, 20);
    for (const r of records.filter((x) => x.gap)) assert.match(r.error!, /ran \d+ ms late/);
    const streams = records.filter((r) => r.stream && !r.gap);
    for (const r of records.filter((x) => !x.gap)) {
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.equal(r.status, 200);
      assert.equal(r.tokens, 16, 'max_tokens words');
      assert.ok(r.tokensPerS! > 0);
      assert.equal(r.error, undefined);
      assert.equal(r.replica, null, 'a replica sends no fleetmedic headers');
    }
    for (const r of streams) assert.ok(r.ttftMs! > 0 && r.ttftMs! <= r.latencyMs, JSON.stringify(r));
    for (const r of records.filter((x) => !x.stream)) assert.equal(r.ttftMs, null);
    const starts = records.map((r) => r.t).sort((a, b) => a - b);
    assert.ok(starts.at(-1)! - starts[0]! >= 900, 'open loop: the starts span the duration');
  });

  it('a stream that breaks after its 200 is not ok; the non-streamed requests still are', async () => {
    const [replica] = await standins(1, { faults: { dieAfterChunks: 3 } });
    const { records } = await probe({ targetUrl: replica!.url, rate: 20, durationS: 0.5 });
    const streams = records.filter((r) => r.stream);
    assert.ok(streams.length >= 4);
    for (const r of streams) {
      assert.equal(r.status, 200);
      assert.equal(r.ok, false);
      assert.match(r.error ?? '', /before an answer|after HTTP 200|without/);
      assert.equal(r.tokens, 3, 'the content chunks that came');
    }
    for (const r of records.filter((x) => !x.stream)) assert.equal(r.ok, true);
  });

  it('error statuses are recorded with their message', async () => {
    const [replica] = await standins(1, { faults: { oom: true } });
    const { records } = await probe({ targetUrl: replica!.url, rate: 20, durationS: 0.3 });
    assert.ok(records.length >= 4);
    for (const r of records) {
      assert.equal(r.status, 500);
      assert.equal(r.ok, false);
      assert.equal(r.error, 'HTTP 500: CUDA error: out of memory');
    }
  });

  it('a hanging target exhausts the in-flight cap: the requests due meanwhile are coverage gaps, then the stop cuts the rest', async () => {
    const [replica] = await standins(1, { faults: { hang: true } });
    const { summary, records } = await probe({
      targetUrl: replica!.url,
      rate: 50,
      durationS: 0.6,
      maxInFlight: 3,
      graceMs: 100,
    });
    assert.equal(summary.sent, 3);
    assert.equal(summary.stopped, 3, 'cut by the stop after the grace period');
    assert.ok(summary.unsent >= 20, `unsent ${summary.unsent}`);
    const gaps = records.filter((r) => r.gap);
    assert.equal(gaps.length, summary.unsent);
    for (const g of gaps) assert.match(g.error ?? '', /3 requests in flight/);
    const first = Math.min(...records.map((r) => r.t));
    const c = summarizeContinuity(records, { from: first, to: first + 600 }, { expectedIntervalMs: 20 });
    assert.equal(c.requests, 0, 'neither gaps nor cut requests are measured requests');
    assert.equal(c.continuity, null);
    assert.equal(c.unsent, summary.unsent);
    assert.equal(c.gaps.length, 1);
    assert.ok(c.gapMs >= 500, `gap ${c.gapMs} ms`);
  });

  it('a request past its timeout fails, naming the timeout', async () => {
    const [replica] = await standins(1, { faults: { hang: true } });
    const { records } = await probe({ targetUrl: replica!.url, rate: 10, durationS: 0.1, timeoutMs: 200 });
    assert.equal(records.length, 1);
    assert.equal(records[0]!.ok, false);
    assert.equal(records[0]!.stopped, undefined);
    assert.match(records[0]!.error!, /timed out after 200 ms \(before an answer\)/);
  });
});

describe('drill probe: through the gateway', () => {
  it('records the replica and the attempts; a fallback answer is marked and counts as degraded', async () => {
    const replicas = await standins(2);
    const gw = await gatewayOver(replicas);
    const { records } = await probe({ targetUrl: gw.url, rate: 40, durationS: 0.5 });
    assert.ok(records.length >= 15);
    for (const r of records) {
      assert.equal(r.ok, true);
      assert.ok(
        replicas.some((s) => s.url === r.replica),
        String(r.replica),
      );
      assert.equal(r.attempts, 1);
      assert.equal(r.fallback, false);
    }

    const [broken] = await standins(1, { faults: { oom: true } });
    const [fallback] = await standins(1);
    const gw2 = await gatewayOver([broken!], { fallbackUrl: fallback!.url, retry: { maxAttempts: 1 } });
    const viaFallback = await probe({ targetUrl: gw2.url, rate: 20, durationS: 0.3 });
    for (const r of viaFallback.records) {
      assert.equal(r.ok, true);
      assert.equal(r.fallback, true);
    }
    const first = viaFallback.records[0]!.t;
    const c = summarizeContinuity(viaFallback.records, { from: first, to: first + 300 });
    assert.equal(c.successful, 0);
    assert.equal(c.degraded, viaFallback.records.length);
  });

  it('a stream the gateway ends with an error event after its 200 is not ok', async () => {
    const replicas = await standins(1, { faults: { dieAfterChunks: 3 } });
    const gw = await gatewayOver(replicas);
    const { records } = await probe({ targetUrl: gw.url, rate: 20, durationS: 0.3 });
    const streams = records.filter((r) => r.stream);
    assert.ok(streams.length >= 2);
    for (const r of streams) {
      assert.equal(r.status, 200);
      assert.equal(r.ok, false);
      assert.match(r.error!, /error event/);
    }
  });
});

describe('fleetmedic drill-probe (the command)', () => {
  it('SIGTERM stops it cleanly: exit 0, every request the target saw is a complete line, two lines on stderr', async () => {
    const [replica] = await standins(1, { serviceMs: 30 });
    const out = path.join(tmp, 'sigterm', 'probe.jsonl');
    const child = spawn(
      process.execPath,
      [cli, 'drill-probe', '--target-url', replica!.url, '--out', out, '--rate', '20'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const text = await fs.readFile(out, 'utf8').catch(() => '');
      if (text.split('\n').length > 10) break;
      assert.ok(Date.now() < deadline, `no records after 30 s; stderr: ${stderr}`);
      await sleep(100);
    }
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    const text = await fs.readFile(out, 'utf8');
    assert.ok(text.endsWith('\n'), 'no half line');
    const { records, skipped } = parseProbeRecords(text);
    assert.deepEqual(skipped, []);
    assert.equal(records.length, replica!.stats.requests, 'every request the target saw has its line');
    assert.ok(
      records.every((r) => r.ok),
      'the requests in flight at SIGTERM finished within the grace',
    );
    assert.equal(stdout, '');
    const lines = stderr.trim().split('\n');
    assert.equal(lines.length, 2, stderr);
    assert.match(
      lines[0]!,
      /^drill-probe: 20 req\/s \(50 % streamed\) to http:\/\/127\.0\.0\.1:\d+, at most 200 in flight/,
    );
    assert.match(
      lines[1]!,
      new RegExp(`^drill-probe: stopped; ${records.length} sent \\(${records.length} ok`),
    );
  });

  it('refuses a non-loopback target in one line, exit 1', async () => {
    const child = spawn(
      process.execPath,
      [cli, 'drill-probe', '--target-url', 'http://192.0.2.1:80', '--out', path.join(tmp, 'x.jsonl')],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 1, stderr);
    assert.match(stderr, /^fleetmedic: refusing the probe target .* at http:\/\/192\.0\.2\.1: [^\n]*\n$/);
  });
});
