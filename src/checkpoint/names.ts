// Pure naming rules shared by the workflow (deterministic sandbox: no Node builtins here), the
// activities and the catalog.
import type { CheckpointFormat } from './types.js';

/** Suffix of the manifest object written next to each backup. */
export const MANIFEST_SUFFIX = '.manifest.json';

/**
 * Names of backups fleetmedic writes: `ckpt-<UTC time>-<run>[-<attempt>].<pt|gguf|slot>`. Retention
 * only ever deletes objects whose name matches, so unrelated files in a shared backup directory are safe.
 */
export const BACKUP_NAME_PATTERN = /^ckpt-(\d{8}T\d{6}Z)-([0-9a-z]{1,16})(?:-(\d{1,4}))?\.(pt|gguf|slot)$/;

/** The extension of a backup of each format. */
const EXTENSION: Readonly<Record<CheckpointFormat, string>> = {
  torch: 'pt',
  gguf: 'gguf',
  'llama-slot': 'slot',
};

/**
 * The base name of the backup taken by one workflow run at `at`, e.g.
 * `ckpt-20250102T030405Z-1a2b3c4d.pt` (`.gguf`, `.slot` for those formats). `runId` disambiguates two
 * runs within the same second.
 *
 * @example backupBaseName(new Date('2025-01-02T03:04:05Z'), '0197a0b1-...-1a2b3c4d') // 'ckpt-20250102T030405Z-1a2b3c4d.pt'
 */
export function backupBaseName(at: Date, runId: string, format: CheckpointFormat = 'torch'): string {
  const stamp = at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  // The tail: Temporal run IDs are UUIDv7, whose leading digits are a timestamp shared by every run
  // started in the same few seconds.
  const run =
    runId
      .toLowerCase()
      .replace(/[^0-9a-z]/g, '')
      .slice(-8) || 'manual';
  return `ckpt-${stamp}-${run}.${EXTENSION[format]}`;
}

/**
 * The name one copy attempt commits to. Attempt 1 uses the base name; a retry gets its own name, so a
 * lost attempt that still finishes later (a "zombie" whose worker lost its heartbeat but kept running)
 * can never overwrite the file another attempt already verified.
 *
 * @example attemptName('ckpt-20250102T030405Z-1a2b3c4d.pt', 2) // 'ckpt-20250102T030405Z-1a2b3c4d-2.pt'
 */
export function attemptName(baseName: string, attempt: number): string {
  if (attempt <= 1) return baseName;
  return baseName.replace(/\.(pt|gguf|slot)$/, `-${attempt}.$1`);
}

/** The manifest object of a backup. */
export function manifestNameFor(backupName: string): string {
  return backupName + MANIFEST_SUFFIX;
}

/** True when `name` is a backup fleetmedic wrote (and retention may therefore delete it). */
export function isBackupName(name: string): boolean {
  return BACKUP_NAME_PATTERN.test(name);
}

/** The backup a manifest name belongs to, or undefined when `name` is not one of our manifests. */
export function backupNameOfManifest(name: string): string | undefined {
  if (!name.endsWith(MANIFEST_SUFFIX)) return undefined;
  const backup = name.slice(0, -MANIFEST_SUFFIX.length);
  return isBackupName(backup) ? backup : undefined;
}
