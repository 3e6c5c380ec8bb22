import { DefaultLogger, Runtime } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../src/config/config.js';
import { resolveTool } from '../../src/toolchain/toolchain.js';
import { SEARCH_ATTRIBUTES } from '../../src/contracts/search-attributes.js';

/** Path of the Temporal CLI built by `fleetmedic toolchain` (or named by FLEETMEDIC_TEMPORAL_BIN). */
export async function temporalBinary(): Promise<string> {
  return (await resolveTool('temporal', { cacheDir: loadConfig().cacheDir })).path;
}

/** The Temporal server built from go.temporal.io/server (the mutual-TLS tests; the dev server has no TLS). */
export async function temporalServerBinary(): Promise<string> {
  return (await resolveTool('temporal-server', { cacheDir: loadConfig().cacheDir })).path;
}

/**
 * A fresh Temporal dev server on 127.0.0.1 and a free port, with fleetmedic's search attributes, for
 * one test file. The SDK's own download cannot reach its server here, so it runs the cached CLI.
 */
export async function createTemporalTestEnv(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: await temporalBinary() },
      ip: '127.0.0.1',
      searchAttributes: [...SEARCH_ATTRIBUTES],
      extraArgs: ['--log-level', 'error'],
    },
  });
}

let runtimeInstalled = false;

/** Installs the SDK runtime with a WARN-level logger, so worker lifecycle chatter stays out of test output. */
export function installQuietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: new DefaultLogger('WARN') });
}

/** One local activity of a workflow, as its marker in the history records it. */
export interface LocalActivityRecord {
  readonly activityType: string;
  /** The attempt that ended it (1 = the first try succeeded or failed for good). */
  readonly attempt: number;
  /** When the worker saw it complete, in ms since the epoch (the worker's clock). */
  readonly completedAt: number;
}

/** The part of a workflow history (`handle.fetchHistory()`) this module reads. */
export interface HistoryWithMarkers {
  readonly events?:
    | readonly {
        readonly markerRecordedEventAttributes?: {
          readonly markerName?: string | null;
          readonly details?: Record<
            string,
            { readonly payloads?: readonly { readonly data?: Uint8Array | null }[] | null }
          > | null;
        } | null;
      }[]
    | null;
}

/**
 * The local activities of a history, in order, read from their `core_local_activity` markers. A local
 * activity reaches the history only when it ends: its failed attempts leave no other trace.
 */
export function localActivityMarkers(history: HistoryWithMarkers): LocalActivityRecord[] {
  const records: LocalActivityRecord[] = [];
  for (const e of history.events ?? []) {
    const m = e.markerRecordedEventAttributes;
    if (m?.markerName !== 'core_local_activity') continue;
    const payload = m.details?.['data']?.payloads?.[0]?.data;
    if (!payload) continue;
    const data = JSON.parse(Buffer.from(payload).toString('utf8')) as {
      activity_type?: string;
      attempt?: number;
      complete_time?: { seconds?: number; nanos?: number } | null;
    };
    const t = data.complete_time;
    records.push({
      activityType: data.activity_type ?? '',
      attempt: data.attempt ?? 0,
      completedAt: t ? (t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : Number.NaN,
    });
  }
  return records;
}
