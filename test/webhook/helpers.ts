import fs from 'node:fs';
import type { StartRemediationOptions } from '../../src/client/remediation-client.js';
import type { AlertSignal } from '../../src/domain/remediation-plan.js';
import { CLUSTER_LABEL } from '../../src/k8s/labels.js';
import { remediationWorkflowId } from '../../src/contracts/ids.js';
import type { AuthConfig } from '../../src/webhook/auth.js';
import { createWebhookMetrics } from '../../src/webhook/metrics.js';
import type { NodeLookup } from '../../src/webhook/node-lookup.js';
import { parseRules, type NodeFacts, type RuleSet } from '../../src/webhook/rules.js';
import type { RemediationStarter } from '../../src/webhook/starter.js';
import { buildWebhookServer, type WebhookApp, type WebhookDeps } from '../../src/webhook/server.js';

export const CLUSTER = 'fmunit';
export const TOKEN = 'test-token-0123456789abcdef';
export const HMAC_SECRET = 'hmac-secret-0123456789abcdef';
/** A token with the `operator` scope only (chat-ops). */
export const OPERATOR_TOKEN = 'operator-token-0123456789abcdef';

/** Reads a fixture from test/fixtures/alertmanager. */
export function fixture(name: string): Record<string, unknown> {
  return JSON.parse(
    fs.readFileSync(new URL(`../fixtures/alertmanager/${name}`, import.meta.url), 'utf8'),
  ) as Record<string, unknown>;
}

/** The SYNTHETIC dcgm-exporter XID payload with its node label set to `node`. */
export function xidPayload(node = 'gpu-node-2', overrides: Record<string, string> = {}) {
  const body = fixture('SYNTHETIC_am_v4_gpu_xid_firing.json') as {
    alerts: { labels: Record<string, string>; fingerprint?: string; startsAt?: string; status: string }[];
  };
  const alert = body.alerts[0]!;
  alert.labels = { ...alert.labels, Hostname: node, ...overrides };
  return body;
}

/** Records every call; answers like Temporal would (one run per workflow ID until told otherwise). */
export class FakeStarter implements RemediationStarter {
  readonly started: StartRemediationOptions[] = [];
  readonly resolved: { clusterId: string; node: string; alert: AlertSignal }[] = [];
  readonly runs = new Map<string, string>();
  fail: Error | undefined;
  delayMs = 0;
  private seq = 0;

  get calls(): number {
    return this.started.length + this.resolved.length;
  }

  async startOrJoin(options: StartRemediationOptions) {
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.fail) throw this.fail;
    this.started.push(options);
    const workflowId = remediationWorkflowId(options.clusterId, options.node);
    let runId = this.runs.get(workflowId);
    if (!runId) {
      runId = `run-${++this.seq}`;
      this.runs.set(workflowId, runId);
    }
    return { workflowId, runId };
  }

  recordResolved(options: { clusterId: string; node: string; alert: AlertSignal }) {
    if (this.fail) return Promise.reject(this.fail);
    this.resolved.push(options);
    const workflowId = remediationWorkflowId(options.clusterId, options.node);
    return Promise.resolve(this.runs.has(workflowId) ? { workflowId } : undefined);
  }
}

/** Nodes from a table; a name mapped to an Error makes the read fail. */
export class FakeNodes implements NodeLookup {
  reads = 0;
  constructor(readonly nodes: Map<string, NodeFacts | Error> = defaultNodes()) {}
  get(name: string): Promise<NodeFacts | null> {
    this.reads++;
    const n = this.nodes.get(name);
    if (n instanceof Error) return Promise.reject(n);
    return Promise.resolve(n ?? null);
  }
}

export function node(
  name: string,
  labels: Record<string, string> = {},
  annotations: Record<string, string> = {},
): NodeFacts {
  return {
    name,
    labels: { 'kubernetes.io/hostname': name, [CLUSTER_LABEL]: CLUSTER, ...labels },
    annotations,
  };
}

export function defaultNodes(): Map<string, NodeFacts | Error> {
  return new Map<string, NodeFacts | Error>([
    ['gpu-node-1', node('gpu-node-1', { pool: 'a100' })],
    ['gpu-node-2', node('gpu-node-2', { pool: 'h100' })],
    ['gpu-node-3', node('gpu-node-3', { pool: 'h100' })],
    ['gpu-node-4', node('gpu-node-4', { pool: 'h100' }, { 'fleetmedic.io/opt-out': 'true' })],
  ]);
}

export const RULES_DOC = {
  rules: [
    { name: 'app-xids', match: { alertname: 'GpuXidCritical', xid: [13, 31, 43] }, action: 'ignore' },
    {
      name: 'gpu-faults',
      match: { alertname: ['GpuXidCritical', 'GpuXidError', 'GpuHealth'] },
      action: 'remediate',
      policy: { autoReset: false, diagLevel: 1 },
    },
  ],
};

export function rules(doc: unknown = RULES_DOC): RuleSet {
  return parseRules(doc, 'test rules');
}

export const AUTH: AuthConfig = {
  tokens: [
    { caller: 'alertmanager', token: TOKEN, scopes: ['alerts'] },
    { caller: 'chatops-alice', token: OPERATOR_TOKEN, scopes: ['operator'] },
  ],
  hmacKeys: [{ caller: 'other-source', secret: HMAC_SECRET, scopes: ['alerts', 'operator'] }],
};

export interface Harness {
  app: WebhookApp;
  starter: FakeStarter;
  nodes: FakeNodes;
  deps: WebhookDeps;
}

/** A webhook with fakes; `overrides` replace any dependency. */
export async function harness(overrides: Partial<WebhookDeps> = {}): Promise<Harness> {
  const starter = (overrides.starter as FakeStarter | undefined) ?? new FakeStarter();
  const nodes = (overrides.nodes as FakeNodes | undefined) ?? new FakeNodes();
  const deps: WebhookDeps = {
    clusterId: CLUSTER,
    taskQueue: 'fleetmedic',
    rules: rules(),
    auth: AUTH,
    metrics: createWebhookMetrics({ defaultMetrics: false }),
    ...overrides,
    starter,
    nodes,
  };
  const app = await buildWebhookServer(deps);
  return { app, starter, nodes, deps };
}

export const auth = { authorization: `Bearer ${TOKEN}` };

/** POSTs a JSON body (object or raw string) with the test token. */
export async function post(
  app: WebhookApp,
  body: unknown,
  options: { url?: string; headers?: Record<string, string> } = {},
) {
  const res = await app.inject({
    method: 'POST',
    url: options.url ?? '/v1/alerts/alertmanager',
    headers: { 'content-type': 'application/json', ...auth, ...options.headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.statusCode, body: safeJson(res.body), headers: res.headers };
}

function safeJson(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { raw: text };
  }
}
