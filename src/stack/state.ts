import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { StackError } from '../errors.js';

const processSchema = z.object({ pid: z.number().int().positive(), binary: z.string() });

const stackStateSchema = z.object({
  version: z.literal(1),
  clusterName: z.string(),
  clusterId: z.string(),
  nodes: z.number().int().positive(),
  startedAt: z.string(),
  temporal: z.object({
    process: processSchema,
    address: z.string(),
    uiUrl: z.string(),
    port: z.number().int(),
    uiPort: z.number().int(),
    httpPort: z.number().int(),
    metricsPort: z.number().int(),
    namespace: z.string(),
    dbFile: z.string(),
    logFile: z.string(),
  }),
  kube: z.object({
    workdir: z.string(),
    kwokctl: z.string(),
    kubeconfig: z.string(),
    ports: z.object({
      apiserver: z.number().int(),
      etcd: z.number().int(),
      etcdPeer: z.number().int(),
      controllerManager: z.number().int(),
      scheduler: z.number().int(),
      kwokController: z.number().int(),
    }),
    apiserverUrl: z.string(),
  }),
  /** The process runner (`fleetmedic runner`), when `up` started one. */
  runner: z.object({ process: processSchema, logFile: z.string() }).optional(),
});

/** What `fleetmedic up` started, recorded in `<stateDir>/stack.json` so `down` stops exactly that. */
export type StackState = z.infer<typeof stackStateSchema>;

/** Path of the state file in a state directory. */
export function stackStateFile(stateDir: string): string {
  return path.join(stateDir, 'stack.json');
}

/** Reads the recorded stack, or undefined when none was started. A corrupt file is an error. */
export async function readStackState(stateDir: string): Promise<StackState | undefined> {
  let text: string;
  try {
    text = await fs.readFile(stackStateFile(stateDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const parsed = stackStateSchema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new StackError(
      `${stackStateFile(stateDir)} is not a fleetmedic stack record: ${parsed.error.message}`,
    );
  }
  return parsed.data;
}

/** Writes the stack record atomically (temp file + rename), so a crash never leaves half a record. */
export async function writeStackState(stateDir: string, state: StackState): Promise<void> {
  await fs.mkdir(stateDir, { recursive: true });
  const file = stackStateFile(stateDir);
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(state, null, 2) + '\n');
  await fs.rename(tmp, file);
}

/** Removes the stack record (after `down`). */
export async function removeStackState(stateDir: string): Promise<void> {
  await fs.rm(stackStateFile(stateDir), { force: true });
}

/**
 * Takes the state directory's lock so two `up`/`down` runs never interleave. A lock left by a process
 * that no longer exists (a crash) is taken over.
 */
export async function withStateLock<T>(stateDir: string, fn: () => Promise<T>): Promise<T> {
  await fs.mkdir(stateDir, { recursive: true });
  const lock = path.join(stateDir, 'lock');
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await fs.open(lock, 'wx');
      await handle.write(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(await fs.readFile(lock, 'utf8').catch(() => ''));
      if (!holderAlive(holder)) {
        await fs.rm(lock, { force: true });
        continue;
      }
      if (attempt > 600) throw new StackError(`state directory ${stateDir} is locked by pid ${holder}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lock, { force: true });
  }
}

function holderAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
