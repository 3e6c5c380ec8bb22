import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * Parsing of incoming alerts, pure: Alertmanager webhook v4 payloads and fleetmedic's generic JSON
 * form both become {@link IncomingAlert}s (one per alert that names a node and carries valid GPU
 * fields) and {@link RejectedAlert}s (with the reason). Nothing here does I/O.
 */

/** Where the parts of an alert come from; every list is tried in order and the first label present wins. */
export interface AlertFieldOptions {
  /** Labels naming the Kubernetes node. */
  readonly nodeLabels: readonly string[];
  /** Labels (then annotations) holding the XID. */
  readonly xidLabels: readonly string[];
  /** Labels holding the GPU index. */
  readonly gpuLabels: readonly string[];
  /** Labels holding a DCGM health error (DCGM_FR_* name or number). */
  readonly dcgmCodeLabels: readonly string[];
  /** Pairs of labels naming the workload pod on the faulty GPU, tried in order. */
  readonly podLabels: readonly { readonly namespace: string; readonly pod: string }[];
  /**
   * Pods whose name matches this pattern are the exporter itself, not a workload: when Prometheus
   * scrapes dcgm-exporter without `honor_labels`, the unprefixed `pod` label is the exporter's pod,
   * and restarting it would fix nothing.
   */
  readonly exporterPodPattern: string;
}

/**
 * The node label names fleetmedic accepts by default: dcgm-exporter's `Hostname` (released versions)
 * and `hostname` (newer ones), the generic `node` / `kubernetes_node`, and the `exported_*` forms a
 * ServiceMonitor scrape produces when the target carries a label of the same name.
 */
export const DEFAULT_NODE_LABELS: readonly string[] = Object.freeze([
  'Hostname',
  'hostname',
  'exported_Hostname',
  'exported_hostname',
  'node',
  'kubernetes_node',
  'exported_node',
  'exported_kubernetes_node',
]);

/** Defaults for {@link AlertFieldOptions}, matching dcgm-exporter's labels. */
export const DEFAULT_ALERT_FIELDS: AlertFieldOptions = Object.freeze({
  nodeLabels: DEFAULT_NODE_LABELS,
  // `DCGM_FI_DEV_XID_ERRORS` holds the last XID (a gauge): rules often copy `$value` into it.
  xidLabels: Object.freeze(['xid', 'err_code', 'DCGM_FI_DEV_XID_ERRORS']),
  gpuLabels: Object.freeze(['gpu']),
  dcgmCodeLabels: Object.freeze(['dcgm_code', 'dcgm_error']),
  podLabels: Object.freeze([
    Object.freeze({ namespace: 'exported_namespace', pod: 'exported_pod' }),
    Object.freeze({ namespace: 'namespace', pod: 'pod' }),
  ]),
  exporterPodPattern: 'dcgm-exporter',
});

/** One alert that names a node, normalised from either input form. */
export interface IncomingAlert {
  /** Position of the alert in the payload, so answers can point at it. */
  readonly index: number;
  readonly alertName: string;
  readonly status: 'firing' | 'resolved';
  /** The alert's labels (with `alertname`), for rule matching. */
  readonly labels: Readonly<Record<string, string>>;
  readonly node: string;
  /** The label (or field) the node name came from. */
  readonly nodeFrom: string;
  /** One fault episode: the fingerprint (or a hash of the labels) plus startsAt. */
  readonly episodeKey: string;
  readonly xid?: number;
  readonly dcgmCode?: string;
  readonly gpu?: number;
  readonly pods?: readonly { readonly namespace: string; readonly name: string }[];
  readonly startsAt?: string;
}

/** An alert that could not be used, and why (it starts nothing). */
export interface RejectedAlert {
  readonly index: number;
  readonly alertName?: string;
  readonly reason: string;
}

/** A payload that passed the schema: its usable alerts and the rejected ones. */
export interface ParsedPayload {
  readonly format: 'alertmanager' | 'generic';
  /** Where the alerts came from (receiver or source), for the workflow's history. */
  readonly origin: string;
  readonly alerts: readonly IncomingAlert[];
  readonly rejected: readonly RejectedAlert[];
  /** Alerts Alertmanager left out of this notification (`max_alerts`): they were not seen. */
  readonly truncatedAlerts: number;
}

/** A schema problem: where in the payload, and what was wrong. */
export interface PayloadIssue {
  readonly path: string;
  readonly message: string;
}

/** A parsed payload, or why the whole payload was refused (with every schema problem found). */
export type ParseResult =
  | { readonly ok: true; readonly payload: ParsedPayload }
  | { readonly ok: false; readonly error: string; readonly issues: readonly PayloadIssue[] };

/** At most this many alerts per payload; Alertmanager's own `max_alerts` truncates above it. */
export const MAX_ALERTS_PER_PAYLOAD = 1000;

const labelMap = z.record(z.string().max(1024), z.string().max(4096));
const timestamp = z
  .string()
  .max(64)
  .refine((s) => !Number.isNaN(Date.parse(s)), 'an RFC 3339 timestamp');

/**
 * Alertmanager webhook v4. Unknown fields are dropped, not refused: the format keeps growing
 * (`truncatedAlerts`, `notification_reason`, `routeLabels`). `endsAt` is never read: firing alerts
 * carry `0001-01-01T00:00:00Z` or a future time, only `status` says what the alert is.
 */
const alertmanagerSchema = z.object({
  version: z.literal('4', { error: 'version must be "4" (Alertmanager webhook v4)' }).optional(),
  receiver: z.string().max(1024).optional(),
  status: z.enum(['firing', 'resolved']).optional(),
  truncatedAlerts: z.number().int().min(0).optional(),
  alerts: z
    .array(
      z.object({
        status: z.enum(['firing', 'resolved']),
        labels: labelMap,
        annotations: labelMap.optional(),
        startsAt: timestamp.optional(),
        endsAt: z.string().max(64).optional(),
        fingerprint: z.string().max(256).optional(),
      }),
    )
    .min(1, 'at least one alert')
    .max(MAX_ALERTS_PER_PAYLOAD, `at most ${MAX_ALERTS_PER_PAYLOAD} alerts per payload`),
});

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** True for a valid Kubernetes object name (DNS-1123 subdomain), which a node name must be. */
export function isKubernetesName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && name.split('.').every((part) => dnsLabel.test(part));
}

const kubernetesName = z.string().refine(isKubernetesName, 'a Kubernetes name (DNS-1123 subdomain)');

/**
 * fleetmedic's generic alert form, for sources other than Alertmanager:
 *
 * ```json
 * { "source": "my-monitor",
 *   "alerts": [{ "alertName": "GpuXidError", "status": "firing", "node": "gpu-node-7",
 *                "xid": 79, "gpu": 3, "episodeKey": "evt-1234", "labels": { "severity": "critical" } }] }
 * ```
 * `status` defaults to firing; without `episodeKey` the episode is a hash of the alert plus `startsAt`.
 */
const genericSchema = z.object({
  source: z.string().min(1).max(256).optional(),
  alerts: z
    .array(
      z.object({
        alertName: z.string().min(1).max(256),
        status: z.enum(['firing', 'resolved']).default('firing'),
        node: kubernetesName,
        episodeKey: z.string().min(1).max(512).optional(),
        startsAt: timestamp.optional(),
        xid: z.number().int().min(0).max(1_000_000).optional(),
        dcgmCode: z.string().min(1).max(128).optional(),
        gpu: z.number().int().min(0).max(1023).optional(),
        pods: z
          .array(z.object({ namespace: kubernetesName, name: kubernetesName }))
          .max(256)
          .optional(),
        labels: labelMap.optional(),
      }),
    )
    .min(1, 'at least one alert')
    .max(MAX_ALERTS_PER_PAYLOAD, `at most ${MAX_ALERTS_PER_PAYLOAD} alerts per payload`),
});

/** The generic form's type, for sources that build it in TypeScript. */
export type GenericAlertPayload = z.input<typeof genericSchema>;

function issuesOf(error: z.ZodError): PayloadIssue[] {
  return error.issues.slice(0, 20).map((issue) => ({
    path: formatPath(issue.path),
    message: issue.message,
  }));
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(payload)' : out;
}

function schemaFailure(what: string, error: z.ZodError): ParseResult {
  const issues = issuesOf(error);
  const first = issues[0];
  return {
    ok: false,
    error: `invalid ${what} payload: ${first ? `${first.path}: ${first.message}` : 'schema mismatch'}${
      issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''
    }`,
    issues,
  };
}

function firstLabel(
  labels: Readonly<Record<string, string>>,
  names: readonly string[],
): [string, string] | undefined {
  for (const name of names) {
    const value = labels[name];
    if (value !== undefined && value !== '') return [name, value];
  }
  return undefined;
}

/** Parses a label value as a non-negative integer ("79", or "79.0" as Prometheus renders `$value`). */
function integerLabel(value: string): number | undefined {
  const m = /^\s*(\d{1,7})(?:\.0+)?\s*$/.exec(value);
  return m ? Number(m[1]) : undefined;
}

/** A stable key of a label set: Alertmanager's own fingerprint is a hash of the sorted labels too. */
export function labelsHash(labels: Readonly<Record<string, string>>): string {
  const h = createHash('sha256');
  for (const key of Object.keys(labels).sort()) h.update(`${key}\u0000${labels[key]}\u0000`);
  return h.digest('hex').slice(0, 16);
}

type Extracted =
  | {
      ok: true;
      node: string;
      nodeFrom: string;
      xid?: number;
      gpu?: number;
      dcgmCode?: string;
      pods?: { namespace: string; name: string }[];
    }
  | { ok: false; reason: string };

/** Reads node, XID, GPU, DCGM code and pods from an Alertmanager alert's labels. */
function extractFields(
  labels: Readonly<Record<string, string>>,
  annotations: Readonly<Record<string, string>>,
  fields: AlertFieldOptions,
): Extracted {
  const nodeLabel = firstLabel(labels, fields.nodeLabels);
  if (!nodeLabel) {
    return {
      ok: false,
      reason: `no node label: expected one of ${fields.nodeLabels.join(', ')}`,
    };
  }
  const [nodeFrom, node] = nodeLabel;
  if (!isKubernetesName(node)) {
    return {
      ok: false,
      reason: `label ${nodeFrom}=${JSON.stringify(node)} is not a valid Kubernetes node name`,
    };
  }
  const out: Extracted & { ok: true } = { ok: true, node, nodeFrom };

  const xidLabel = firstLabel(labels, fields.xidLabels) ?? firstLabel(annotations, fields.xidLabels);
  if (xidLabel) {
    const xid = integerLabel(xidLabel[1]);
    if (xid === undefined) {
      return {
        ok: false,
        reason: `${xidLabel[0]}=${JSON.stringify(xidLabel[1])} is not an XID (a non-negative integer)`,
      };
    }
    out.xid = xid;
  }
  const gpuLabel = firstLabel(labels, fields.gpuLabels);
  if (gpuLabel) {
    const gpu = integerLabel(gpuLabel[1]);
    if (gpu === undefined || gpu > 1023) {
      return {
        ok: false,
        reason: `label ${gpuLabel[0]}=${JSON.stringify(gpuLabel[1])} is not a GPU index (0-1023)`,
      };
    }
    out.gpu = gpu;
  }
  const dcgm = firstLabel(labels, fields.dcgmCodeLabels);
  if (dcgm) out.dcgmCode = dcgm[1].slice(0, 128);

  const exporter = fields.exporterPodPattern ? patternOf(fields.exporterPodPattern) : undefined;
  for (const pair of fields.podLabels) {
    const pod = labels[pair.pod];
    const namespace = labels[pair.namespace];
    if (!pod || !namespace) continue;
    if (exporter?.test(pod)) continue;
    if (isKubernetesName(pod) && isKubernetesName(namespace)) out.pods = [{ namespace, name: pod }];
    break;
  }
  return out;
}

const patterns = new Map<string, RegExp>();

function patternOf(source: string): RegExp {
  let re = patterns.get(source);
  if (!re) {
    re = new RegExp(source);
    patterns.set(source, re);
  }
  return re;
}

/**
 * Parses an Alertmanager webhook v4 payload (already JSON-decoded).
 *
 * Schema errors (wrong types, no alerts) fail the whole payload; an alert without a node label or
 * with an unreadable XID / GPU label is rejected on its own, with the reason, and the others go on.
 *
 * @example
 * const r = parseAlertmanagerPayload(JSON.parse(body));
 * if (r.ok) for (const a of r.payload.alerts) console.log(a.node, a.xid);
 */
export function parseAlertmanagerPayload(
  body: unknown,
  fields: AlertFieldOptions = DEFAULT_ALERT_FIELDS,
): ParseResult {
  const parsed = alertmanagerSchema.safeParse(body);
  if (!parsed.success) return schemaFailure('Alertmanager webhook v4', parsed.error);
  const alerts: IncomingAlert[] = [];
  const rejected: RejectedAlert[] = [];
  parsed.data.alerts.forEach((a, index) => {
    const alertName = a.labels.alertname;
    if (!alertName) {
      rejected.push({ index, reason: 'the alert has no alertname label' });
      return;
    }
    const fieldsOut = extractFields(a.labels, a.annotations ?? {}, fields);
    if (!fieldsOut.ok) {
      rejected.push({ index, alertName, reason: fieldsOut.reason });
      return;
    }
    const { ok: _ok, ...rest } = fieldsOut;
    const identity = a.fingerprint && a.fingerprint.length > 0 ? a.fingerprint : labelsHash(a.labels);
    alerts.push({
      index,
      alertName,
      status: a.status,
      labels: a.labels,
      episodeKey: `${identity}@${a.startsAt ?? 'unknown-start'}`,
      ...rest,
      ...(a.startsAt !== undefined && { startsAt: a.startsAt }),
    });
  });
  return {
    ok: true,
    payload: {
      format: 'alertmanager',
      origin: `alertmanager:${parsed.data.receiver ?? 'unknown-receiver'}`,
      alerts,
      rejected,
      truncatedAlerts: parsed.data.truncatedAlerts ?? 0,
    },
  };
}

/**
 * Parses fleetmedic's generic JSON alert form (already JSON-decoded). Each alert names its node
 * directly; its labels (plus `alertname`) are what rules match on.
 */
export function parseGenericPayload(body: unknown): ParseResult {
  const parsed = genericSchema.safeParse(body);
  if (!parsed.success) return schemaFailure('generic alert', parsed.error);
  const alerts = parsed.data.alerts.map((a, index): IncomingAlert => {
    const labels = { ...a.labels, alertname: a.alertName };
    const identity =
      a.episodeKey ??
      `${labelsHash({
        ...labels,
        node: a.node,
        ...(a.xid !== undefined && { xid: String(a.xid) }),
        ...(a.gpu !== undefined && { gpu: String(a.gpu) }),
        ...(a.dcgmCode !== undefined && { dcgm: a.dcgmCode }),
      })}@${a.startsAt ?? 'unknown-start'}`;
    return {
      index,
      alertName: a.alertName,
      status: a.status,
      labels,
      node: a.node,
      nodeFrom: 'node',
      episodeKey: identity,
      ...(a.xid !== undefined && { xid: a.xid }),
      ...(a.dcgmCode !== undefined && { dcgmCode: a.dcgmCode }),
      ...(a.gpu !== undefined && { gpu: a.gpu }),
      ...(a.pods !== undefined && { pods: a.pods }),
      ...(a.startsAt !== undefined && { startsAt: a.startsAt }),
    };
  });
  return {
    ok: true,
    payload: {
      format: 'generic',
      origin: `generic:${parsed.data.source ?? 'unknown-source'}`,
      alerts,
      rejected: [],
      truncatedAlerts: 0,
    },
  };
}

/** Which form a decoded body looks like: Alertmanager when its alerts carry `labels`. */
export function detectFormat(body: unknown): 'alertmanager' | 'generic' {
  if (typeof body === 'object' && body !== null && 'alerts' in body) {
    const alerts = body.alerts;
    if (Array.isArray(alerts) && alerts.some((a) => typeof a === 'object' && a !== null && 'labels' in a)) {
      const first = alerts[0] as Record<string, unknown> | undefined;
      if (first && !('alertName' in first)) return 'alertmanager';
    }
  }
  if (typeof body === 'object' && body !== null && ('version' in body || 'receiver' in body)) {
    return 'alertmanager';
  }
  return 'generic';
}
