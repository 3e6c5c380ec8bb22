/**
 * A node for the real node agent (`fleetmedic agent`) on the test stack, as the agent e2e tests use
 * it: created after the control worker started (so the in-process simulated agents, one per node of
 * the stack at start, never serve its task queue), Ready, and an environment in which the agent's
 * dcgmi / nvidia-smi are the stand-ins of test/fixtures/bin.
 */
import type { ResultPromise } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveExecutable } from '../../src/cli/commands/agent.js';
import { simNodeManifest } from '../../src/stack/sim-nodes.js';
import { clients, eventually } from './k8s.js';
import type { TestStack } from './stack.js';
import type { RemediationWorkers } from './workers.js';

/** kured's reboot command (the chart's default for `nodeAgent.reboot.command`), as an argv. */
export const KURED_REBOOT_COMMAND: readonly string[] = Object.freeze([
  'nsenter',
  '--target',
  '1',
  '--mount',
  '--uts',
  '--ipc',
  '--net',
  '--pid',
  '--',
  'systemctl',
  'reboot',
]);

/** The stand-in dcgmi and nvidia-smi, printing the real formats. */
export const STANDINS = fileURLToPath(new URL('../fixtures/bin', import.meta.url));

/** Creates simulated node `index` of the stack's cluster under the name `node` and waits until it is Ready. */
export async function createReadyNode(stack: TestStack, node: string, index: number): Promise<void> {
  const manifest = simNodeManifest(index, stack.state.clusterId);
  manifest.metadata!.name = node;
  manifest.metadata!.labels!['kubernetes.io/hostname'] = node;
  await clients(stack.kc).core.createNode({ body: manifest });
  await eventually('the node Ready', async () =>
    (await clients(stack.kc).core.readNode({ name: node })).status?.conditions?.some(
      (c) => c.type === 'Ready' && c.status === 'True',
    )
      ? true
      : undefined,
  );
}

/**
 * The agent's environment: the stand-ins first on its PATH, then the supported Node the stand-ins'
 * scripts run with. Checked: on that PATH the tool names resolve to the stand-ins, never a real tool.
 */
export async function standinAgentEnv(
  stack: TestStack,
  files: { readonly state: string; readonly callLog: string },
): Promise<Record<string, string>> {
  const env = {
    PATH: [STANDINS, path.dirname(process.execPath), process.env.PATH ?? ''].join(path.delimiter),
    FLEETMEDIC_DCGMI: 'dcgmi',
    FLEETMEDIC_NVIDIA_SMI: 'nvidia-smi',
    FLEETMEDIC_STANDIN_NODE: process.execPath,
    FLEETMEDIC_STANDIN_STATE: files.state,
    FLEETMEDIC_STANDIN_LOG: files.callLog,
    FLEETMEDIC_STATE_DIR: stack.config.stateDir,
    FLEETMEDIC_LOG_LEVEL: 'warn',
    FLEETMEDIC_DCGM_HOST: '127.0.0.1',
  };
  for (const tool of ['dcgmi', 'nvidia-smi']) {
    assert.equal(await resolveExecutable(tool, tool, env.PATH), path.join(STANDINS, tool));
  }
  return env;
}

/** Stops the agent and the workers, deletes the node and the test's directory (each when there). */
export async function removeAgentNode(o: {
  readonly stack: TestStack;
  readonly node: string;
  readonly agent?: ResultPromise;
  readonly workers?: RemediationWorkers;
  readonly dir?: string;
}): Promise<void> {
  o.agent?.kill('SIGKILL');
  await o.agent;
  await o.workers?.stop();
  await clients(o.stack.kc)
    .core.deleteNode({ name: o.node })
    .catch(() => {});
  if (o.dir) await fs.rm(o.dir, { recursive: true, force: true });
}
