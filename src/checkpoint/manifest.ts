import { z } from 'zod';
import { ErrorCode } from '../errors.js';
import { CheckpointError } from './errors.js';
import { CHECKPOINT_FORMATS, DEFAULT_CHECKPOINT_FORMAT, type CheckpointFormat } from './types.js';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex sha256');

/** Schema of the manifest written next to every backup (`<backup>.manifest.json`). */
export const backupManifestSchema = z.object({
  schemaVersion: z.literal(1),
  /** Name of the backup object in storage. */
  name: z.string().min(1),
  /** Where the backup is (a path on the shared filesystem, or a URL). */
  location: z.string().min(1),
  /** What the file is; absent in manifests written before formats existed, which are all `torch`. */
  format: z.enum(CHECKPOINT_FORMATS as [CheckpointFormat, ...CheckpointFormat[]]).optional(),
  size: z.number().int().nonnegative(),
  sha256,
  /** When the backup run took the checkpoint (workflow time). */
  createdAt: z.iso.datetime(),
  /** When verification finished. */
  verifiedAt: z.iso.datetime(),
  /** True only when every check passed; restore considers nothing else. */
  verified: z.boolean(),
  source: z.object({
    kind: z.enum(['admin-endpoint', 'newest-file', 'llama-slot']),
    path: z.string().min(1),
    size: z.number().int().nonnegative(),
    mtimeMs: z.number().nonnegative(),
    url: z.string().optional(),
    /** sha256 the model server reported, when it did. */
    sha256: sha256.optional(),
  }),
  checks: z.object({
    size: z.boolean(),
    sha256: z.boolean(),
    structure: z.boolean(),
    command: z.enum(['passed', 'failed', 'skipped']),
  }),
  zip: z
    .object({ entries: z.number().int().nonnegative(), prefix: z.string().optional(), zip64: z.boolean() })
    .optional(),
  /** What the GGUF check found (format `gguf`). */
  gguf: z
    .object({
      version: z.number().int(),
      tensors: z.number().int().nonnegative(),
      metadataKeys: z.number().int().nonnegative(),
      architecture: z.string(),
    })
    .optional(),
  /**
   * A slot file's identity (format `llama-slot`): the slot, the model it was computed with and the
   * context size, which a restore compares with the replica's; and what the layout check found.
   */
  slot: z
    .object({
      id: z.number().int().nonnegative().optional(),
      modelSha256: sha256.optional(),
      ctxSize: z.number().int().positive().optional(),
      tokens: z.number().int().nonnegative().optional(),
      cells: z.number().int().nonnegative().optional(),
    })
    .optional(),
  /** Why verification failed (only when `verified` is false). */
  failure: z.object({ code: z.string(), message: z.string() }).optional(),
  workflow: z.object({ workflowId: z.string(), runId: z.string() }).optional(),
});

/** A backup's manifest: what was copied from where, its size and sha256, and whether it passed verification. */
export type BackupManifest = z.infer<typeof backupManifestSchema>;

/** The format of a backup as its manifest records it. */
export function manifestFormat(manifest: Pick<BackupManifest, 'format'>): CheckpointFormat {
  return manifest.format ?? DEFAULT_CHECKPOINT_FORMAT;
}

/**
 * Parses and validates a manifest.
 *
 * @throws CheckpointError `MANIFEST_INVALID` naming the object and the first problems.
 */
export function parseManifest(bytes: Uint8Array, objectName: string): BackupManifest {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new CheckpointError(ErrorCode.ManifestInvalid, `manifest ${objectName} is not JSON`, {
      cause: err,
    });
  }
  const parsed = backupManifestSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    throw new CheckpointError(ErrorCode.ManifestInvalid, `manifest ${objectName} is invalid: ${problems}`);
  }
  return parsed.data;
}

/** Serializes a manifest after validating it (a bad manifest is refused before it is written). */
export function serializeManifest(manifest: BackupManifest): Buffer {
  return Buffer.from(`${JSON.stringify(backupManifestSchema.parse(manifest), null, 2)}\n`);
}
