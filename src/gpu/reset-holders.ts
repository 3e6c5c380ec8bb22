/**
 * The processes that hold a GPU on a real node without running on it as a compute application: the
 * persistence daemon (nvidia-persistenced), the DCGM host engine (nv-hostengine) and dcgm-exporter.
 * `nvidia-smi -r` refuses while any of them has the device open ("In use by another client",
 * NVIDIA/NVSentinel#1690), so a reset on a real node is: stop (or detach) each configured holder, reset,
 * start them again. Which holders and how to stop and start them is the node's business, so it comes
 * only from the agent's own configuration file (`--reset-holders` / `FLEETMEDIC_RESET_HOLDERS`), never
 * from workflow input: each holder names the argv of its stop and start commands, e.g.
 *
 * ```yaml
 * holders:
 *   - name: nvidia-persistenced
 *     stop: [nsenter, -t, '1', -m, --, systemctl, stop, nvidia-persistenced]
 *     start: [nsenter, -t, '1', -m, --, systemctl, start, nvidia-persistenced]
 *   - name: nv-hostengine
 *     stop: [nsenter, -t, '1', -m, --, systemctl, stop, nvidia-dcgm]
 *     start: [nsenter, -t, '1', -m, --, systemctl, start, nvidia-dcgm]
 * ```
 *
 * Without a file, a reset the device refuses fails with a message saying so, and the remediation goes
 * to an operator (who resets by hand and runs `mark-repaired`).
 */
import fs from 'node:fs/promises';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.js';

export interface ResetHolder {
  /** A name for messages (`nvidia-persistenced`). */
  readonly name: string;
  /** The command that stops (or detaches) it: an argv, run without a shell. */
  readonly stop: readonly string[];
  /** The command that starts it again. */
  readonly start: readonly string[];
  /** Each command's timeout in seconds (default 60). */
  readonly timeoutSeconds: number;
}

const argv = z.array(z.string().min(1)).min(1, 'must name a command');
const schema = z
  .object({
    holders: z
      .array(
        z
          .object({
            name: z
              .string()
              .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'a short name (letters, digits, . _ -)'),
            stop: argv,
            start: argv,
            timeoutSeconds: z.number().int().min(1).max(600).default(60),
          })
          .strict(),
      )
      .max(16),
  })
  .strict();

/** Parses a holders document; the error names the file and the field. */
export function parseResetHolders(doc: unknown, origin: string): ResetHolder[] {
  const parsed = schema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(
      `${origin}: ${issue.path.length > 0 ? issue.path.join('.') : '(the document)'}: ${issue.message}`,
    );
  }
  const names = new Set<string>();
  for (const h of parsed.data.holders) {
    if (names.has(h.name)) throw new ConfigError(`${origin}: holder ${h.name} is named twice`);
    names.add(h.name);
  }
  return parsed.data.holders;
}

/** Reads `--reset-holders <file>` (YAML or JSON). */
export async function loadResetHolders(file: string): Promise<ResetHolder[]> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `--reset-holders / FLEETMEDIC_RESET_HOLDERS: cannot read ${file}: ${(err as Error).message}`,
    );
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: not YAML: ${(err as Error).message}`);
  }
  return parseResetHolders(doc, file);
}

/** What `nvidia-smi -r` prints when something else has the device open. */
export const DEVICE_HELD = /in use by another client|being used by (some )?other process/i;
