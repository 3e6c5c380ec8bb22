import { newestFirst, type BackupCatalog, type BackupRecord } from './catalog.js';
import { MANIFEST_SUFFIX, manifestNameFor } from './names.js';

/** What retention keeps. */
export interface RetentionPolicy {
  /** Verified backups to keep, newest first; at least 1. */
  readonly keep: number;
  /** Leftovers (partial uploads, copies without a manifest) older than this are removed. */
  readonly staleAfterMs: number;
  /** Backups of runs in progress: never removed, whatever their state. */
  readonly protect?: readonly string[];
}

/** What {@link planRetention} decided. */
export interface RetentionPlan {
  /** Verified backups kept, newest first. */
  readonly keep: readonly string[];
  /** Objects to remove, each with the reason. Data objects come before their manifests. */
  readonly remove: ReadonlyArray<{ readonly object: string; readonly reason: string }>;
  /** Backups retention cannot classify, left alone with the reason. */
  readonly leftAlone: ReadonlyArray<{ readonly name: string; readonly reason: string }>;
}

/**
 * Decides what to remove from a backup location, as a pure function of what is there and `now`:
 * - verified backups (verified manifest + data of the recorded size): keep the newest `keep`, remove
 *   the rest;
 * - rejected backups (manifest says not verified): remove their data at once; keep the newest `keep`
 *   manifests as a record of what failed, remove older ones;
 * - data without a manifest, partial uploads, and verified manifests whose data is gone: remove once
 *   older than `staleAfterMs` (a younger one may belong to a run in progress);
 * - a manifest that cannot be read: leave the backup alone (it may be the good copy; fail safe).
 * It never removes a protected backup, and never the last verified one.
 *
 * @throws RangeError when `keep` is not an integer >= 1.
 * @example planRetention(await readCatalog(storage), { keep: 5, staleAfterMs: 3_600_000 }, new Date())
 */
export function planRetention(catalog: BackupCatalog, policy: RetentionPolicy, now: Date): RetentionPlan {
  if (!Number.isInteger(policy.keep) || policy.keep < 1) {
    throw new RangeError(`retention keep must be an integer >= 1, got ${policy.keep}`);
  }
  const protect = new Set(policy.protect ?? []);
  const stale = (modifiedMs: number | undefined): boolean =>
    modifiedMs !== undefined && now.getTime() - modifiedMs > policy.staleAfterMs;
  const remove: Array<{ object: string; reason: string }> = [];
  const leftAlone: Array<{ name: string; reason: string }> = [];

  const verified: BackupRecord[] = [];
  const rejected: BackupRecord[] = [];
  for (const record of catalog.records) {
    const { manifest, data } = record;
    if (record.manifestError !== undefined) {
      leftAlone.push({ name: record.name, reason: record.manifestError });
    } else if (!manifest) {
      if (data && stale(data.modifiedMs)) {
        remove.push({ object: record.name, reason: 'copy without a manifest, left by an interrupted run' });
      }
    } else if (manifest.verified && data && data.size === manifest.size) {
      verified.push(record);
    } else if (manifest.verified) {
      // Data missing or of the wrong size: not restorable, but young enough to be a listing race.
      if (stale(record.manifestObject?.modifiedMs)) {
        if (data) remove.push({ object: record.name, reason: `size ${data.size} differs from its manifest` });
        remove.push({ object: manifestNameFor(record.name), reason: 'verified manifest whose data is gone' });
      }
    } else {
      rejected.push(record);
    }
  }

  verified.sort(newestFirst);
  const keep = verified.slice(0, policy.keep).map((r) => r.name);
  for (const record of verified.slice(policy.keep)) {
    if (protect.has(record.name)) {
      keep.push(record.name);
      continue;
    }
    remove.push({ object: record.name, reason: `older than the newest ${policy.keep} verified backups` });
    remove.push({ object: manifestNameFor(record.name), reason: 'its backup was removed' });
  }

  rejected.sort(newestFirst);
  rejected.forEach((record, index) => {
    if (record.data) remove.push({ object: record.name, reason: 'failed verification' });
    if (index >= policy.keep) {
      remove.push({ object: manifestNameFor(record.name), reason: 'old record of a failed verification' });
    }
  });

  // A protected backup counts toward `keep` like any other, but nothing of it is ever removed.
  const removable = remove.filter((r) => !protect.has(r.object) && !protect.has(ownerOf(r.object)));

  for (const partial of catalog.partials) {
    if (stale(partial.modifiedMs)) {
      removable.push({ object: partial.name, reason: 'partial upload left by an interrupted copy' });
    }
  }
  return { keep, remove: removable, leftAlone };
}

function ownerOf(object: string): string {
  return object.endsWith(MANIFEST_SUFFIX) ? object.slice(0, -MANIFEST_SUFFIX.length) : object;
}
