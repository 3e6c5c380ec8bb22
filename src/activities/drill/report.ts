/**
 * The drill's report activity: the probe's records summarized per phase window, the report built and
 * judged once (`createReport`), written as JSON, Markdown and HTML; the workflow gets the figures only.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { DrillPhaseFigures, DrillPhaseRecord, DrillReportFiles } from '../../contracts/drill.js';
import { summarizeContinuity } from '../../drill/continuity.js';
import { parseProbeRecords, type ProbeRecord } from '../../drill/probe-record.js';
import {
  createReport,
  DEFAULT_THRESHOLDS,
  recoveryMs,
  type DrillAbort,
  type DrillPhase,
  type DrillThresholds,
  type PreflightFinding,
  type Verdict,
} from '../../drill/report.js';
import { writeReport } from '../../drill/report-store.js';

export interface WriteDrillReportInput {
  readonly drillId: string;
  readonly clusterId: string;
  readonly namespace: string;
  readonly deployment: string;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly phases: readonly DrillPhaseRecord[];
  readonly preflight: readonly PreflightFinding[];
  /** The probe's JSONL file; empty when the probe never ran (a refused drill). */
  readonly probeFile: string;
  /** The probe's rate (requests/s), for the expected interval between requests. */
  readonly rate: number;
  /** Overrides of {@link DEFAULT_THRESHOLDS}. */
  readonly thresholds?: Partial<DrillThresholds>;
  /** Why the drill stopped early, when it did. */
  readonly aborted?: DrillAbort;
}

export interface WriteDrillReportResult {
  readonly verdict: Verdict;
  readonly phases: DrillPhaseFigures[];
  readonly files: DrillReportFiles;
}

function figures(phase: DrillPhase): DrillPhaseFigures {
  const c = phase.continuity;
  return {
    name: phase.name,
    requests: c.successful + c.degraded + c.failed,
    failed: c.failed,
    degraded: c.degraded,
    continuity: c.continuity,
    nonStreamedContinuity: c.nonStreamed.continuity,
    streamContinuity: c.streams.continuity,
    longestOutageMs: c.longestOutage?.ms ?? null,
    gapMs: c.gapMs,
    recoveryMs: phase.name === 'steady-state' ? null : recoveryMs(phase),
  };
}

/** The report activity; reports go under `<reportDir>/<namespace>_<name>/`. */
export function createDrillReportActivities(deps: { reportDir: string }) {
  return {
    writeDrillReport: async (input: WriteDrillReportInput): Promise<WriteDrillReportResult> => {
      let records: ProbeRecord[] = [];
      if (input.probeFile !== '') {
        records = parseProbeRecords(await fs.readFile(input.probeFile, 'utf8')).records;
      }
      const expectedIntervalMs = 1000 / input.rate;
      const phases: DrillPhase[] = input.phases.map((p) => ({
        name: p.name,
        injectedAt: p.injectedAt,
        recovery: p.recovery,
        ...(p.restoreMs !== undefined && { restoreMs: p.restoreMs }),
        continuity: summarizeContinuity(records, p.window, { expectedIntervalMs }),
      }));
      const report = createReport({
        drillId: input.drillId,
        deployment: { namespace: input.namespace, name: input.deployment },
        clusterId: input.clusterId,
        startedAt: input.startedAt,
        endedAt: input.endedAt,
        phases,
        preflight: input.preflight,
        probeFile: input.probeFile,
        thresholds: { ...DEFAULT_THRESHOLDS, ...input.thresholds },
        ...(input.aborted && { aborted: input.aborted }),
      });
      await fs.mkdir(deps.reportDir, { recursive: true });
      const written = await writeReport(path.resolve(deps.reportDir), report, { records });
      return {
        verdict: report.verdict,
        phases: phases.map(figures),
        files: { json: written.json, markdown: written.markdown, html: written.html },
      };
    },
  };
}
