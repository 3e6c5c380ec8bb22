/**
 * The fleet budget's settings object: a ConfigMap in the cluster (`fleetmedic-fleet-budget-<cluster>` in the
 * control worker's settings namespace) holding what an operator or the breaker decided and what the
 * budget workflow must not forget when it is terminated or reset: the pause and an open breaker.
 * Everything else the budget knows is rebuilt from the nodes (see activities/fleet-budget-records.ts).
 *
 * The ConfigMap's `settings.json` key holds one JSON object, written only by fleetmedic:
 * `{ "version": 1, "paused": { "by", "reason"?, "at" } | null,
 *    "breaker": { "state": "closed" } | { "state": "open", "openedAt": <ms>, "reason" } }`.
 */
import { z } from 'zod';
import type { BreakerState } from '../domain/fleet-budget.js';

/**
 * The settings ConfigMap's name: `fleetmedic-fleet-budget-<cluster ID>` (a cluster ID is a DNS label
 * of at most 40 characters, so the name is one too), so a cluster ID's settings are its own.
 */
export function budgetSettingsConfigMap(clusterId: string): string {
  return `fleetmedic-fleet-budget-${clusterId}`;
}
/** Where the settings ConfigMap lives unless the worker's `settingsNamespace` says otherwise. */
export const DEFAULT_SETTINGS_NAMESPACE = 'default';
/** The ConfigMap key of the JSON record. */
export const BUDGET_SETTINGS_KEY = 'settings.json';

export interface PauseRecord {
  readonly by: string;
  readonly reason?: string;
  /** ISO-8601. */
  readonly at: string;
}

export interface BudgetSettings {
  readonly paused: PauseRecord | null;
  readonly breaker: BreakerState;
}

/** What a cluster without a settings object has: automation on, breaker closed. */
export const DEFAULT_BUDGET_SETTINGS: BudgetSettings = Object.freeze({
  paused: null,
  breaker: Object.freeze({ state: 'closed' as const }),
});

const settingsSchema = z.object({
  version: z.literal(1),
  paused: z
    .object({
      by: z.string().min(1).max(256),
      reason: z.string().max(1024).optional(),
      at: z.iso.datetime(),
    })
    .nullable(),
  breaker: z.discriminatedUnion('state', [
    z.object({ state: z.literal('closed') }),
    z.object({ state: z.literal('open'), openedAt: z.number().finite(), reason: z.string().max(2048) }),
  ]),
});

export type ParsedBudgetSettings =
  | { readonly kind: 'absent' }
  | { readonly kind: 'settings'; readonly settings: BudgetSettings }
  | { readonly kind: 'invalid'; readonly error: string };

/**
 * Reads the record from the ConfigMap's data (undefined: no ConfigMap). A ConfigMap without the key
 * is absent; anything else that is not a valid record is `invalid` with what is wrong (the budget
 * then stays paused: a setting it cannot read may have been a pause).
 */
export function parseBudgetSettings(data: Record<string, string> | undefined): ParsedBudgetSettings {
  const raw = data?.[BUDGET_SETTINGS_KEY];
  if (raw === undefined) return { kind: 'absent' };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    return { kind: 'invalid', error: `${BUDGET_SETTINGS_KEY} is not JSON: ${(err as Error).message}` };
  }
  const parsed = settingsSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.length > 0 ? issue.path.join('.') : '(the record)';
    return { kind: 'invalid', error: `${BUDGET_SETTINGS_KEY}: ${at}: ${issue.message}` };
  }
  const { paused, breaker } = parsed.data;
  return {
    kind: 'settings',
    settings: {
      paused:
        paused === null
          ? null
          : { by: paused.by, at: paused.at, ...(paused.reason !== undefined && { reason: paused.reason }) },
      breaker,
    },
  };
}

/** The ConfigMap data for `settings`. */
export function formatBudgetSettings(settings: BudgetSettings): Record<string, string> {
  return {
    [BUDGET_SETTINGS_KEY]: JSON.stringify({ version: 1, paused: settings.paused, breaker: settings.breaker }),
  };
}
