/**
 * The hold mark on a node an operator rejected (the `fleetmedic.io/hold` annotation): who, why, when
 * and which run recorded it. A later run that finds it keeps the node quarantined and waits for an
 * operator; `releaseNode` refuses while it is on.
 */
import { z } from 'zod';
import { readAnnotationJson } from './annotation-json.js';

/** The hold as stored, JSON in the annotation. */
export interface NodeHold {
  /** The operator who rejected the node. */
  readonly by: string;
  readonly reason: string;
  /** ISO-8601 time of the hold; empty in a hold written by hand without one. */
  readonly at: string;
  /** The remediation that recorded it; empty in a hold written by hand. */
  readonly workflowId: string;
  readonly runId: string;
}

/** The result of reading a hold annotation. */
export type ParsedHold =
  | { readonly kind: 'absent' }
  | { readonly kind: 'ok'; readonly hold: NodeHold }
  | { readonly kind: 'invalid'; readonly raw: string; readonly error: string };

/** The reason a run reads from a hold annotation it cannot parse (it counts as held). */
export const UNREADABLE_HOLD_REASON = 'hold annotation unreadable';

// by and reason are what an operator acts on; the provenance may be missing from a hold written by hand.
const holdSchema = z.object({
  by: z.string().min(1),
  reason: z.string().min(1),
  at: z.string().optional(),
  workflowId: z.string().optional(),
  runId: z.string().optional(),
});

/**
 * Reads the annotation value: absent, a hold, or invalid (with why).
 *
 * @example
 * const hold = holdOf(parseHold(node.metadata?.annotations?.[HOLD_ANNOTATION]));
 */
export function parseHold(annotation: string | undefined): ParsedHold {
  const read = readAnnotationJson(annotation);
  if (read.kind !== 'json') return read;
  const { value, raw } = read;
  const parsed = holdSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue?.path.map(String).join('.') || '(hold)';
    return { kind: 'invalid', raw, error: `${at}: ${issue?.message ?? 'schema mismatch'}` };
  }
  const h = parsed.data;
  return {
    kind: 'ok',
    hold: {
      by: h.by,
      reason: h.reason,
      at: h.at ?? '',
      workflowId: h.workflowId ?? '',
      runId: h.runId ?? '',
    },
  };
}

/** The annotation value for a hold (stable key order, so a repeated hold is the same string). */
export function formatHold(hold: NodeHold): string {
  return JSON.stringify({
    by: hold.by,
    reason: hold.reason,
    at: hold.at,
    workflowId: hold.workflowId,
    runId: hold.runId,
  });
}

/**
 * Who holds the node and why, or null when nothing does. Fails closed: an unreadable hold is a hold,
 * since reading it as none could return a node sent for RMA to service.
 */
export function holdOf(parsed: ParsedHold): { by: string; reason: string } | null {
  if (parsed.kind === 'absent') return null;
  if (parsed.kind === 'invalid') return { by: 'unknown', reason: UNREADABLE_HOLD_REASON };
  return { by: parsed.hold.by, reason: parsed.hold.reason };
}
