/**
 * The fleet budget's durable state, for a budget workflow that starts without one (a first start, or
 * after an operator or a test terminated or reset it): the budget must never start empty while nodes
 * drain and an operator's pause stands.
 *
 * - The pause and an open breaker are kept in the settings ConfigMap (k8s/budget-settings.ts), which
 *   the budget writes whenever they change.
 * - Drains in flight: nodes fleetmedic quarantined (the `fleetmedic.io/quarantined` label and the
 *   ownership record naming this cluster's remediation) whose remediation says it holds a slot.
 * - The breaker's recent failures: the same nodes, each failed at its ownership record's time.
 *
 * Registered on the control worker; the budget workflow calls them on the control task queue.
 */
import { CoreV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import PQueue from 'p-queue';
import { z } from 'zod';
import { remediationWorkflowId } from '../contracts/ids.js';
import { statusQuery, type RemediationStatus } from '../contracts/remediation.js';
import type { NodeFailure } from '../domain/fleet-budget.js';
import { makeApiClient, type ApiClientFactory } from '../k8s/api-client.js';
import { isApiError } from '../k8s/api-errors.js';
import {
  budgetSettingsConfigMap,
  DEFAULT_BUDGET_SETTINGS,
  formatBudgetSettings,
  parseBudgetSettings,
  type BudgetSettings,
} from '../k8s/budget-settings.js';
import { parseCordonRecord } from '../k8s/node-ownership.js';
import { CORDON_ANNOTATION, QUARANTINED_LABEL } from '../k8s/remediation-labels.js';
import { text, validateInput } from './input.js';
import { nodeAccess } from './kubernetes/node-access.js';

export interface FleetBudgetRecordDeps {
  readonly kc: KubeConfig;
  readonly client: Client;
  readonly clusterId: string;
  /** The namespace of the settings ConfigMap (the control worker's `settingsNamespace`). */
  readonly settingsNamespace: string;
  readonly apiClient?: ApiClientFactory;
}

/** What a budget workflow starting without state rebuilds itself from. */
export interface FleetBudgetRecords {
  readonly settings: BudgetSettings;
  /**
   * Why the settings object could not be read, when it could not (then `settings` says paused: a
   * record that cannot be read may have held a pause, and a guard that cannot be evaluated blocks).
   */
  readonly settingsError: string | null;
  /** Nodes whose remediation may hold a drain slot (a run that cannot be asked counts as holding one). */
  readonly draining: readonly string[];
  /** The nodes this cluster's remediations quarantined, each failed at its quarantine. */
  readonly failures: readonly NodeFailure[];
  /** What was read, in words, for the budget's log and the test. */
  readonly summary: string;
}

/** Remediation status queries in flight at once while rebuilding. */
const STATUS_QUERY_CONCURRENCY = 8;
const LIST_PAGE = 500;

const settingsSchema = z.object({
  paused: z
    .object({ by: text(256), reason: z.string().max(1024).optional(), at: z.iso.datetime() })
    .nullable(),
  breaker: z.discriminatedUnion('state', [
    z.object({ state: z.literal('closed') }),
    z.object({ state: z.literal('open'), openedAt: z.number().finite(), reason: z.string().max(2048) }),
  ]),
});

/**
 * @example
 * const records = createFleetBudgetRecordActivities({ kc, client, clusterId: 'lab-1', settingsNamespace: 'fleetmedic' });
 * const { draining, settings } = await records.readFleetBudgetRecords();
 */
export function createFleetBudgetRecordActivities(deps: FleetBudgetRecordDeps) {
  const apiClient: ApiClientFactory = deps.apiClient ?? ((api) => makeApiClient(deps.kc, api));
  const core = apiClient(CoreV1Api);
  const access = nodeAccess({ kc: deps.kc, clusterId: deps.clusterId, apiClient });
  const namespace = deps.settingsNamespace;
  const name = budgetSettingsConfigMap(deps.clusterId);

  async function readSettings(): Promise<{ settings: BudgetSettings; error: string | null }> {
    let data: Record<string, string> | undefined;
    try {
      data = (await core.readNamespacedConfigMap({ name, namespace })).data ?? {};
    } catch (err) {
      if (!isApiError(err, 404)) access.fail(err, `reading ConfigMap ${namespace}/${name}`);
    }
    const parsed = parseBudgetSettings(data);
    if (parsed.kind === 'absent') return { settings: DEFAULT_BUDGET_SETTINGS, error: null };
    if (parsed.kind === 'settings') return { settings: parsed.settings, error: null };
    const error = `ConfigMap ${namespace}/${name}: ${parsed.error}`;
    return {
      settings: {
        paused: { by: 'fleetmedic', reason: `unreadable settings (${error})`, at: new Date().toISOString() },
        breaker: DEFAULT_BUDGET_SETTINGS.breaker,
      },
      error,
    };
  }

  async function quarantinedNodes(): Promise<V1Node[]> {
    const nodes: V1Node[] = [];
    let cont: string | undefined;
    do {
      try {
        const page = await core.listNode({
          labelSelector: `${QUARANTINED_LABEL}=true`,
          limit: LIST_PAGE,
          ...(cont !== undefined && { _continue: cont }),
        });
        nodes.push(...page.items);
        cont = page.metadata?._continue || undefined;
      } catch (err) {
        access.fail(err, 'listing quarantined nodes');
      }
    } while (cont !== undefined);
    return nodes;
  }

  /** Whether the node's remediation may hold a slot: yes when it says so, or cannot be asked. */
  async function holdsSlot(workflowId: string): Promise<{ holds: boolean; note?: string }> {
    let status: Partial<RemediationStatus>;
    try {
      const handle = deps.client.workflow.getHandle(workflowId);
      // A closed run holds nothing, whatever its last state said (a terminated run said so forever).
      if ((await handle.describe()).status.name !== 'RUNNING') return { holds: false };
      status = await handle.query(statusQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { holds: false };
      return { holds: true, note: `${workflowId} could not be asked (${(err as Error).message})` };
    }
    if (typeof status.holdsDrainSlot === 'boolean') return { holds: status.holdsDrainSlot };
    // A run of a version whose status lacks the field: its phase says it.
    return { holds: status.phase === 'draining' };
  }

  return {
    /** Reads the budget's durable state: settings, drains in flight, recent failures. */
    async readFleetBudgetRecords(): Promise<FleetBudgetRecords> {
      const { settings, error } = await readSettings();
      const ours = (await quarantinedNodes()).flatMap((node) => {
        const name = node.metadata?.name;
        if (!name) return [];
        const record = parseCordonRecord(node.metadata?.annotations?.[CORDON_ANNOTATION]);
        const workflowId = remediationWorkflowId(deps.clusterId, name);
        if (record.kind !== 'ok' || record.record.workflowId !== workflowId) return [];
        const at = Date.parse(record.record.at);
        return [{ name, workflowId, at: Number.isFinite(at) ? at : Date.now() }];
      });
      const queries = new PQueue({ concurrency: STATUS_QUERY_CONCURRENCY });
      const notes: string[] = [];
      const draining: string[] = [];
      await Promise.all(
        ours.map((n) =>
          queries.add(async () => {
            const answer = await holdsSlot(n.workflowId);
            if (answer.holds) draining.push(n.name);
            if (answer.note) notes.push(answer.note);
          }),
        ),
      );
      draining.sort();
      const failures = ours.map((n) => ({ node: n.name, at: n.at })).sort((a, b) => a.at - b.at);
      const summary =
        `${settings.paused ? `paused by ${settings.paused.by}` : 'not paused'}, breaker ${settings.breaker.state}, ` +
        `${ours.length} node(s) quarantined by fleetmedic, ${draining.length} draining` +
        (draining.length > 0 ? ` (${draining.join(', ')})` : '') +
        (notes.length > 0 ? `; counted as draining: ${notes.join('; ')}` : '') +
        (error ? `; ${error}: paused until an operator resumes` : '');
      return { settings, settingsError: error, draining, failures, summary };
    },

    /** Writes the settings object (created when missing); the last write wins. */
    async writeFleetBudgetSettings(input: BudgetSettings): Promise<void> {
      const settings = validateInput('writeFleetBudgetSettings', settingsSchema, input);
      const body = {
        metadata: {
          name,
          namespace,
          labels: { 'app.kubernetes.io/managed-by': 'fleetmedic', 'fleetmedic.io/cluster': deps.clusterId },
        },
        data: formatBudgetSettings(settings),
      };
      try {
        await core.replaceNamespacedConfigMap({ name, namespace, body });
      } catch (err) {
        if (!isApiError(err, 404)) access.fail(err, `writing ConfigMap ${namespace}/${name}`);
        try {
          await core.createNamespacedConfigMap({ namespace, body });
        } catch (created) {
          // Created by a concurrent write since: the retry replaces it.
          access.fail(created, `creating ConfigMap ${namespace}/${name}`);
        }
      }
    },
  };
}

export type FleetBudgetRecordActivities = ReturnType<typeof createFleetBudgetRecordActivities>;
