import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors.js';

const recordSchema = z.object({
  version: z.literal(1),
  url: z.url(),
  pid: z.number().int().positive(),
  clusterId: z.string(),
  startedAt: z.string(),
});

/**
 * Where a running `fleetmedic webhook serve` says it listens, in `<stateDir>/webhook.json`, so that
 * `fleetmedic sim inject` finds the local webhook without being told. Never holds credentials.
 */
export type WebhookEndpointRecord = z.infer<typeof recordSchema>;

/** Path of the record in a state directory. */
export function webhookEndpointFile(stateDir: string): string {
  return path.join(stateDir, 'webhook.json');
}

/** Writes the record atomically (temp file + rename). */
export async function writeWebhookEndpoint(stateDir: string, record: WebhookEndpointRecord): Promise<void> {
  await fs.mkdir(stateDir, { recursive: true });
  const file = webhookEndpointFile(stateDir);
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(record, null, 2) + '\n');
  await fs.rename(tmp, file);
}

/** Removes the record if it is still the one process `pid` wrote (a newer server may have replaced it). */
export async function removeWebhookEndpoint(stateDir: string, pid: number): Promise<void> {
  const current = await readRecord(stateDir).catch(() => undefined);
  if (current?.pid === pid) await fs.rm(webhookEndpointFile(stateDir), { force: true });
}

/**
 * The local webhook recorded in the state directory, when its process still runs; undefined when
 * none was recorded or the recorded server has exited (a crash leaves its record behind).
 *
 * @throws ConfigError when the file exists but is not a webhook record.
 */
export async function readWebhookEndpoint(stateDir: string): Promise<WebhookEndpointRecord | undefined> {
  const record = await readRecord(stateDir);
  return record && processAlive(record.pid) ? record : undefined;
}

async function readRecord(stateDir: string): Promise<WebhookEndpointRecord | undefined> {
  const file = webhookEndpointFile(stateDir);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} is not JSON: ${(err as Error).message}`);
  }
  const parsed = recordSchema.safeParse(json);
  if (!parsed.success) {
    throw new ConfigError(`${file} is not a fleetmedic webhook record: ${parsed.error.message}`);
  }
  return parsed.data;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
