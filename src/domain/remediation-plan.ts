import type { RemediationClass } from './remediation-class.js';
import { classifyDcgm, classifyXid, type DcgmOverrides, type XidOverrides } from './xid-classification.js';

/** A firing or resolved alert for one node, as the webhook (or a person) hands it to the workflow. */
export interface AlertSignal {
  readonly alertName: string;
  readonly status: 'firing' | 'resolved';
  /** Identifies one fault episode: Alertmanager's fingerprint plus the alert's startsAt. */
  readonly episodeKey: string;
  readonly xid?: number;
  /** A DCGM health error (DCGM_FR_* name or number). */
  readonly dcgmCode?: string;
  readonly gpu?: number;
  /** Pods using the faulty GPU (from the alert's exported_pod labels), for restart-app. */
  readonly pods?: readonly { namespace: string; name: string }[];
  readonly source: string;
}

/** How one cluster's remediations behave; every duration configurable (tests use short ones). */
export interface RemediationPolicy {
  /** Reset the GPU without asking when the class allows it. */
  readonly autoReset: boolean;
  readonly xidOverrides?: XidOverrides;
  readonly dcgmOverrides?: DcgmOverrides;
  readonly approvalReminderMs: number;
  /** After this long waiting for an operator, reminders say ESCALATED. Never returns a node to service. */
  readonly escalateAfterMs: number;
  readonly agentScheduleToStartMs: number;
  readonly agentStartToCloseMs: number;
  readonly drainDeadlineSeconds: number;
  /** A drain whose worker died is retried on another after this long without a heartbeat. */
  readonly drainHeartbeatTimeoutMs: number;
  readonly deleteEmptyDirData: boolean;
  readonly budgetRetryMs: number;
  /**
   * Storm damping: when at least `stormFailures` nodes (this one included) failed within the last
   * minute, a quarantined node waits `stormSettleMs` before triage, so that the cordons of the whole
   * storm go before the diagnosis of any (0 turns it off).
   */
  readonly stormFailures: number;
  readonly stormSettleMs: number;
  /** How often a drain waiting for capacity checks again. */
  readonly capacityRetryMs: number;
  readonly diagLevel: 1 | 2 | 3 | 4;
  /**
   * How long after an automatic reboot the node may take to come back with a new boot ID
   * (`status.nodeInfo.bootID`) and Ready; past it, the node is held for an operator.
   */
  readonly rebootDeadlineMs: number;
}

export const DEFAULT_REMEDIATION_POLICY: RemediationPolicy = Object.freeze({
  autoReset: true,
  approvalReminderMs: 15 * 60_000,
  escalateAfterMs: 4 * 3600_000,
  agentScheduleToStartMs: 60_000,
  agentStartToCloseMs: 5 * 60_000,
  drainDeadlineSeconds: 1800,
  drainHeartbeatTimeoutMs: 30_000,
  deleteEmptyDirData: true,
  budgetRetryMs: 10_000,
  stormFailures: 10,
  stormSettleMs: 15_000,
  capacityRetryMs: 30_000,
  diagLevel: 2,
  rebootDeadlineMs: 15 * 60_000,
});

/**
 * The class of an alert: by XID when it carries one, else by DCGM code; an alert with neither is
 * unknown and waits for an operator (quarantined), the fail-safe choice.
 */
export function classifyAlert(
  alert: AlertSignal,
  policy: Pick<RemediationPolicy, 'xidOverrides' | 'dcgmOverrides'>,
): {
  class: RemediationClass;
  reason: string;
} {
  if (alert.xid !== undefined) {
    const c = classifyXid(alert.xid, policy.xidOverrides);
    return { class: c.class, reason: `XID ${alert.xid}: ${c.reason}` };
  }
  if (alert.dcgmCode !== undefined) {
    const c = classifyDcgm(alert.dcgmCode, policy.dcgmOverrides);
    return { class: c.class, reason: `${alert.dcgmCode}: ${c.reason}` };
  }
  return { class: 'needs-operator', reason: `alert ${alert.alertName} names no XID or DCGM code` };
}

/** How a quarantined node gets repaired for its class. */
export type RepairKind = 'automatic-reset' | 'reset' | 'reboot' | 'operator-only';

export interface RepairPlan {
  readonly kind: RepairKind;
  /** What is proposed, for the operator and the UI. */
  readonly description: string;
}

/** The repair for a class: reset automatically where allowed, else ask; reboots and worse need an operator. */
export function planRepair(cls: RemediationClass, policy: Pick<RemediationPolicy, 'autoReset'>): RepairPlan {
  switch (cls) {
    case 'reset-gpu':
      return policy.autoReset
        ? { kind: 'automatic-reset', description: 'reset the faulty GPU(s)' }
        : { kind: 'reset', description: 'approve a reset of the faulty GPU(s)' };
    case 'reboot-node':
      return {
        kind: 'reboot',
        description: 'approve a reboot of the node (or reboot it and mark it repaired)',
      };
    case 'replace-hardware':
      return {
        kind: 'operator-only',
        description: 'replace the faulty hardware, then mark the node repaired',
      };
    default:
      return {
        kind: 'operator-only',
        description: `investigate (${cls}), repair, then mark the node repaired`,
      };
  }
}

/** The GPUs named by the alerts, or every GPU index up to `gpuCount` when none names one. */
export function faultyGpus(alerts: readonly AlertSignal[], gpuCount = 8): number[] {
  const named = [...new Set(alerts.map((a) => a.gpu).filter((g): g is number => g !== undefined))].sort(
    (a, b) => a - b,
  );
  return named.length > 0 ? named : Array.from({ length: gpuCount }, (_, i) => i);
}
