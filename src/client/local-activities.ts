/** One local activity of a workflow, as its marker in the history records it. */
export interface LocalActivityRecord {
  readonly activityType: string;
  /** The attempt that ended it (1 = the first try succeeded or failed for good). */
  readonly attempt: number;
  /** When the worker saw it complete, in ms since the epoch (the worker's clock). */
  readonly completedAt: number;
}

/** The part of a workflow history (`handle.fetchHistory()`) this module reads. */
export interface HistoryWithMarkers {
  readonly events?:
    | readonly {
        readonly markerRecordedEventAttributes?: {
          readonly markerName?: string | null;
          readonly details?: Record<
            string,
            { readonly payloads?: readonly { readonly data?: Uint8Array | null }[] | null }
          > | null;
        } | null;
      }[]
    | null;
}

/**
 * The local activities of a history, in order, read from their `core_local_activity` markers. A local
 * activity reaches the history only when it ends: its failed attempts leave no other trace.
 */
export function localActivityMarkers(history: HistoryWithMarkers): LocalActivityRecord[] {
  const records: LocalActivityRecord[] = [];
  for (const e of history.events ?? []) {
    const m = e.markerRecordedEventAttributes;
    if (m?.markerName !== 'core_local_activity') continue;
    const payload = m.details?.['data']?.payloads?.[0]?.data;
    if (!payload) continue;
    const data = JSON.parse(Buffer.from(payload).toString('utf8')) as {
      activity_type?: string;
      attempt?: number;
      complete_time?: { seconds?: number; nanos?: number } | null;
    };
    const t = data.complete_time;
    records.push({
      activityType: data.activity_type ?? '',
      attempt: data.attempt ?? 0,
      completedAt: t ? (t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : Number.NaN,
    });
  }
  return records;
}
