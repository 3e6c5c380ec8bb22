import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { parseProbeRecords, type ProbeRecord } from './probe-record.js';
import {
  RECOVERY_STEPS,
  REPORT_SCHEMA_VERSION,
  compareReports,
  renderJson,
  type DrillReport,
} from './report.js';
import type { RenderContext } from './report.js';
import { renderHtml } from './report-html.js';
import { renderMarkdown } from './report-markdown.js';

const ratio = z.number().min(0).max(1).nullable();
const counts = z.looseObject({
  requests: z.number(),
  successful: z.number(),
  degraded: z.number(),
  failed: z.number(),
  continuity: ratio,
});
const interval = z.looseObject({ from: z.number(), to: z.number(), ms: z.number() });
const percentiles = z.object({ p50: z.number().nullable(), p99: z.number().nullable() });
const reportSchema = z.looseObject({
  schemaVersion: z.literal(REPORT_SCHEMA_VERSION),
  drillId: z.string().min(1),
  deployment: z.object({ namespace: z.string(), name: z.string() }),
  clusterId: z.string(),
  startedAt: z.number(),
  endedAt: z.number(),
  phases: z.array(
    z.looseObject({
      name: z.enum(['steady-state', 'pod-delete', 'eviction', 'gateway-eviction']),
      injectedAt: z.number(),
      restoreMs: z.number().optional(),
      recovery: z.array(
        z.object({ step: z.enum(RECOVERY_STEPS), at: z.number(), detail: z.string().optional() }),
      ),
      continuity: counts.extend({
        window: z.object({ from: z.number(), to: z.number() }),
        slo: z.object({ ttftMs: z.number(), totalMs: z.number() }),
        expectedIntervalMs: z.number(),
        streams: counts,
        nonStreamed: counts,
        unsent: z.number(),
        stopped: z.number(),
        gaps: z.array(interval),
        gapMs: z.number(),
        longestOutage: interval.extend({ failed: z.number(), ongoing: z.boolean() }).nullable(),
        latencyMs: percentiles,
        ttftMs: percentiles,
      }),
    }),
  ),
  thresholds: z.looseObject({
    phases: z.array(z.string()),
    nonStreamedContinuity: z.number(),
    streamContinuity: z.number(),
    evictionRecoveryOverRestoreMs: z.number(),
    maxCoverageGapMs: z.number(),
  }),
  verdict: z.object({ pass: z.boolean(), reasons: z.array(z.string()) }),
  preflight: z.array(z.object({ check: z.string(), ok: z.boolean(), detail: z.string() })),
  probeFile: z.string(),
});

/**
 * Reads a report's JSON text, checking its shape and `schemaVersion`.
 *
 * @throws Error naming the first field that does not fit.
 */
export function parseReport(text: string): DrillReport {
  const parsed = reportSchema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data as unknown as DrillReport;
}

const DNS_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const DRILL_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$/;

/**
 * The folder of one Deployment's reports, `<dir>/<namespace>_<name>` (Kubernetes names have no `_`,
 * so the pair is unambiguous).
 *
 * @throws ConfigError when the namespace or name is not a Kubernetes name: it must not escape `dir`.
 */
export function deploymentDir(dir: string, namespace: string, name: string): string {
  for (const [what, value] of [
    ['namespace', namespace],
    ['name', name],
  ] as const) {
    if (!DNS_NAME.test(value) || value.includes('..')) {
      throw new ConfigError(`deployment ${what} ${JSON.stringify(value)} is not a Kubernetes name`);
    }
  }
  return path.join(dir, `${namespace}_${name}`);
}

/** The previous drill of a Deployment, and the stored files that could not be read. */
export interface PreviousReport {
  readonly report: DrillReport | null;
  readonly file: string | null;
  /** Report files skipped, each with its reason (bad JSON, another schema, unreadable). */
  readonly skipped: readonly { file: string; reason: string }[];
}

/**
 * Finds the newest stored report of the Deployment that started before drill `beforeId` (before its
 * stored `startedAt`; every other stored report when it is not stored yet). Files that cannot be
 * read or parsed are skipped with their reason; never throws for them. No folder: no previous.
 */
export async function previousReport(
  dir: string,
  namespace: string,
  name: string,
  beforeId: string,
): Promise<PreviousReport> {
  const folder = deploymentDir(dir, namespace, name);
  const skipped: { file: string; reason: string }[] = [];
  let entries: string[];
  try {
    entries = (await fs.readdir(folder)).filter((f) => f.endsWith('.json')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { report: null, file: null, skipped };
    return { report: null, file: null, skipped: [{ file: folder, reason: (err as Error).message }] };
  }
  const reports: { file: string; report: DrillReport }[] = [];
  for (const entry of entries) {
    const file = path.join(folder, entry);
    try {
      reports.push({ file, report: parseReport(await fs.readFile(file, 'utf8')) });
    } catch (err) {
      skipped.push({ file, reason: (err as Error).message });
    }
  }
  const cutoff = reports.find((r) => r.report.drillId === beforeId)?.report.startedAt ?? Infinity;
  const earlier = reports
    .filter((r) => r.report.drillId !== beforeId && r.report.startedAt < cutoff)
    .sort((a, b) => b.report.startedAt - a.report.startedAt);
  const newest = earlier[0];
  return { report: newest?.report ?? null, file: newest?.file ?? null, skipped };
}

/** The files {@link writeReport} wrote, and the previous drill it compared with. */
export interface WrittenReport {
  readonly json: string;
  readonly markdown: string;
  readonly html: string;
  readonly previous: PreviousReport;
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, text, 'utf8');
  await fs.rename(tmp, file);
}

/**
 * Writes `<dir>/<namespace>_<name>/<drill id>.{json,md,html}`, the Markdown and HTML compared with
 * the previous drill of the Deployment ({@link previousReport}). The HTML timeline plots
 * `options.records`, else the records read from `report.probeFile` (none when it cannot be read).
 * Each file is written whole or not at all (temporary file, then rename).
 *
 * @throws ConfigError when the drill ID or the Deployment's names cannot be file names.
 */
export async function writeReport(
  dir: string,
  report: DrillReport,
  options: { records?: readonly ProbeRecord[] } = {},
): Promise<WrittenReport> {
  if (!DRILL_ID.test(report.drillId)) {
    throw new ConfigError(`drill ID ${JSON.stringify(report.drillId)} cannot be a file name`);
  }
  const { namespace, name } = report.deployment;
  const folder = deploymentDir(dir, namespace, name);
  const previous = await previousReport(dir, namespace, name, report.drillId);
  const records =
    options.records ??
    (await fs
      .readFile(report.probeFile, 'utf8')
      .then((text) => parseProbeRecords(text).records)
      .catch(() => []));
  const context: RenderContext = {
    ...(previous.report && { comparison: compareReports(report, previous.report) }),
    skipped: previous.skipped,
    records,
  };
  await fs.mkdir(folder, { recursive: true });
  const base = path.join(folder, report.drillId);
  const files = { json: `${base}.json`, markdown: `${base}.md`, html: `${base}.html` };
  await writeAtomically(files.json, renderJson(report));
  await writeAtomically(files.markdown, renderMarkdown(report, context));
  await writeAtomically(files.html, renderHtml(report, context));
  return { ...files, previous };
}
