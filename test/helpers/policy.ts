import type { RemediationPolicy } from '../../src/domain/remediation-plan.js';

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
