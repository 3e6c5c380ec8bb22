import type { AlertSignal, RemediationPolicy } from '../../src/domain/remediation-plan.js';

/**
 * The remediation policy of the end-to-end tests: the production defaults with the waits shortened so
 * that a remediation on the embedded stack takes seconds (a drain slot re-asked every 0.5 s, a quick
 * `dcgmi diag -r 1`, a 2-minute drain deadline). Files add the reminder interval they test.
 */
export const FAST_POLICY: Readonly<Partial<RemediationPolicy>> = Object.freeze({
  budgetRetryMs: 500,
  agentScheduleToStartMs: 15_000,
  diagLevel: 1,
  drainDeadlineSeconds: 120,
  drainHeartbeatTimeoutMs: 5_000,
  capacityRetryMs: 1_000,
});

let alertSeq = 0;

/**
 * A firing XID alert on GPU 3 (or `extra.gpu`) whose fault episode is new: test files share the
 * stack, and a repeated episode key would be ignored as already handled.
 */
export function xidAlert(xid: number, extra: Partial<AlertSignal> = {}): AlertSignal {
  alertSeq++;
  return {
    alertName: 'GpuXidError',
    status: 'firing',
    episodeKey: `test-${process.pid}-${alertSeq}-${Date.now()}`,
    xid,
    gpu: 3,
    source: 'test',
    ...extra,
  };
}
