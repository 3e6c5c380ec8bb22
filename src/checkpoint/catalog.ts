import { ErrorCode } from '../errors.js';
import { CheckpointError } from './errors.js';
import { parseManifest, type BackupManifest } from './manifest.js';
import { backupNameOfManifest, isBackupName, manifestNameFor } from './names.js';
import type { CheckpointStorage, StoredObject } from './storage.js';

/** One backup as found in storage: its data object, its manifest, or both. */
export interface BackupRecord {
  readonly name: string;
  readonly data?: StoredObject;
  readonly manifestObject?: StoredObject;
  readonly manifest?: BackupManifest;
  /** Why the manifest could not be read, when it could not. */
  readonly manifestError?: string;
}

/** Everything fleetmedic wrote to a backup location. */
export interface BackupCatalog {
  readonly records: readonly BackupRecord[];
  /** Uncommitted uploads (copies in progress or left by killed attempts). */
  readonly partials: readonly StoredObject[];
}

/**
 * Lists the backups in storage and reads their manifests. Objects with names fleetmedic does not write
 * are ignored, so a backup directory shared with other tools is safe.
 *
 * @throws CheckpointError on storage errors (an unreadable manifest is reported in its record instead).
 */
export async function readCatalog(storage: CheckpointStorage): Promise<BackupCatalog> {
  const objects = await storage.list();
  const byName = new Map<string, { data?: StoredObject; manifestObject?: StoredObject }>();
  const partials: StoredObject[] = [];
  for (const object of objects) {
    if (object.partial) {
      partials.push(object);
      continue;
    }
    const ofManifest = backupNameOfManifest(object.name);
    const name = ofManifest ?? (isBackupName(object.name) ? object.name : undefined);
    if (!name) continue;
    const entry = byName.get(name) ?? {};
    if (ofManifest) entry.manifestObject = object;
    else entry.data = object;
    byName.set(name, entry);
  }
  const records: BackupRecord[] = [];
  for (const [name, entry] of byName) {
    if (!entry.manifestObject) {
      records.push({ name, ...entry });
      continue;
    }
    try {
      const manifest = parseManifest(await storage.readSmall(manifestNameFor(name)), manifestNameFor(name));
      if (manifest.name !== name) {
        records.push({ name, ...entry, manifestError: `manifest describes ${manifest.name}, not ${name}` });
      } else {
        records.push({ name, ...entry, manifest });
      }
    } catch (err) {
      if (!(err instanceof CheckpointError) || err.code !== ErrorCode.ManifestInvalid) throw err;
      records.push({ name, ...entry, manifestError: err.message });
    }
  }
  return { records, partials };
}

function timeOf(iso: string | undefined): number {
  const t = iso === undefined ? NaN : Date.parse(iso);
  return Number.isFinite(t) ? t : 0;
}

/**
 * Orders backups newest first: by the time the run took the checkpoint, then by when it was verified
 * (a retried attempt of the same run), then by name, so the order never depends on listing order.
 */
export function newestFirst(a: BackupRecord, b: BackupRecord): number {
  return (
    timeOf(b.manifest?.createdAt) - timeOf(a.manifest?.createdAt) ||
    timeOf(b.manifest?.verifiedAt) - timeOf(a.manifest?.verifiedAt) ||
    b.name.localeCompare(a.name)
  );
}

/** Backups a restore may use: a manifest that says verified and a data object of the recorded size, newest first. */
export function restorableNewestFirst(records: readonly BackupRecord[]): BackupRecord[] {
  return records
    .filter((r) => r.manifest?.verified === true && r.data !== undefined && r.data.size === r.manifest.size)
    .sort(newestFirst);
}
