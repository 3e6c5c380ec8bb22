import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { summarizeContinuity } from '../../src/drill/continuity.js';
import type { ProbeRecord } from '../../src/drill/probe-record.js';
import {
  compareReports,
  createReport,
  DEFAULT_THRESHOLDS,
  judgeDrill,
  renderJson,
  type DrillPhase,
  type DrillReport,
  type PreflightFinding,
  type RecoveryStep,
} from '../../src/drill/report.js';
import { countRows, figureRows, recoveryRows, comparisonRows } from '../../src/drill/report-figures.js';
import { escapeHtml, renderHtml } from '../../src/drill/report-html.js';
import { escapeMarkdown, renderMarkdown } from '../../src/drill/report-markdown.js';
import { parseReport, previousReport, writeReport } from '../../src/drill/report-store.js';

const T0 = 1_800_000_000_000;
const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-drill-report-'));
after(() => fs.rm(tmp, { recursive: true, force: true }));

/** 20 req/s for `seconds` from `from`, alternating streams; `fail(t)` marks failures. */
function records(from: number, seconds: number, fail: (t: number) => boolean = () => false): ProbeRecord[] {
  return Array.from({ length: seconds * 20 }, (_, i) => {
    const t = from + i * 50;
    const stream = i % 2 === 1;
    const bad = fail(t);
    return {
      t,
      stream,
      status: bad ? 503 : 200,
      ok: !bad,
      latencyMs: 80 + (i % 7) * 13,
      ttftMs: stream && !bad ? 20 + (i % 5) : null,
      tokens: bad ? 0 : 16,
      tokensPerS: bad ? null : 160,
      replica: 'http://127.128.0.1:8080',
      fallback: false,
      attempts: 1,
      ...(bad && { error: 'HTTP 503: no replica is available' }),
    };
  });
}

function phase(
  name: DrillPhase['name'],
  injectedAt: number,
  recs: ProbeRecord[],
  steps: [RecoveryStep['step'], number][],
  restoreMs?: number,
): DrillPhase {
  return {
    name,
    injectedAt,
    recovery: steps.map(([step, ms]) => ({ step, at: injectedAt + ms, detail: `${step} of pod llama-7f9c` })),
    ...(restoreMs !== undefined && { restoreMs }),
    continuity: summarizeContinuity(recs, { from: injectedAt, to: injectedAt + 9_000 }),
  };
}

const goodPreflight: PreflightFinding[] = [
  { check: 'pdb', ok: true, detail: 'PDB inference-pdb, maxUnavailable 1' },
  { check: 'anti-affinity', ok: true, detail: 'required anti-affinity on kubernetes.io/hostname' },
];

function drill(
  id: string,
  startedAt: number,
  opts: {
    name?: string;
    fail?: (t: number) => boolean;
    restoreMs?: number;
    readyMs?: number;
    preflight?: PreflightFinding[];
  } = {},
): { report: DrillReport; recs: ProbeRecord[] } {
  const recs = records(startedAt, 30, opts.fail);
  const report = createReport({
    drillId: id,
    deployment: { namespace: 'inference', name: opts.name ?? 'llama' },
    clusterId: 'sim-1',
    startedAt,
    endedAt: startedAt + 30_000,
    phases: [
      phase('pod-delete', startedAt + 1_000, recs, [
        ['replacement-created', 150],
        ['scheduled', 400],
        ['health-200', 2_100],
        ['ready', 2_600],
        ['all-ready', 2_600],
      ]),
      phase(
        'eviction',
        startedAt + 15_000,
        recs,
        [
          ['eviction', 10],
          ['replacement-created', 200],
          ['scheduled', 450],
          ['checkpoint-restored', 3_200],
          ['health-200', 3_900],
          ['slot-restored', 4_000],
          ['ready', opts.readyMs ?? 4_400],
          ['first-token', 4_700],
          ['all-ready', opts.readyMs ?? 4_400],
        ],
        opts.restoreMs ?? 2_700,
      ),
    ],
    preflight: opts.preflight ?? goodPreflight,
    probeFile: `/var/lib/fleetmedic/drills/${id}/probe.jsonl`,
  });
  return { report, recs };
}

describe('drill verdict', () => {
  it('passes a drill with full continuity and a quick recovery', () => {
    const { report } = drill('d1', T0);
    assert.deepEqual(report.verdict, { pass: true, reasons: [] });
    assert.equal(report.schemaVersion, 1);
    assert.deepEqual(report.thresholds, DEFAULT_THRESHOLDS);
  });

  const failing: [string, Parameters<typeof drill>[2], RegExp][] = [
    ['no PDB', { preflight: [{ check: 'pdb', ok: false, detail: 'no PDB' }] }, /^no PDB$/],
    [
      'preferred anti-affinity',
      { preflight: [{ check: 'anti-affinity', ok: false, detail: 'anti-affinity preferred, not required' }] },
      /^anti-affinity preferred, not required$/,
    ],
    [
      'too few nodes',
      { preflight: [{ check: 'schedulable-nodes', ok: false, detail: 'only 3 schedulable nodes' }] },
      /^only 3 schedulable nodes$/,
    ],
    [
      'failures during the eviction',
      { fail: (t) => t >= T0 + 16_000 && t < T0 + 16_600 },
      /^non-streamed continuity 0\.9[0-9]* < 1\.00 during eviction$/,
    ],
    [
      'a slow eviction recovery',
      { restoreMs: 2_700, readyMs: 12_000 },
      /^eviction recovery 12\.0 s > checkpoint restore 2700 ms \+ 5000 ms$/,
    ],
  ];
  for (const [what, opts, reason] of failing) {
    it(`fails with the reason: ${what}`, () => {
      const { report } = drill('d', T0, opts);
      assert.equal(report.verdict.pass, false);
      assert.ok(
        report.verdict.reasons.some((r) => reason.test(r)),
        report.verdict.reasons.join('; '),
      );
    });
  }

  it('fails safe: a judged phase that did not run, no request of a kind, no restore time, a coverage gap', () => {
    const { report } = drill('d', T0);
    const [podDelete, eviction] = report.phases as [DrillPhase, DrillPhase];
    const noStreams = {
      ...podDelete,
      continuity: summarizeContinuity(
        records(T0, 30).filter((r) => !r.stream),
        podDelete.continuity.window,
      ),
    };
    const evictionWithoutRestore: DrillPhase = {
      name: eviction.name,
      injectedAt: eviction.injectedAt,
      recovery: eviction.recovery.filter((s) => s.step !== 'ready' && s.step !== 'all-ready'),
      continuity: summarizeContinuity([], eviction.continuity.window),
    };
    const reasons = judgeDrill({
      phases: [noStreams, evictionWithoutRestore],
      preflight: [],
      thresholds: { ...DEFAULT_THRESHOLDS, phases: ['pod-delete', 'eviction', 'gateway-eviction'] },
    }).reasons;
    assert.deepEqual(reasons, [
      'no stream request measured during pod-delete',
      'no non-streamed request measured during eviction',
      'no stream request measured during eviction',
      'coverage gap of 9000 ms during eviction (the probe measured nothing; at most 1000 ms)',
      'eviction: the replacement never became Ready',
      'the gateway-eviction phase did not run',
    ]);
    const noRestore = judgeDrill({
      phases: [podDelete, { ...eviction, restoreMs: undefined }],
      preflight: [],
      thresholds: DEFAULT_THRESHOLDS,
    });
    assert.deepEqual(noRestore.reasons, ['eviction: no checkpoint restore time was measured']);
  });
});

describe('drill report rendering', () => {
  it('JSON round trip: parseReport reads back exactly what renderJson wrote', () => {
    const { report } = drill('d1', T0, { fail: (t) => t % 1_000 === 0 });
    assert.deepEqual(parseReport(renderJson(report)), report);
    assert.match(renderJson(report), /^\{\n {2}"schemaVersion": 1,\n {2}"drillId": "d1",/);
    assert.throws(() => parseReport(renderJson({ ...report, schemaVersion: 2 as 1 })), /schemaVersion/);
  });

  it('Markdown: the verdict and reasons first, every figure of every phase', () => {
    const { report } = drill('d1', T0, {
      fail: (t) => t >= T0 + 16_000 && t < T0 + 16_600,
      preflight: [{ check: 'pdb', ok: false, detail: 'no PDB' }],
    });
    const md = renderMarkdown(report);
    const verdictAt = md.indexOf('**Verdict: FAIL**');
    assert.ok(verdictAt > 0 && verdictAt < md.indexOf('## '));
    for (const reason of report.verdict.reasons)
      assert.ok(md.indexOf(`- ${escapeMarkdown(reason)}`) < md.indexOf('## '), reason);
    for (const p of report.phases) {
      assert.ok(md.includes(`## Phase ${p.name}`));
      for (const row of [...countRows(p), ...figureRows(p), ...recoveryRows(p)]) {
        for (const cell of row) assert.ok(md.includes(escapeMarkdown(cell)), `missing ${cell}`);
      }
    }
    const eviction = report.phases[1]!.continuity;
    assert.ok(eviction.failed > 0 && eviction.longestOutage !== null);
    assert.ok(
      md.includes(`| non-streamed | ${eviction.nonStreamed.requests} | ${eviction.nonStreamed.successful} |`),
    );
    assert.ok(md.includes('| Recovery (to Ready) | 4400 ms |'));
    assert.ok(md.includes('| Checkpoint restore | 2700 ms |'));
    assert.ok(
      md.includes(
        `| Longest outage | ${figureRows(report.phases[1]!).find((r) => r[0] === 'Longest outage')![1]}`,
      ),
    );
  });

  const hostile = `<script>alert("x")</script><img src="http://evil.example/x.png">|'`;

  it('HTML: self-contained, escapes a hostile deployment name, draws the timeline', () => {
    const { report, recs } = drill('d1', T0, {
      name: hostile,
      fail: (t) => t >= T0 + 16_000 && t < T0 + 16_600,
    });
    const html = renderHtml(report, { records: recs });
    assert.ok(!/(src|href)\s*=\s*["']?\s*(https?:)?\/\//i.test(html), 'no external reference');
    assert.ok(!/<script|<img|<link|@import|url\(/i.test(html), 'no script, image, stylesheet or font');
    assert.ok(html.includes(escapeHtml(hostile)));
    assert.ok(html.includes('<svg'));
    assert.equal((html.match(/<circle cx=/g) ?? []).length, recs.length, 'one point per request');
    assert.ok(html.includes('fill="#c62828"'), 'failed points');
    assert.equal(
      (html.match(/<line class="inject"[^>]*><title>/g) ?? []).length,
      2,
      'one marker per injection',
    );
    assert.equal(
      (html.match(/<line class="step"/g) ?? []).length,
      5 + 9 + 1,
      'one per recovery step, and the legend',
    );
    assert.ok(html.indexOf('Verdict: FAIL') < html.indexOf('<svg'));
    for (const p of report.phases) {
      for (const row of [...countRows(p), ...figureRows(p), ...recoveryRows(p)]) {
        for (const cell of row) assert.ok(html.includes(escapeHtml(cell)), `missing ${cell}`);
      }
    }
    const md = renderMarkdown(report);
    assert.ok(!md.includes('<script>'), 'Markdown escapes it too');
  });

  it('HTML keeps every failure and thins out successes past 5000 points', () => {
    const recs = records(T0, 400, (t) => t % 10_000 === 0);
    const { report } = drill('big', T0);
    const html = renderHtml(report, { records: recs });
    const circles = (html.match(/<circle cx=/g) ?? []).length;
    assert.ok(circles <= 5_000 && circles >= 4_900, String(circles));
    assert.equal((html.match(/<circle cx="[\d.]+" cy="[\d.]+" r="2" fill="#c62828"/g) ?? []).length, 40);
  });
});

describe('drill report files and the previous drill', () => {
  it('writes the three files; the next drill is compared with the newest earlier one; bad files are skipped with a reason', async () => {
    const dir = path.join(tmp, 'reports');
    const a = drill('drill-a', T0, { restoreMs: 2_900 });
    const b = drill('drill-b', T0 + 3_600_000, { fail: (t) => t >= T0 + 3_616_000 && t < T0 + 3_616_500 });
    const c = drill('drill-c', T0 + 7_200_000);
    const first = await writeReport(dir, a.report, { records: a.recs });
    assert.equal(first.json, path.join(dir, 'inference_llama', 'drill-a.json'));
    assert.equal(first.previous.report, null);
    assert.match(await fs.readFile(first.markdown, 'utf8'), /No earlier drill of this Deployment is stored/);
    await writeReport(dir, b.report, { records: b.recs });
    const folder = path.join(dir, 'inference_llama');
    await fs.writeFile(path.join(folder, 'broken.json'), '{"schemaVersion": 1, "drillId": ');
    await fs.writeFile(path.join(folder, 'future.json'), JSON.stringify({ ...a.report, schemaVersion: 9 }));
    await fs.mkdir(path.join(folder, 'dir.json'));

    const prevOfC = await previousReport(dir, 'inference', 'llama', 'drill-c');
    assert.equal(prevOfC.report?.drillId, 'drill-b');
    assert.deepEqual(prevOfC.skipped.map((s) => path.basename(s.file)).sort(), [
      'broken.json',
      'dir.json',
      'future.json',
    ]);
    for (const s of prevOfC.skipped) assert.ok(s.reason.length > 0);
    assert.equal((await previousReport(dir, 'inference', 'llama', 'drill-b')).report?.drillId, 'drill-a');
    assert.equal((await previousReport(dir, 'inference', 'llama', 'drill-a')).report, null);
    assert.equal((await previousReport(dir, 'inference', 'other', 'x')).report, null);

    const written = await writeReport(dir, c.report, { records: c.recs });
    assert.equal(written.previous.report?.drillId, 'drill-b');
    const md = await fs.readFile(written.markdown, 'utf8');
    assert.match(md, /Previous: drill-b, started .*, failed\./);
    const comparison = compareReports(c.report, b.report);
    const eviction = comparison.phases.find((p) => p.name === 'eviction')!;
    assert.ok(eviction.nonStreamedContinuity.delta! > 0, 'continuity went up again');
    assert.ok(eviction.longestOutageMs.delta! < 0, 'the outage went away');
    for (const row of comparisonRows(comparison))
      assert.ok(md.includes(`| ${row.join(' | ')} |`), row.join(' | '));
    assert.match(md, /skipped .*broken\.json: /);
    const html = await fs.readFile(written.html, 'utf8');
    assert.ok(html.includes('Compared with the previous drill') && html.includes('drill-b'));
    assert.deepEqual(parseReport(await fs.readFile(written.json, 'utf8')), c.report);
  });

  it('reads the probe file for the timeline when no records are given', async () => {
    const { report, recs } = drill('with-file', T0);
    const probeFile = path.join(tmp, 'probe.jsonl');
    await fs.writeFile(probeFile, `${recs.map((r) => JSON.stringify(r)).join('\n')}\n{"t": 1, "trunc`);
    const written = await writeReport(path.join(tmp, 'from-file'), { ...report, probeFile });
    const html = await fs.readFile(written.html, 'utf8');
    assert.equal((html.match(/<circle cx=/g) ?? []).length, recs.length);
    const missing = await writeReport(path.join(tmp, 'no-file'), report);
    assert.match(await fs.readFile(missing.html, 'utf8'), /no probe record to plot/);
  });

  it('refuses names that would leave the report folder', async () => {
    const { report } = drill('d', T0, { name: '../../etc' });
    await assert.rejects(writeReport(tmp, report), /deployment name "..\/..\/etc" is not a Kubernetes name/);
    await assert.rejects(
      writeReport(tmp, { ...drill('../x', T0).report }),
      /drill ID "..\/x" cannot be a file name/,
    );
    await assert.rejects(previousReport(tmp, 'a_b', 'c', 'd'), /not a Kubernetes name/);
  });
});
