/**
 * What fleetmedic tells operators, and how each sink type renders it. Pure functions: the workflow
 * decides when to notify, the notify activity sends, these decide what the receiver sees.
 */

/** Every kind of notification, in the order an operator meets them. */
export const NOTIFICATION_KINDS = [
  'needs-operator',
  'reminder',
  'escalated',
  'validation-failed',
  'agent-unreachable',
  'breaker-tripped',
  'automation-blocked',
  'returned-to-service',
] as const;

/**
 * - `needs-operator`: a remediation waits for approval (entering `awaiting-approval`);
 * - `reminder`: it still waits (every `approvalReminderMs`);
 * - `escalated`: it has waited longer than `escalateAfterMs` (later reminders carry `escalated: true`);
 * - `validation-failed`: `dcgmi diag` failed after the repair; the node stays quarantined for an operator;
 * - `agent-unreachable`: the node agent never picked up its task (schedule-to-start timeout);
 * - `breaker-tripped`: the fleet's circuit breaker refused automatic quarantine;
 * - `automation-blocked`: automatic quarantine refused for another reason (paused, budget not evaluable);
 * - `returned-to-service`: the node was validated and released.
 */
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

/** What the workflow hands the notify activity. Times and IDs come from the workflow (deterministic). */
export interface NotificationInput {
  /** Unique per notification (`<workflowId>/<runId>/<seq>`): receivers may deduplicate on it. */
  readonly id: string;
  readonly kind: NotificationKind;
  readonly cluster: string;
  readonly node: string;
  readonly workflowId: string;
  readonly runId: string;
  readonly phase: string;
  /** The remediation class, when known. */
  readonly class: string | null;
  readonly message: string;
  /** How many reminders were sent so far (0 for the first notice). */
  readonly reminder: number;
  readonly escalated: boolean;
  /** ISO-8601 time the workflow raised it. */
  readonly at: string;
}

/** The JSON object a `json` sink receives (version 1; new fields may be added, none removed). */
export interface JsonNotification extends NotificationInput {
  readonly version: 1;
  /** The workflow's page in the Temporal UI, when the UI address is known. */
  readonly url: string | null;
}

/**
 * The Temporal UI page of a workflow run, or null when the UI address is unknown.
 *
 * @example workflowUiUrl('http://127.0.0.1:8233', 'default', 'remediation/c1/gpu-7', 'a1b2')
 *   // 'http://127.0.0.1:8233/namespaces/default/workflows/remediation%2Fc1%2Fgpu-7/a1b2/history'
 */
export function workflowUiUrl(
  uiUrl: string | undefined,
  namespace: string,
  workflowId: string,
  runId?: string,
): string | null {
  if (!uiUrl) return null;
  const base = uiUrl.replace(/\/+$/, '');
  const page = `${base}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${page}/${encodeURIComponent(runId)}/history` : page;
}

/** The body of a `json` sink's POST. */
export function jsonNotification(n: NotificationInput, url: string | null): JsonNotification {
  return {
    version: 1,
    id: n.id,
    kind: n.kind,
    cluster: n.cluster,
    node: n.node,
    workflowId: n.workflowId,
    runId: n.runId,
    phase: n.phase,
    class: n.class,
    message: n.message,
    reminder: n.reminder,
    escalated: n.escalated,
    at: n.at,
    url,
  };
}

const HEADLINES: Record<NotificationKind, string> = {
  'needs-operator': ':warning: needs an operator',
  reminder: ':hourglass: still waiting for an operator',
  escalated: ':rotating_light: ESCALATED: still waiting for an operator',
  'validation-failed': ':x: validation failed, node stays quarantined',
  'agent-unreachable': ':electric_plug: node agent unreachable',
  'breaker-tripped': ':no_entry: fleet circuit breaker refused automatic quarantine',
  'automation-blocked': ':double_vertical_bar: automatic quarantine refused',
  'returned-to-service': ':white_check_mark: returned to service',
};

/** Escapes the three characters Slack's mrkdwn treats as control characters. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * The body of a `slack` sink's POST: `{"text": ...}` in Slack mrkdwn (also what Mattermost, Rocket.Chat
 * and Teams' Slack-compatible webhooks accept). User-controlled text is escaped; the link is Slack's
 * `<url|label>` form.
 */
export function slackNotification(n: NotificationInput, url: string | null): { text: string } {
  const escalated = n.escalated && n.kind !== 'escalated' ? ' (ESCALATED)' : '';
  const reminder = n.reminder > 0 ? ` · reminder ${n.reminder}` : '';
  const lines = [
    `*fleetmedic* · node \`${escapeMrkdwn(n.node)}\` (cluster \`${escapeMrkdwn(n.cluster)}\`): ${HEADLINES[n.kind]}${escalated}`,
    escapeMrkdwn(n.message),
    `phase *${escapeMrkdwn(n.phase)}*${n.class ? ` · class *${escapeMrkdwn(n.class)}*` : ''}${reminder}`,
    url ? `<${url}|${escapeMrkdwn(n.workflowId)}>` : `workflow \`${escapeMrkdwn(n.workflowId)}\``,
  ];
  return { text: lines.join('\n') };
}
