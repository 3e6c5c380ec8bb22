import fs from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.js';

/**
 * The checkpoint verifiers a control worker may run (`FLEETMEDIC_CHECKPOINT_VERIFIERS`, YAML or JSON).
 * Workflow input names one; the command itself comes only from here, so nobody who can start a
 * workflow can make the worker execute a command of their choosing.
 *
 * ```yaml
 * verifiers:
 *   torch-load:                         # the name `--verifier torch-load` gives
 *     argv: [python3, /opt/fleetmedic/verify.py, "{path}"]
 *     timeoutMs: 600000                 # optional; default 10 minutes
 * ```
 */
export interface Verifier {
  readonly argv: readonly string[];
  readonly timeoutMs?: number;
}

/** A verifier's name: what workflow input may carry. */
export const VERIFIER_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

const fileSchema = z.strictObject({
  verifiers: z.record(
    z.string().regex(VERIFIER_NAME, 'a name of lower-case letters, digits and - (at most 63)'),
    z.strictObject({
      argv: z.array(z.string().min(1)).min(1),
      timeoutMs: z
        .number()
        .int()
        .min(1000)
        .max(24 * 3600 * 1000)
        .optional(),
    }),
  ),
});

/**
 * Reads and validates the verifiers file.
 *
 * @throws ConfigError naming the file and the field that is wrong.
 */
export async function loadVerifiers(file: string): Promise<ReadonlyMap<string, Verifier>> {
  let raw: unknown;
  try {
    raw = parseYaml(await fs.readFile(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`checkpoint verifiers file ${file} cannot be read: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      // A bad key's own message ("a name of ...") is one level down in zod's record issue.
      const message = i.code === 'invalid_key' ? (i.issues[0]?.message ?? i.message) : i.message;
      return `${i.path.join('.') || '(top level)'}: ${message}`;
    });
    throw new ConfigError(`invalid checkpoint verifiers file ${file}: ${problems.join('; ')}`);
  }
  return new Map(Object.entries(parsed.data.verifiers));
}
