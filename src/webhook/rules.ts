import fs from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { REMEDIATION_CLASSES } from '../domain/remediation-class.js';
import type { AlertSignal, RemediationPolicy } from '../domain/remediation-plan.js';
import { ConfigError } from '../errors.js';
import { CLUSTER_LABEL } from '../k8s/labels.js';
import { remediationWorkflowId } from '../contracts/ids.js';
import {
  DEFAULT_ALERT_FIELDS,
  type AlertFieldOptions,
  type IncomingAlert,
  type ParsedPayload,
} from './alertmanager.js';

/**
 * Webhook rules: which alerts start which workflow with which policy, plus the rollout controls
 * (shadow mode, a node selector, the opt-out annotation). Like StackStorm rules, each rule has
 * criteria and an action; unlike them, the first matching rule wins, because one node has one
 * remediation and two actions for one alert could not both run.
 *
 * ```yaml
 * mode: active                 # or shadow: record what would happen, act on nothing
 * clusterId: prod-a            # optional; --cluster-id / FLEETMEDIC_CLUSTER_ID otherwise
 * taskQueue: fleetmedic        # optional
 * rollout:
 *   nodeSelector:              # only nodes matching it are touched (Kubernetes label selector)
 *     matchLabels: { nvidia.com/gpu.present: "true" }
 * rules:
 *   - name: xid-app-errors
 *     match: { alertname: GpuXidCritical, xid: [13, 31, 43, 45, 68, 109] }
 *     action: ignore
 *   - name: gpu-faults
 *     match:
 *       alertname: [GpuXidCritical, GpuHealthFailure]
 *       labels: { severity: critical, cluster: { regex: "prod-.*" } }
 *     action: remediate
 *     policy: { autoReset: false, diagLevel: 2 }
 *     shadow: false             # per rule; the global mode wins when it is shadow
 * ```
 *
 * Evaluation is pure ({@link matchRule}, {@link gateNode}, {@link planAlert}): it is both what the
 * server does and the dry-run that answers "what would this payload do".
 */

/** Nodes carrying this annotation (any value but "false") are never touched by fleetmedic. */
export const OPT_OUT_ANNOTATION = 'fleetmedic.io/opt-out';

const labelValue = z.string().max(1024);

/** One label criterion: a value (equals), or `in`, `notIn`, `regex`, `exists`. */
const criterion = z.union([
  labelValue,
  z.strictObject({ in: z.array(labelValue).min(1) }),
  z.strictObject({ notIn: z.array(labelValue).min(1) }),
  z.strictObject({
    regex: z.string().refine(validRegex, 'a valid regular expression'),
  }),
  z.strictObject({ exists: z.boolean() }),
]);

function validRegex(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}

const stringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

const selectorSchema = z.strictObject({
  matchLabels: z.record(z.string(), z.string()).optional(),
  matchExpressions: z
    .array(
      z.strictObject({
        key: z.string().min(1),
        operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
        values: z.array(z.string()).optional(),
      }),
    )
    .optional(),
});

/** A Kubernetes label selector (matchLabels + matchExpressions). */
export type NodeSelector = z.infer<typeof selectorSchema>;

const remediationClass = z.enum(REMEDIATION_CLASSES);

/** The policy fields a rule may set; everything else keeps the workflow's defaults. */
const policySchema = z
  .strictObject({
    autoReset: z.boolean().optional(),
    xidOverrides: z.record(z.string().regex(/^\d+$/, 'an XID number'), remediationClass).optional(),
    dcgmOverrides: z.record(z.string(), remediationClass).optional(),
    // Accepted for rules files written before it was dropped, and ignored: a handled episode is never
    // remediated again, however long after (see docs/remediation.md).
    episodeCooldownMs: z.number().int().min(0).optional(),
    approvalReminderMs: z.number().int().min(1000).optional(),
    escalateAfterMs: z.number().int().min(0).optional(),
    agentScheduleToStartMs: z.number().int().min(1000).optional(),
    agentStartToCloseMs: z.number().int().min(1000).optional(),
    drainDeadlineSeconds: z.number().int().min(1).optional(),
    rebootDeadlineMs: z.number().int().min(1000).optional(),
    deleteEmptyDirData: z.boolean().optional(),
    budgetRetryMs: z.number().int().min(100).optional(),
    stormFailures: z.number().int().min(1).optional(),
    stormSettleMs: z.number().int().min(0).max(600_000).optional(),
    diagLevel: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)]).optional(),
  })
  .transform(({ episodeCooldownMs: _ignored, ...policy }) => policy);

const ruleSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'a rule name (letters, digits, _ . -)'),
  match: z.strictObject({
    alertname: stringOrList,
    labels: z.record(z.string().min(1), criterion).optional(),
    xid: z.array(z.number().int().min(0)).min(1).optional(),
    status: z.enum(['firing', 'resolved']).optional(),
  }),
  action: z.enum(['remediate', 'ignore']),
  policy: policySchema.optional(),
  shadow: z.boolean().default(false),
  nodeSelector: selectorSchema.optional(),
});

const fieldsSchema = z.strictObject({
  nodeLabels: z.array(z.string().min(1)).min(1).optional(),
  xidLabels: z.array(z.string().min(1)).optional(),
  gpuLabels: z.array(z.string().min(1)).optional(),
  dcgmCodeLabels: z.array(z.string().min(1)).optional(),
  podLabels: z.array(z.strictObject({ namespace: z.string().min(1), pod: z.string().min(1) })).optional(),
  exporterPodPattern: z.string().refine(validRegex, 'a valid regular expression').optional(),
});

const rulesFileSchema = z.strictObject({
  mode: z.enum(['active', 'shadow']).default('active'),
  clusterId: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/, 'a DNS label of at most 40 characters')
    .optional(),
  taskQueue: z.string().min(1).optional(),
  fields: fieldsSchema.optional(),
  rollout: z
    .strictObject({
      nodeSelector: selectorSchema.optional(),
    })
    .optional(),
  rules: z.array(ruleSchema).min(1, 'at least one rule'),
});

/** A rule as written in the rules file (defaults applied). */
export type Rule = z.infer<typeof ruleSchema>;

/** A validated rules file. */
export interface RuleSet {
  readonly mode: 'active' | 'shadow';
  readonly clusterId?: string;
  readonly taskQueue?: string;
  readonly fields: AlertFieldOptions;
  readonly nodeSelector?: NodeSelector;
  readonly rules: readonly Rule[];
}

/**
 * Validates a decoded rules document.
 *
 * @throws ConfigError naming the file (`origin`), the path of each problem and what was expected.
 */
export function parseRules(doc: unknown, origin = 'rules'): RuleSet {
  const parsed = rulesFileSchema.safeParse(doc);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .slice(0, 10)
      .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid rules in ${origin}: ${problems.join('; ')}`);
  }
  const names = new Set<string>();
  for (const r of parsed.data.rules) {
    if (names.has(r.name))
      throw new ConfigError(`invalid rules in ${origin}: rule name ${r.name} is used twice`);
    names.add(r.name);
  }
  const f = parsed.data.fields ?? {};
  return Object.freeze({
    mode: parsed.data.mode,
    ...(parsed.data.clusterId !== undefined && { clusterId: parsed.data.clusterId }),
    ...(parsed.data.taskQueue !== undefined && { taskQueue: parsed.data.taskQueue }),
    fields: Object.freeze({
      nodeLabels: f.nodeLabels ?? DEFAULT_ALERT_FIELDS.nodeLabels,
      xidLabels: f.xidLabels ?? DEFAULT_ALERT_FIELDS.xidLabels,
      gpuLabels: f.gpuLabels ?? DEFAULT_ALERT_FIELDS.gpuLabels,
      dcgmCodeLabels: f.dcgmCodeLabels ?? DEFAULT_ALERT_FIELDS.dcgmCodeLabels,
      podLabels: f.podLabels ?? DEFAULT_ALERT_FIELDS.podLabels,
      exporterPodPattern: f.exporterPodPattern ?? DEFAULT_ALERT_FIELDS.exporterPodPattern,
    }),
    ...(parsed.data.rollout?.nodeSelector !== undefined && {
      nodeSelector: parsed.data.rollout.nodeSelector,
    }),
    rules: Object.freeze(parsed.data.rules),
  });
}

/** Reads and validates a rules file (YAML or JSON). */
export async function loadRulesFile(file: string): Promise<RuleSet> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`rules file ${file} could not be read: ${(err as Error).message}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`rules file ${file} is not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  return parseRules(doc, file);
}

function criterionMatches(c: z.infer<typeof criterion>, value: string | undefined): boolean {
  if (typeof c === 'string') return value === c;
  if ('exists' in c) return (value !== undefined) === c.exists;
  if (value === undefined) return 'notIn' in c;
  if ('in' in c) return c.in.includes(value);
  if ('notIn' in c) return !c.notIn.includes(value);
  return anchored(c.regex).test(value);
}

const compiled = new Map<string, RegExp>();

/** A rule's regex, anchored like Prometheus label matchers, compiled once. */
function anchored(source: string): RegExp {
  let re = compiled.get(source);
  if (!re) {
    re = new RegExp(`^(?:${source})$`);
    compiled.set(source, re);
  }
  return re;
}

/** True when the rule's criteria all hold for the alert. */
export function ruleMatches(rule: Rule, alert: IncomingAlert): boolean {
  const names = typeof rule.match.alertname === 'string' ? [rule.match.alertname] : rule.match.alertname;
  if (!names.includes(alert.alertName)) return false;
  if (rule.match.status !== undefined && rule.match.status !== alert.status) return false;
  if (rule.match.xid !== undefined && (alert.xid === undefined || !rule.match.xid.includes(alert.xid))) {
    return false;
  }
  for (const [key, c] of Object.entries(rule.match.labels ?? {})) {
    if (!criterionMatches(c, alert.labels[key])) return false;
  }
  return true;
}

/** The first rule whose criteria match the alert, if any. */
export function matchRule(rules: RuleSet, alert: IncomingAlert): Rule | undefined {
  return rules.rules.find((r) => ruleMatches(r, alert));
}

/** True when a node's labels satisfy a Kubernetes label selector (an empty selector matches all). */
export function selectorMatches(selector: NodeSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const value = labels[e.key];
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (value === undefined || !values.includes(value)) return false;
        break;
      case 'NotIn':
        if (value !== undefined && values.includes(value)) return false;
        break;
      case 'Exists':
        if (value === undefined) return false;
        break;
      case 'DoesNotExist':
        if (value !== undefined) return false;
        break;
    }
  }
  return true;
}

/** What the webhook knows about a node from Kubernetes. */
export interface NodeFacts {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

/** Why an alert starts nothing. Stable codes for metrics and callers; `reason` says it in words. */
export type IgnoreCode =
  | 'invalid'
  | 'no-rule'
  | 'rule-ignores'
  | 'opted-out'
  | 'not-selected'
  | 'other-cluster'
  | 'node-not-found'
  | 'no-remediation-running';

/** The verdict of the node gates for a rule that wants to remediate. */
export type NodeGate =
  { readonly pass: true } | { readonly pass: false; readonly code: IgnoreCode; readonly reason: string };

/**
 * The rollout gates, pure: the node must exist, belong to this cluster, not carry the opt-out
 * annotation, and match the global and the rule's node selector.
 */
export function gateNode(
  rules: RuleSet,
  rule: Rule,
  clusterId: string,
  node: NodeFacts | null,
  nodeName: string,
): NodeGate {
  if (node === null) {
    return {
      pass: false,
      code: 'node-not-found',
      reason: `node ${nodeName} does not exist in cluster ${clusterId}`,
    };
  }
  const optOut = node.annotations[OPT_OUT_ANNOTATION];
  if (optOut !== undefined && optOut.trim().toLowerCase() !== 'false') {
    return {
      pass: false,
      code: 'opted-out',
      reason: `node ${nodeName} carries ${OPT_OUT_ANNOTATION}=${JSON.stringify(optOut)}: fleetmedic never touches it`,
    };
  }
  const owner = node.labels[CLUSTER_LABEL];
  if (owner !== undefined && owner !== clusterId) {
    return {
      pass: false,
      code: 'other-cluster',
      reason: `node ${nodeName} belongs to cluster ${owner} (label ${CLUSTER_LABEL}), this webhook serves ${clusterId}`,
    };
  }
  if (rules.nodeSelector && !selectorMatches(rules.nodeSelector, node.labels)) {
    return {
      pass: false,
      code: 'not-selected',
      reason: `node ${nodeName} does not match the rollout node selector`,
    };
  }
  if (rule.nodeSelector && !selectorMatches(rule.nodeSelector, node.labels)) {
    return {
      pass: false,
      code: 'not-selected',
      reason: `node ${nodeName} does not match the node selector of rule ${rule.name}`,
    };
  }
  return { pass: true };
}

/** What one alert does (or would do), as the dry-run and the server's answer report it. */
export type AlertPlan =
  | {
      readonly index: number;
      readonly alertName: string;
      readonly node: string;
      readonly action: 'start-or-join' | 'record-resolved';
      readonly rule: string;
      readonly workflowId: string;
      /** True when shadow mode records this instead of acting. */
      readonly shadow: boolean;
      readonly policy?: Partial<RemediationPolicy>;
      readonly signal: AlertSignal;
    }
  | {
      readonly index: number;
      readonly alertName?: string;
      readonly node?: string;
      readonly action: 'ignore';
      readonly code: IgnoreCode;
      readonly reason: string;
      readonly rule?: string;
    }
  | {
      readonly index: number;
      readonly alertName?: string;
      readonly action: 'reject';
      readonly code: 'invalid';
      readonly reason: string;
    };

/** Converts a rule's policy (with string XID keys from YAML) to the workflow's policy type. */
export function rulePolicy(rule: Rule): Partial<RemediationPolicy> | undefined {
  if (!rule.policy) return undefined;
  const { xidOverrides, ...rest } = rule.policy;
  return {
    ...rest,
    ...(xidOverrides !== undefined && {
      xidOverrides: Object.fromEntries(Object.entries(xidOverrides).map(([k, v]) => [Number(k), v])),
    }),
  };
}

/** The signal the workflow receives for an alert. */
export function toAlertSignal(alert: IncomingAlert, source: string): AlertSignal {
  return {
    alertName: alert.alertName,
    status: alert.status,
    episodeKey: alert.episodeKey,
    source,
    ...(alert.xid !== undefined && { xid: alert.xid }),
    ...(alert.dcgmCode !== undefined && { dcgmCode: alert.dcgmCode }),
    ...(alert.gpu !== undefined && { gpu: alert.gpu }),
    ...(alert.pods !== undefined && { pods: alert.pods.map((p) => ({ ...p })) }),
  };
}

/**
 * The plan for one alert, pure. `node` is what Kubernetes said about the alert's node: the facts,
 * `null` when it does not exist, or `undefined` when nobody asked (only for alerts no rule acts on,
 * and in an offline dry-run, where the node gates are then reported as not checked).
 */
export function planAlert(
  rules: RuleSet,
  clusterId: string,
  alert: IncomingAlert,
  node: NodeFacts | null | undefined,
  source: string,
): AlertPlan {
  const base = { index: alert.index, alertName: alert.alertName, node: alert.node };
  const rule = matchRule(rules, alert);
  if (!rule) {
    return {
      ...base,
      action: 'ignore',
      code: 'no-rule',
      reason: `no rule matches alert ${alert.alertName} (${alert.status})`,
    };
  }
  if (rule.action === 'ignore') {
    return {
      ...base,
      action: 'ignore',
      code: 'rule-ignores',
      rule: rule.name,
      reason: `rule ${rule.name} ignores it`,
    };
  }
  if (node !== undefined) {
    const gate = gateNode(rules, rule, clusterId, node, alert.node);
    if (!gate.pass)
      return { ...base, action: 'ignore', code: gate.code, rule: rule.name, reason: gate.reason };
  }
  const policy = rulePolicy(rule);
  return {
    ...base,
    action: alert.status === 'firing' ? 'start-or-join' : 'record-resolved',
    rule: rule.name,
    workflowId: remediationWorkflowId(clusterId, alert.node),
    shadow: rules.mode === 'shadow' || rule.shadow,
    ...(policy !== undefined && { policy }),
    signal: toAlertSignal(alert, source),
  };
}

/** True when the alert's rule wants to act on it, so its node must be looked up first. */
export function needsNode(rules: RuleSet, alert: IncomingAlert): boolean {
  return matchRule(rules, alert)?.action === 'remediate';
}

/**
 * The plan for a whole parsed payload, pure: one entry per alert (usable or rejected), in payload
 * order. `nodeFacts` answers what Kubernetes said about a node (see {@link planAlert}); the server
 * reads every node that {@link needsNode} names first, an offline dry-run answers `undefined`.
 *
 * @example
 * const plans = planPayload(rules, 'prod-a', parsed.payload, () => undefined, 'dry-run');
 */
export function planPayload(
  rules: RuleSet,
  clusterId: string,
  payload: ParsedPayload,
  nodeFacts: (name: string) => NodeFacts | null | undefined,
  source: string,
): AlertPlan[] {
  const plans: AlertPlan[] = payload.alerts.map((a) =>
    planAlert(rules, clusterId, a, nodeFacts(a.node), source),
  );
  for (const r of payload.rejected) {
    plans.push({
      index: r.index,
      ...(r.alertName !== undefined && { alertName: r.alertName }),
      action: 'reject',
      code: 'invalid',
      reason: r.reason,
    });
  }
  return plans.sort((a, b) => a.index - b.index);
}
