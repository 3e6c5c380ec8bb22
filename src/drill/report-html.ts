import { classifyRecord, type Outcome } from './continuity.js';
import type { ProbeRecord } from './probe-record.js';
import type { DrillReport, RenderContext } from './report.js';
import {
  COMPARISON_HEADER,
  COUNT_HEADER,
  RECOVERY_HEADER,
  comparisonRows,
  countRows,
  figureRows,
  formatTime,
  recoveryRows,
  summaryRows,
  thresholdRows,
  type Row,
} from './report-figures.js';

/** Text safe in HTML (and inline SVG) content and quoted attributes. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const COLORS: Record<Outcome, string> = { successful: '#2e7d32', degraded: '#ef8f00', failed: '#c62828' };
/** More points than this make the page slow to draw; failures and degraded answers are all kept. */
const MAX_POINTS = 5_000;
const W = 960;
const H = 340;
const M = { left: 60, right: 20, top: 40, bottom: 40 };

/** The smallest 1, 2 or 5 × 10^k at or above `v`: a round top for the latency axis. */
function niceCeiling(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((c) => c >= v)!;
}

function table(header: Row, rows: readonly Row[]): string {
  const cells = (tag: string, row: Row) => row.map((c) => `<${tag}>${escapeHtml(c)}</${tag}>`).join('');
  const head = header.some((h) => h !== '') ? `<thead><tr>${cells('th', header)}</tr></thead>` : '';
  return `<table>${head}<tbody>${rows.map((r) => `<tr>${cells('td', r)}</tr>`).join('')}</tbody></table>`;
}

function plotted(records: readonly ProbeRecord[], report: DrillReport): { r: ProbeRecord; o: Outcome }[] {
  const slo = report.phases[0]?.continuity.slo;
  const all = records
    .map((r) => ({ r, o: classifyRecord(r, slo) }))
    .filter((x): x is { r: ProbeRecord; o: Outcome } => x.o !== undefined);
  const keep = all.filter((x) => x.o !== 'successful');
  const ok = all.filter((x) => x.o === 'successful');
  const room = Math.max(0, MAX_POINTS - keep.length);
  const stride = ok.length > room ? ok.length / Math.max(1, room) : 1;
  for (let i = 0; i < ok.length && keep.length < MAX_POINTS; i += stride) keep.push(ok[Math.floor(i)]!);
  return keep;
}

/**
 * The timeline: each request a point (time, latency) colored by outcome, coverage gaps shaded, a
 * solid line at each injection and a dashed one at each recovery step, with a legend. Plain SVG.
 */
export function renderTimeline(report: DrillReport, records: readonly ProbeRecord[]): string {
  const points = plotted(records, report);
  const t0 = Math.min(report.startedAt, ...points.map((p) => p.r.t));
  const t1 = Math.max(report.endedAt, ...points.map((p) => p.r.t), t0 + 1);
  const yMax = niceCeiling(Math.max(100, ...points.map((p) => p.r.latencyMs)));
  const x = (t: number) => (M.left + ((t - t0) / (t1 - t0)) * (W - M.left - M.right)).toFixed(1);
  const y = (ms: number) => (H - M.bottom - (Math.min(ms, yMax) / yMax) * (H - M.top - M.bottom)).toFixed(1);
  const parts: string[] = [];
  for (const phase of report.phases) {
    for (const g of phase.continuity.gaps) {
      parts.push(
        `<rect class="gap" x="${x(g.from)}" y="${M.top}" width="${(Number(x(g.to)) - Number(x(g.from))).toFixed(1)}" height="${H - M.top - M.bottom}"><title>${escapeHtml(`coverage gap ${g.ms} ms (${phase.name})`)}</title></rect>`,
      );
    }
  }
  for (const tick of [0, 0.5, 1]) {
    const v = yMax * tick;
    parts.push(
      `<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${y(v)}" y2="${y(v)}"/>`,
      `<text class="axis" x="${M.left - 6}" y="${y(v)}" text-anchor="end" dominant-baseline="middle">${v} ms</text>`,
    );
  }
  parts.push(
    `<text class="axis" x="${M.left}" y="${H - 12}">${escapeHtml(formatTime(t0))}</text>`,
    `<text class="axis" x="${W - M.right}" y="${H - 12}" text-anchor="end">${escapeHtml(formatTime(t1))}</text>`,
  );
  for (const { r, o } of points) {
    parts.push(
      `<circle cx="${x(r.t)}" cy="${y(r.latencyMs)}" r="2" fill="${COLORS[o]}"><title>${escapeHtml(
        `${formatTime(r.t)} ${r.stream ? 'stream' : 'non-streamed'} ${o} ${r.status} ${r.latencyMs} ms${r.error ? ` ${r.error}` : ''}`,
      )}</title></circle>`,
    );
  }
  for (const phase of report.phases) {
    parts.push(
      `<line class="inject" x1="${x(phase.injectedAt)}" x2="${x(phase.injectedAt)}" y1="${M.top}" y2="${H - M.bottom}"><title>${escapeHtml(`${phase.name} injected ${formatTime(phase.injectedAt)}`)}</title></line>`,
      `<text class="mark" x="${x(phase.injectedAt)}" y="${M.top - 6}">${escapeHtml(phase.name)}</text>`,
    );
    for (const step of phase.recovery) {
      parts.push(
        `<line class="step" x1="${x(step.at)}" x2="${x(step.at)}" y1="${M.top}" y2="${H - M.bottom}"><title>${escapeHtml(`${phase.name}: ${step.step} ${formatTime(step.at)}${step.detail ? ` (${step.detail})` : ''}`)}</title></line>`,
      );
    }
  }
  if (report.aborted) {
    const a = report.aborted;
    parts.push(
      `<line class="inject" x1="${x(a.at)}" x2="${x(a.at)}" y1="${M.top}" y2="${H - M.bottom}"><title>${escapeHtml(`aborted ${formatTime(a.at)}: ${a.reason}`)}</title></line>`,
      `<text class="mark" x="${x(a.at)}" y="${M.top - 6}">aborted</text>`,
    );
  }
  const legend = [
    ...Object.entries(COLORS).map(
      ([o, c]) => `<circle r="4" fill="${c}"/><text x="8" dominant-baseline="middle">${o}</text>`,
    ),
    '<line class="inject" x1="0" x2="0" y1="-6" y2="6"/><text x="8" dominant-baseline="middle">fault injected</text>',
    '<line class="step" x1="0" x2="0" y1="-6" y2="6"/><text x="8" dominant-baseline="middle">recovery step</text>',
    '<rect class="gap" x="-4" y="-6" width="8" height="12"/><text x="8" dominant-baseline="middle">coverage gap</text>',
  ]
    .map((item, i) => `<g transform="translate(${M.left + 10 + i * 130},14)">${item}</g>`)
    .join('');
  return `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="request outcomes and latency over time">${legend}${parts.join('')}${
    points.length === 0
      ? `<text class="axis" x="${W / 2}" y="${H / 2}" text-anchor="middle">no probe record to plot</text>`
      : ''
  }</svg>`;
}

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}.pass{color:#2e7d32}.fail{color:#c62828}
.grid{stroke:#e4e4e4}.axis{font-size:11px;fill:#555}.mark{font-size:11px;fill:#000}
.inject{stroke:#000;stroke-width:1.5}.step{stroke:#777;stroke-dasharray:4 3}.gap{fill:#999;fill-opacity:.25}
svg text{font-size:11px}`;

/**
 * The report as one self-contained HTML page: no script, no external stylesheet, font or image.
 * Verdict and reasons first, then the timeline ({@link renderTimeline}), the figures of every phase,
 * preflight, thresholds and the comparison with the previous drill. All text is escaped.
 */
export function renderHtml(report: DrillReport, context: RenderContext = {}): string {
  const name = `${report.deployment.namespace}/${report.deployment.name}`;
  const v = report.verdict;
  const body: string[] = [
    `<h1>Resilience drill ${escapeHtml(report.drillId)}: ${escapeHtml(name)}</h1>`,
    `<p class="${v.pass ? 'pass' : 'fail'}"><strong>Verdict: ${v.pass ? 'PASS' : 'FAIL'}</strong></p>`,
    v.reasons.length > 0 ? `<ul>${v.reasons.map((r) => `<li>${escapeHtml(r)}</li>`).join('')}</ul>` : '',
    table(['', ''], summaryRows(report)),
    '<h2>Timeline</h2>',
    renderTimeline(report, context.records ?? []),
  ];
  for (const phase of report.phases) {
    const steps = recoveryRows(phase);
    body.push(
      `<h2>Phase ${escapeHtml(phase.name)}</h2>`,
      table(COUNT_HEADER, countRows(phase)),
      table(['Figure', 'Value'], figureRows(phase)),
      steps.length === 0 ? '<p>No recovery step recorded.</p>' : table(RECOVERY_HEADER, steps),
    );
  }
  body.push(
    '<h2>Preflight</h2>',
    report.preflight.length === 0
      ? '<p>No preflight finding recorded.</p>'
      : table(
          ['Check', 'Result', 'Finding'],
          report.preflight.map((f) => [f.check, f.ok ? 'ok' : 'FAILED', f.detail]),
        ),
    '<h2>Thresholds</h2>',
    table(['', ''], thresholdRows(report)),
    '<h2>Compared with the previous drill</h2>',
  );
  const c = context.comparison;
  body.push(
    c
      ? `<p>Previous: ${escapeHtml(c.previousId)}, started ${escapeHtml(formatTime(c.previousStartedAt))}, ${c.previousPass ? 'passed' : 'failed'}.</p>${table(COMPARISON_HEADER, comparisonRows(c))}`
      : '<p>No earlier drill of this Deployment is stored.</p>',
  );
  const skipped = context.skipped ?? [];
  if (skipped.length > 0) {
    body.push(
      `<ul>${skipped.map((s) => `<li>skipped ${escapeHtml(s.file)}: ${escapeHtml(s.reason)}</li>`).join('')}</ul>`,
    );
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(`Drill ${report.drillId}: ${name}`)}</title>
<style>${STYLE}</style></head>
<body>
${body.filter((b) => b !== '').join('\n')}
</body></html>
`;
}
