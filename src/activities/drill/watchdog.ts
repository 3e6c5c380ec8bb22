/**
 * The drill's continuity watchdog: a long activity that follows the probe's JSONL file and returns as
 * soon as continuity over a sliding window drops below the threshold (src/drill/watchdog.ts decides).
 * The workflow runs it beside the fault phases and aborts the drill when it returns; cancelled when
 * the drill ends. Only the breach's figures reach the workflow, never the records.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { classifyRecord } from '../../drill/continuity.js';
import { parseProbeRecords, type ProbeRecord } from '../../drill/probe-record.js';
import { continuityBreach, type WatchdogBreach } from '../../drill/watchdog.js';
import { int, text, validateInput } from '../input.js';
import { activityContext, pause } from '../kubernetes/control.js';

const watchSchema = z.object({
  file: text(4096),
  abortBelow: z.number().gt(0).max(1),
  windowMs: int(1_000, 600_000),
  minRequests: int(1, 100_000),
  pollMs: int(50, 10_000).optional(),
});

/** Reads what was appended to `file` since `offset`: the complete lines' records and the new offset. */
function readAppended(file: string, offset: number): { records: ProbeRecord[]; offset: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return { records: [], offset };
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size <= offset) return { records: [], offset };
    const buf = Buffer.alloc(size - offset);
    const read = fs.readSync(fd, buf, 0, buf.length, offset);
    const text = buf.subarray(0, read).toString('utf8');
    // A line still being written is read again next time.
    const end = text.lastIndexOf('\n');
    if (end < 0) return { records: [], offset };
    return {
      records: parseProbeRecords(text.slice(0, end + 1)).records,
      offset: offset + Buffer.byteLength(text.slice(0, end + 1)),
    };
  } finally {
    fs.closeSync(fd);
  }
}

/** The watchdog activity. */
export function createWatchdogActivities() {
  return {
    /**
     * Follows the probe file `file` and returns the breach as soon as continuity over the last
     * `windowMs` falls below `abortBelow` with at least `minRequests` measured; runs until cancelled
     * otherwise, heartbeating every poll (default 500 ms). A retry reads the file from its start.
     *
     * It arms at the probe's first successful answer (a gateway that has not yet seen its replicas
     * Ready fails the first requests of a drill: not a drop of continuity), or `windowMs` after it
     * started watching when no answer succeeded by then (a service that never answers still aborts
     * the drill): requests started before are not judged.
     */
    watchContinuity: async (input: {
      file: string;
      abortBelow: number;
      windowMs: number;
      minRequests: number;
      pollMs?: number;
    }): Promise<WatchdogBreach> => {
      const i = validateInput('watchContinuity', watchSchema, input);
      const ctx = activityContext();
      let offset = 0;
      let recent: ProbeRecord[] = [];
      let armedAt = Date.now() + i.windowMs;
      for (;;) {
        const appended = readAppended(i.file, offset);
        offset = appended.offset;
        const now = Date.now();
        for (const r of appended.records) {
          if (classifyRecord(r) === 'successful') armedAt = Math.min(armedAt, r.t);
        }
        // Requests last long (a stream up to the SLO's total): keep a minute beyond the window.
        recent = [...recent, ...appended.records].filter((r) => r.t >= now - i.windowMs - 60_000);
        const breach = now >= armedAt ? continuityBreach(recent, now, { ...i, since: armedAt }) : null;
        if (breach) return breach;
        ctx?.heartbeat({ offset });
        await pause(i.pollMs ?? 500, ctx?.cancellationSignal);
      }
    },
  };
}
