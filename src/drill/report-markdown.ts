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

/** Text safe in a Markdown table cell or line: no HTML, no cell break, no line break. */
export function escapeMarkdown(text: string): string {
  // Only what could start markup: `<` before a tag-like character, `&` before an entity.
  return text
    .replace(/&(?=#?\w+;)/g, '&amp;')
    .replace(/<(?=[A-Za-z/!?])/g, '&lt;')
    .replace(/([\\`*_[\]|#])/g, '\\$1')
    .replace(/\r?\n/g, ' ');
}

function table(header: Row, rows: readonly Row[]): string {
  const line = (cells: Row) => `| ${cells.map(escapeMarkdown).join(' | ')} |`;
  return [line(header), `|${header.map(() => ' --- |').join('')}`, ...rows.map(line)].join('\n');
}

/**
 * The report as Markdown: the verdict and its reasons first, then the drill, the preflight
 * findings, the thresholds, one section per phase (counts, every figure, recovery steps) and the
 * comparison with the previous drill. All text from the report is escaped.
 */
export function renderMarkdown(report: DrillReport, context: RenderContext = {}): string {
  const out: string[] = [];
  const name = escapeMarkdown(`${report.deployment.namespace}/${report.deployment.name}`);
  out.push(`# Resilience drill ${escapeMarkdown(report.drillId)}: ${name}`, '');
  out.push(`**Verdict: ${report.verdict.pass ? 'PASS' : 'FAIL'}**`, '');
  for (const reason of report.verdict.reasons) out.push(`- ${escapeMarkdown(reason)}`);
  if (report.verdict.reasons.length > 0) out.push('');
  out.push(table(['', ''], summaryRows(report)), '');
  out.push('## Preflight', '');
  out.push(
    report.preflight.length === 0
      ? 'No preflight finding recorded.'
      : table(
          ['Check', 'Result', 'Finding'],
          report.preflight.map((f) => [f.check, f.ok ? 'ok' : 'FAILED', f.detail]),
        ),
    '',
  );
  out.push('## Thresholds', '', table(['', ''], thresholdRows(report)), '');
  for (const phase of report.phases) {
    out.push(`## Phase ${escapeMarkdown(phase.name)}`, '');
    out.push(table(COUNT_HEADER, countRows(phase)), '');
    out.push(table(['Figure', 'Value'], figureRows(phase)), '');
    const steps = recoveryRows(phase);
    out.push(steps.length === 0 ? 'No recovery step recorded.' : table(RECOVERY_HEADER, steps), '');
  }
  out.push('## Compared with the previous drill', '');
  if (context.comparison) {
    const c = context.comparison;
    out.push(
      `Previous: ${escapeMarkdown(c.previousId)}, started ${formatTime(c.previousStartedAt)}, ` +
        `${c.previousPass ? 'passed' : 'failed'}.`,
      '',
      table(COMPARISON_HEADER, comparisonRows(c)),
      '',
    );
  } else out.push('No earlier drill of this Deployment is stored.', '');
  for (const s of context.skipped ?? []) {
    out.push(`- skipped ${escapeMarkdown(s.file)}: ${escapeMarkdown(s.reason)}`);
  }
  return `${out.join('\n').trimEnd()}\n`;
}
