import { FleetmedicError } from '../errors.js';
import type { SinkConfig } from './config.js';
import {
  jsonNotification,
  slackNotification,
  workflowUiUrl,
  type NotificationInput,
  type NotificationKind,
} from './message.js';

/** A sink could not deliver a notification. `permanent` when retrying cannot help (a 4xx answer). */
export class SinkError extends FleetmedicError {
  constructor(
    readonly sink: string,
    message: string,
    options: { permanent: boolean; cause?: unknown },
  ) {
    super('NOTIFY_SINK', `sink ${sink}: ${message}`, options);
  }
}

/** One place notifications go. */
export interface NotificationSink {
  readonly name: string;
  readonly type: string;
  /** Whether this sink wants notifications of `kind`. */
  accepts(kind: NotificationKind): boolean;
  /** Delivers one notification; throws {@link SinkError} when it could not. */
  send(n: NotificationInput, link: string | null): Promise<void>;
}

/**
 * An HTTP sink (`json` or `slack`): one POST per notification, bounded by the sink's timeout, no
 * retry of its own (the notify activity's Temporal retry policy retries). A 2xx answer is delivered;
 * 408, 429 and 5xx are transient; any other status is permanent (a revoked Slack webhook answers 404
 * or 410 forever).
 */
export function httpSink(config: SinkConfig): NotificationSink {
  const origin = new URL(config.url).origin;
  return {
    name: config.name,
    type: config.type,
    accepts: (kind) => config.events.includes(kind),
    async send(n, link) {
      const body = config.type === 'slack' ? slackNotification(n, link) : jsonNotification(n, link);
      let response: Response;
      try {
        response = await fetch(config.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'fleetmedic', ...config.headers },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(config.timeoutMs),
          redirect: 'error',
        });
      } catch (err) {
        const timedOut = err instanceof Error && err.name === 'TimeoutError';
        // Never the full URL: a Slack webhook URL is its own credential.
        const why = timedOut
          ? `no answer from ${origin} within ${config.timeoutMs} ms`
          : `POST to ${origin} failed: ${causeMessage(err)}`;
        throw new SinkError(config.name, why, { permanent: false, cause: err });
      }
      // Drain the body so the connection can be reused; its text helps when the answer is an error.
      const text = await response.text().catch(() => '');
      if (response.ok) return;
      const transient = response.status === 408 || response.status === 429 || response.status >= 500;
      throw new SinkError(
        config.name,
        `${origin} answered ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}`,
        { permanent: !transient },
      );
    },
  };
}

function causeMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

/** Outcome of one sink for one notification, for metrics. */
export type SendResult = 'sent' | 'failed' | 'already-sent' | 'suppressed';

export interface NotifierOptions {
  readonly sinks: readonly NotificationSink[];
  /** The Temporal UI's address (`http://host:port`), for links to the workflow page. */
  readonly uiUrl?: string;
  readonly namespace?: string;
  /** Called once per sink and notification attempt (metrics). */
  readonly onResult?: (sink: string, kind: NotificationKind, result: SendResult) => void;
  /** Where delivery problems are written (one line each); default stderr as a JSON line. */
  readonly log?: (entry: Record<string, unknown>) => void;
  /**
   * A fleet-wide notification (breaker tripped, automation blocked) that a sink got for the cluster
   * within this time is not sent again (default 10 min): when the breaker trips under an alert storm,
   * every refused remediation would otherwise post the same message.
   */
  readonly fleetWideRepeatMs?: number;
  /** The clock, for tests. */
  readonly now?: () => number;
}

/** The result of {@link Notifier.send}. */
export interface Delivery {
  readonly delivered: readonly string[];
  readonly failed: readonly { sink: string; message: string; permanent: boolean }[];
}

/** How many notification IDs the notifier remembers as delivered (per sink), for retries. */
const REMEMBERED = 2000;

/** Kinds about the whole fleet rather than one node: repeats within a window are suppressed. */
const FLEET_WIDE: ReadonlySet<NotificationKind> = new Set(['breaker-tripped', 'automation-blocked']);

/**
 * Sends each notification to every sink that accepts its kind, in parallel. A sink that already
 * delivered a notification (same `id`) is skipped when the activity retries, so only the failed sinks
 * are tried again; receivers can also deduplicate on `id` (a retry on another worker resends).
 * Fleet-wide kinds (`breaker-tripped`, `automation-blocked`) go to each sink at most once per
 * `fleetWideRepeatMs` and cluster; the rest are counted as `suppressed` (and logged).
 */
export class Notifier {
  private readonly delivered = new Set<string>();
  /** Last delivery of a fleet-wide kind, by sink, kind and cluster. */
  private readonly fleetWideSent = new Map<string, number>();

  constructor(private readonly options: NotifierOptions) {}

  get sinkNames(): readonly string[] {
    return this.options.sinks.map((s) => s.name);
  }

  async send(n: NotificationInput): Promise<Delivery> {
    const link = workflowUiUrl(
      this.options.uiUrl,
      this.options.namespace ?? 'default',
      n.workflowId,
      n.runId,
    );
    const targets = this.options.sinks.filter((s) => s.accepts(n.kind));
    // Logged whether or not a sink takes it: with no sinks configured the log is the notification.
    this.log({
      level: n.kind === 'returned-to-service' ? 'info' : 'warn',
      msg: 'notification',
      kind: n.kind,
      node: n.node,
      workflowId: n.workflowId,
      detail: n.message,
      reminder: n.reminder,
      escalated: n.escalated,
      sinks: targets.map((s) => s.name),
    });
    const results = await Promise.all(
      targets.map(async (sink) => {
        const key = `${sink.name}\u0000${n.id}`;
        if (this.delivered.has(key)) {
          this.options.onResult?.(sink.name, n.kind, 'already-sent');
          return { sink: sink.name, ok: true as const };
        }
        const fleetKey = FLEET_WIDE.has(n.kind) ? `${sink.name}\u0000${n.kind}\u0000${n.cluster}` : undefined;
        const now = (this.options.now ?? Date.now)();
        const lastFleetWide = fleetKey === undefined ? undefined : this.fleetWideSent.get(fleetKey);
        if (
          lastFleetWide !== undefined &&
          now - lastFleetWide < (this.options.fleetWideRepeatMs ?? 600_000)
        ) {
          this.options.onResult?.(sink.name, n.kind, 'suppressed');
          return { sink: sink.name, ok: true as const };
        }
        try {
          await sink.send(n, link);
          this.remember(key);
          if (fleetKey !== undefined) this.fleetWideSent.set(fleetKey, now);
          this.options.onResult?.(sink.name, n.kind, 'sent');
          return { sink: sink.name, ok: true as const };
        } catch (err) {
          this.options.onResult?.(sink.name, n.kind, 'failed');
          const message = err instanceof Error ? err.message : String(err);
          const permanent = err instanceof SinkError ? err.permanent : false;
          this.log({
            level: 'warn',
            msg: 'notification not delivered',
            sink: sink.name,
            id: n.id,
            kind: n.kind,
            node: n.node,
            error: message,
            permanent,
          });
          return { sink: sink.name, ok: false as const, message, permanent };
        }
      }),
    );
    return {
      delivered: results.filter((r) => r.ok).map((r) => r.sink),
      failed: results.flatMap((r) =>
        r.ok ? [] : [{ sink: r.sink, message: r.message, permanent: r.permanent }],
      ),
    };
  }

  private remember(key: string): void {
    this.delivered.add(key);
    if (this.delivered.size > REMEMBERED) {
      const oldest = this.delivered.values().next().value;
      if (oldest !== undefined) this.delivered.delete(oldest);
    }
  }

  private log(entry: Record<string, unknown>): void {
    if (this.options.log) this.options.log(entry);
    else process.stderr.write(`${JSON.stringify(entry)}\n`);
  }
}
