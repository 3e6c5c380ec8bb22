import fs from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { NOTIFICATION_KINDS, type NotificationKind } from './message.js';

/**
 * The notification sinks file (`FLEETMEDIC_NOTIFY_CONFIG`, YAML or JSON):
 *
 * ```yaml
 * sinks:
 *   - name: oncall-slack            # optional; default `<type>-<index>`; the metrics label
 *     type: slack                   # Slack-compatible incoming webhook: POST {"text": ...}
 *     url: https://hooks.slack.com/services/T000/B000/XXXX
 *     events: [needs-operator, escalated, breaker-tripped, validation-failed]
 *   - type: json                    # generic JSON webhook: POST the notification object
 *     url: https://alerts.example.com/fleetmedic
 *     headers: { Authorization: "Bearer s3cr3t" }
 *     timeoutMs: 5000               # per request; default 10000
 * ```
 *
 * A sink without `events` receives every kind. URLs and headers often hold secrets (a Slack webhook
 * URL is its own credential): fleetmedic never logs them, only the sink's name and the URL's origin.
 */

const httpUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}, 'an http(s) URL');

const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'an HTTP header name');

const sinkSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, 'a name of letters, digits, _ . - (at most 63)')
    .optional(),
  type: z.enum(['json', 'slack']),
  url: httpUrl,
  headers: z.record(headerName, z.string().max(8192)).optional(),
  events: z.array(z.enum(NOTIFICATION_KINDS)).min(1).optional(),
  timeoutMs: z.number().int().min(100).max(120_000).optional(),
});

const fileSchema = z.strictObject({
  sinks: z.array(sinkSchema).max(50),
});

/** One configured sink, validated, with its defaults filled in. */
export interface SinkConfig {
  readonly name: string;
  readonly type: 'json' | 'slack';
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The kinds this sink receives. */
  readonly events: readonly NotificationKind[];
  readonly timeoutMs: number;
}

/** The validated notification configuration. */
export interface NotifyConfig {
  readonly sinks: readonly SinkConfig[];
}

/** Default per-request timeout of a sink. */
export const DEFAULT_SINK_TIMEOUT_MS = 10_000;

/**
 * Validates a decoded notification document.
 *
 * @param origin - where it came from (a file name), for the error message
 * @throws ConfigError naming the origin, the path of each bad field (`sinks.1.url`) and what was expected
 * @example parseNotifyConfig({ sinks: [{ type: 'slack', url: 'https://hooks.slack.com/services/x' }] })
 */
export function parseNotifyConfig(doc: unknown, origin = 'notification config'): NotifyConfig {
  const parsed = fileSchema.safeParse(doc);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 10).map((i) => {
      const at = i.path.map(String).join('.') || '(root)';
      return `${at}: ${i.message}`;
    });
    throw new ConfigError(`invalid notification config in ${origin}: ${problems.join('; ')}`);
  }
  const names = new Set<string>();
  const sinks = parsed.data.sinks.map((s, i): SinkConfig => {
    const name = s.name ?? `${s.type}-${i}`;
    if (names.has(name))
      throw new ConfigError(
        `invalid notification config in ${origin}: sinks.${i}.name ${name} is used twice`,
      );
    names.add(name);
    return Object.freeze({
      name,
      type: s.type,
      url: s.url,
      headers: Object.freeze({ ...s.headers }),
      events: Object.freeze([...(s.events ?? NOTIFICATION_KINDS)]),
      timeoutMs: s.timeoutMs ?? DEFAULT_SINK_TIMEOUT_MS,
    });
  });
  return Object.freeze({ sinks: Object.freeze(sinks) });
}

/** Reads and validates a notification config file (YAML or JSON). */
export async function loadNotifyConfig(file: string): Promise<NotifyConfig> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`notification config ${file} could not be read: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`notification config ${file} is not valid YAML: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseNotifyConfig(doc, file);
}
