/**
 * The drill's activities (issue #16): cluster steps (cluster.ts, recovery.ts), its objects and their
 * restore (objects.ts), the probe process (probe-process.ts), its continuity watchdog (watchdog.ts)
 * and the report (report.ts). The node drain itself is the remediation's `drainNode`
 * (activities/kubernetes), called by the workflow with the drill's owner.
 */
import path from 'node:path';
import type { KubernetesActivityDeps } from '../kubernetes/node-access.js';
import { drillClusterAccess } from './access.js';
import { createDrillClusterActivities } from './cluster.js';
import { createDrillObjectActivities } from './objects.js';
import { createProbeActivities } from './probe-process.js';
import { createDrillReportActivities } from './report.js';
import { createWatchdogActivities } from './watchdog.js';

export type { ProbeHandle } from './probe-process.js';
export type { WriteDrillReportInput, WriteDrillReportResult } from './report.js';
export type { RecoveryWatch, Victim } from './recovery.js';

export interface DrillActivityDeps extends KubernetesActivityDeps {
  /** Where probe files go (`<drillDir>/<id>/probe.jsonl`) and reports (`<drillDir>/reports/`). */
  readonly drillDir: string;
}

/**
 * Creates the drill activities bound to one cluster and one directory.
 *
 * @example
 * const activities = createDrillActivities({ kc, clusterId: 'fleetmedic', drillDir: '/var/lib/fm/drills' });
 */
export function createDrillActivities(deps: DrillActivityDeps) {
  const access = drillClusterAccess(deps);
  const cluster = createDrillClusterActivities(access);
  const objects = createDrillObjectActivities(access);
  const probe = createProbeActivities({ drillDir: deps.drillDir });
  const report = createDrillReportActivities({ reportDir: path.join(deps.drillDir, 'reports') });
  return { ...cluster, ...objects, ...probe, ...report, ...createWatchdogActivities() };
}

/** The activities' type, for `proxyActivities<DrillActivities>()` in the drill workflow. */
export type DrillActivities = ReturnType<typeof createDrillActivities>;
