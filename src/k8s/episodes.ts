/**
 * The node's record of the fault episodes fleetmedic handled there (the `fleetmedic.io/handled-episodes`
 * annotation), one entry per alert fingerprint. Alertmanager re-sends a firing alert with the same
 * fingerprint and startsAt for as long as it fires, and a new episode of the same alert starts later:
 * an episode is handled when its fingerprint's entry starts at or after it. So one entry per
 * fingerprint is enough, and a re-sent alert reads as handled however long after.
 *
 * Stored as `{"version":2,"episodes":[{"fingerprint","startsAt"?,"handledAt"}]}`. The first format, an
 * array of `{ key, handledAt }`, is still read (and rewritten in this one at the next record).
 */
import { z } from 'zod';

/** One fingerprint's newest handled episode. */
export interface EpisodeEntry {
  readonly fingerprint: string;
  /** The episode's startsAt as its key gave it; null for an opaque key (the key is its own fingerprint). */
  readonly startsAt: string | null;
  /** ISO-8601 time it was recorded; the bound drops the oldest first. */
  readonly handledAt: string;
}

/** What {@link parseEpisodeRecord} read: the entries, or why the annotation cannot be trusted. */
export type ParsedEpisodeRecord =
  { readonly ok: true; readonly entries: EpisodeEntry[] } | { readonly ok: false; readonly error: string };

/** Whether the node says an episode was handled there before. */
export type RecordedEpisodeVerdict = 'new' | 'handled';

/**
 * Bounds of the record: node annotations share 256 KiB, so one annotation fleetmedic rewrites on every
 * remediation must stay small.
 */
export const EPISODE_RECORD_LIMITS = Object.freeze({ entries: 64, bytes: 16 * 1024 });

/** RFC 3339, as Alertmanager writes startsAt (Go's time.Time, nanoseconds and offsets included). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

function isTime(value: string): boolean {
  return RFC3339.test(value) && !Number.isNaN(Date.parse(value));
}

/** Compares two RFC 3339 times to the nanosecond (Date.parse stops at the millisecond). */
function compareTimes(a: string, b: string): number {
  const ms = Date.parse(a) - Date.parse(b);
  if (ms !== 0) return Math.sign(ms);
  const sub = (t: string) => Number((/\.\d{3}(\d{0,6})/.exec(t)?.[1] ?? '').padEnd(6, '0'));
  return Math.sign(sub(a) - sub(b));
}

/**
 * Splits an episode key into fingerprint and startsAt. Keys are `<fingerprint>@<startsAt>` (see
 * webhook/alertmanager.ts); a key whose part after the last `@` is not an RFC 3339 time (a sender's
 * opaque key, `…@unknown-start`) is its own fingerprint, with no startsAt.
 */
export function parseEpisodeKey(key: string): { fingerprint: string; startsAt: string | null } {
  const at = key.lastIndexOf('@');
  if (at > 0 && isTime(key.slice(at + 1)))
    return { fingerprint: key.slice(0, at), startsAt: key.slice(at + 1) };
  return { fingerprint: key, startsAt: null };
}

/** The same episode source: an opaque key never shares an entry with a timed one of the same string. */
function sameSource(a: Pick<EpisodeEntry, 'fingerprint' | 'startsAt'>, b: typeof a): boolean {
  return a.fingerprint === b.fingerprint && (a.startsAt === null) === (b.startsAt === null);
}

/** Whether `recorded` covers `asked` (same source): the same episode, or a later one. */
function covers(recorded: string | null, asked: string | null): boolean {
  if (recorded === asked) return true;
  return recorded !== null && asked !== null && compareTimes(recorded, asked) >= 0;
}

/** Of two entries of one source, the one to keep: the later episode, else the later record. */
function newer(a: EpisodeEntry, b: EpisodeEntry): EpisodeEntry {
  if (a.startsAt !== null && b.startsAt !== null) {
    const c = compareTimes(a.startsAt, b.startsAt);
    if (c !== 0) return c > 0 ? a : b;
  }
  return Date.parse(b.handledAt) >= Date.parse(a.handledAt) ? b : a;
}

/** Folds `entry` into `entries`: it replaces its source's entry when newer, and goes last. */
function merge(entries: EpisodeEntry[], entry: EpisodeEntry): EpisodeEntry[] {
  const i = entries.findIndex((e) => sameSource(e, entry));
  if (i < 0) return [...entries, entry];
  const kept = newer(entries[i]!, entry);
  return kept === entry ? [...entries.slice(0, i), ...entries.slice(i + 1), entry] : entries;
}

const time = z.string().refine(isTime, 'must be an RFC 3339 time');
const recordSchema = z.strictObject({
  version: z.literal(2),
  episodes: z.array(
    z.strictObject({ fingerprint: z.string().min(1), startsAt: time.nullish(), handledAt: time }),
  ),
});
const legacySchema = z.array(z.strictObject({ key: z.string().min(1), handledAt: time }));

function issueText(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'schema mismatch';
  const at = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
  return `${at === '' ? '(record)' : at.replace(/^\./, '')}: ${issue.message}`;
}

/**
 * Reads the annotation value. Absent (or empty) is an empty record; anything else that is not a
 * complete record, in this format or the first, is not ok: a damaged record must not read as "no
 * episodes", or every re-sent alert it lists would quarantine the node again.
 *
 * @example
 * const r = parseEpisodeRecord(node.metadata?.annotations?.[EPISODES_ANNOTATION]);
 * if (r.ok) episodeVerdict(r.entries, 'a1b2c3@2026-11-27T10:00:00Z');
 */
export function parseEpisodeRecord(raw: string | undefined): ParsedEpisodeRecord {
  if (raw === undefined || raw.trim() === '') return { ok: true, entries: [] };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  if (Array.isArray(value)) {
    const legacy = legacySchema.safeParse(value);
    if (!legacy.success) return { ok: false, error: `first format: ${issueText(legacy.error)}` };
    const entries = legacy.data
      .map((e) => ({ ...parseEpisodeKey(e.key), handledAt: e.handledAt }))
      .sort((a, b) => Date.parse(a.handledAt) - Date.parse(b.handledAt));
    return { ok: true, entries: entries.reduce<EpisodeEntry[]>(merge, []) };
  }
  const parsed = recordSchema.safeParse(value);
  if (!parsed.success) return { ok: false, error: issueText(parsed.error) };
  const entries = parsed.data.episodes.map((e) => {
    const entry: EpisodeEntry = {
      fingerprint: e.fingerprint,
      startsAt: e.startsAt ?? null,
      handledAt: e.handledAt,
    };
    // An opaque fingerprint must not read back as a timed key, nor a timed one lose its time.
    const key = parseEpisodeKey(episodeKeyOf(entry));
    return key.fingerprint === entry.fingerprint && key.startsAt === entry.startsAt ? entry : undefined;
  });
  const bad = entries.findIndex((e) => e === undefined);
  if (bad >= 0)
    return { ok: false, error: `episodes[${bad}].fingerprint: does not round-trip as an episode key` };
  return { ok: true, entries: (entries as EpisodeEntry[]).reduce<EpisodeEntry[]>(merge, []) };
}

/** The episode key an entry stands for. */
export function episodeKeyOf(entry: Pick<EpisodeEntry, 'fingerprint' | 'startsAt'>): string {
  return entry.startsAt === null ? entry.fingerprint : `${entry.fingerprint}@${entry.startsAt}`;
}

/**
 * Whether episode `key` was handled: an entry of the same fingerprint starts at or after it (the same
 * key is handled forever, with no cooldown). Pure; the caller decides what an unreadable record means.
 */
export function episodeVerdict(entries: readonly EpisodeEntry[], key: string): RecordedEpisodeVerdict {
  const asked = parseEpisodeKey(key);
  return entries.some((e) => sameSource(e, asked) && covers(e.startsAt, asked.startsAt)) ? 'handled' : 'new';
}

/** The annotation value for `entries` (stable: the same entries give the same string). */
export function formatEpisodeRecord(entries: readonly EpisodeEntry[]): string {
  return JSON.stringify({
    version: 2,
    episodes: entries.map((e) => ({
      fingerprint: e.fingerprint,
      ...(e.startsAt !== null && { startsAt: e.startsAt }),
      handledAt: e.handledAt,
    })),
  });
}

function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}

/**
 * Records `keys` as handled at `nowIso`: one entry per fingerprint, the newest startsAt kept (a key
 * older than its fingerprint's entry changes nothing). Then bounds the record to
 * {@link EPISODE_RECORD_LIMITS}, dropping the oldest `handledAt` first.
 *
 * @throws RangeError when `nowIso` is not an RFC 3339 time (the record would not read back).
 * @example
 * const next = recordEpisodes(parsed.entries, ['a1b2c3@2026-11-27T10:00:00Z'], new Date().toISOString());
 */
export function recordEpisodes(
  entries: readonly EpisodeEntry[],
  keys: readonly string[],
  nowIso: string,
): EpisodeEntry[] {
  if (!isTime(nowIso)) throw new RangeError(`nowIso is ${JSON.stringify(nowIso)}, expected an RFC 3339 time`);
  let out = [...entries];
  for (const key of keys) out = merge(out, { ...parseEpisodeKey(key), handledAt: nowIso });
  while (
    out.length > 0 &&
    (out.length > EPISODE_RECORD_LIMITS.entries ||
      byteLength(formatEpisodeRecord(out)) > EPISODE_RECORD_LIMITS.bytes)
  ) {
    let oldest = 0;
    out.forEach((e, i) => {
      if (Date.parse(e.handledAt) < Date.parse(out[oldest]!.handledAt)) oldest = i;
    });
    out.splice(oldest, 1);
  }
  return out;
}
