/**
 * The drill's probe as a process of its own (`fleetmedic drill-probe`), outside the worker: started
 * detached, writing its JSONL under the drill's directory, and stopped by SIGTERM. Only summaries
 * ever reach the workflow.
 */
import { ApplicationFailure } from '@temporalio/common';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { FLEETMEDIC_BIN } from '../../cli/bin-path.js';
import { pidAlive } from '../../stack/processes.js';
import { DrillFailureType } from '../../contracts/drill.js';
import { int, text, validateInput } from '../input.js';
import { activityContext, pause } from '../kubernetes/control.js';

/** A probe process the drill started. */
export interface ProbeHandle {
  readonly pid: number;
  readonly file: string;
}

const alive = pidAlive;

/** True when `pid` is still this drill's probe (a pid reused by another process is never signalled). */
function isOurProbe(handle: ProbeHandle): boolean {
  try {
    const cmdline = fs.readFileSync(`/proc/${handle.pid}/cmdline`, 'utf8').split('\0');
    return cmdline.includes('drill-probe') && cmdline.includes(handle.file);
  } catch {
    return false;
  }
}

function lineCount(file: string): number {
  try {
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '').length;
  } catch {
    return 0;
  }
}

const startSchema = z.object({
  drillId: text(63).regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be a drill ID'),
  targetUrl: z.url(),
  rate: z.number().positive().max(1000).optional(),
  streamShare: z.number().min(0).max(1).optional(),
  maxSeconds: int(1, 86_400),
});

/** The probe activities; files go under `<drillDir>/<drill id>/`. */
export function createProbeActivities(deps: { drillDir: string }) {
  return {
    /**
     * Starts the probe detached (it outlives this activity, never the drill's deadline:
     * `--duration maxSeconds`) and waits for its first record. A retry finds the running probe by
     * its pid file.
     */
    startProbe: async (input: {
      drillId: string;
      targetUrl: string;
      rate?: number;
      streamShare?: number;
      maxSeconds: number;
    }): Promise<ProbeHandle> => {
      const i = validateInput('startProbe', startSchema, input);
      const dir = path.join(deps.drillDir, i.drillId);
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, 'probe.jsonl');
      const pidFile = path.join(dir, 'probe.pid');
      const ctx = activityContext();
      let handle: ProbeHandle | undefined;
      try {
        const pid = Number(fs.readFileSync(pidFile, 'utf8'));
        if (isOurProbe({ pid, file })) handle = { pid, file };
      } catch {
        // No probe yet.
      }
      if (!handle) {
        const log = fs.openSync(path.join(dir, 'probe.log'), 'a');
        const args = [FLEETMEDIC_BIN, 'drill-probe', '--target-url', i.targetUrl, '--out', file];
        args.push('--rate', String(i.rate ?? 20), '--stream-share', String(i.streamShare ?? 0.5));
        args.push('--duration', String(i.maxSeconds));
        const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log] });
        fs.closeSync(log);
        child.unref();
        if (child.pid === undefined) {
          throw ApplicationFailure.nonRetryable(
            'the probe process did not start',
            DrillFailureType.ProbeFailed,
          );
        }
        handle = { pid: child.pid, file };
        fs.writeFileSync(pidFile, String(child.pid));
      }
      const deadline = Date.now() + 60_000;
      while (lineCount(file) === 0) {
        if (!alive(handle.pid) || Date.now() > deadline) {
          const tail = fs.readFileSync(path.join(dir, 'probe.log'), 'utf8').slice(-1000);
          throw ApplicationFailure.nonRetryable(
            `the probe wrote no record (${alive(handle.pid) ? 'after 60 s' : 'it exited'}): ${tail}`,
            DrillFailureType.ProbeFailed,
          );
        }
        ctx?.heartbeat();
        await pause(200, ctx?.cancellationSignal);
      }
      return handle;
    },

    /** Stops the probe (SIGTERM, then SIGKILL after 15 s) and waits until it has exited. */
    stopProbe: async (input: ProbeHandle): Promise<{ stopped: boolean }> => {
      const handle = validateInput('stopProbe', z.object({ pid: int(1, 2 ** 31), file: text(4096) }), input);
      if (!isOurProbe(handle)) return { stopped: false };
      process.kill(handle.pid, 'SIGTERM');
      const deadline = Date.now() + 15_000;
      while (isOurProbe(handle)) {
        if (Date.now() > deadline) process.kill(handle.pid, 'SIGKILL');
        await pause(100, undefined);
      }
      return { stopped: true };
    },
  };
}
