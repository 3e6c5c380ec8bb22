import { after } from 'node:test';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { loadConfig, type Config } from '../../src/config/config.js';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.js';
import { attachStack, down, pickStackPorts, up } from '../../src/stack/stack.js';
import { FleetmedicError } from '../../src/errors.js';
import type { StackState } from '../../src/stack/state.js';

/** Names the state directory of a running stack the tests may reuse (checked before use). */
export const TEST_STACK_ENV = 'FLEETMEDIC_TEST_STATE_DIR';

export interface TestStack {
  readonly state: StackState;
  readonly config: Config;
  readonly kc: KubeConfig;
}

/** Free ports on 127.0.0.1 for every component, so a test stack runs beside a user's own. */
export const freeStackPorts = pickStackPorts;

/** Starts a throwaway stack in a temporary state directory on free ports. */
export async function startTestStack(nodes = 4): Promise<{ stack: TestStack; stop: () => Promise<void> }> {
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-test-'));
  const config = loadConfig({
    ...process.env,
    FLEETMEDIC_STATE_DIR: stateDir,
    FLEETMEDIC_CLUSTER_ID: undefined,
  });
  // Other stacks (a user's, a parallel suite's) may take a port between our check and its bind: such
  // a transient failure is retried on new ports, and the attempt's leftovers are purged first.
  let result;
  for (let attempt = 1; ; attempt++) {
    try {
      result = await up(config, {
        nodes,
        ports: await freeStackPorts(),
        clusterName: `fmtest-${process.pid}`,
      });
      break;
    } catch (err) {
      const transient = err instanceof FleetmedicError && (err.code === 'PORT_IN_USE' || !err.permanent);
      await down(config, { purge: true }).catch(() => {});
      await fs.rm(path.join(stateDir, 'kwok'), { recursive: true, force: true });
      await fs.rm(path.join(stateDir, 'temporal'), { recursive: true, force: true });
      if (!transient || attempt >= 3) throw err;
      process.stderr.write(
        `test stack: attempt ${attempt} failed (${(err as Error).message.split('\n')[0]}); retrying\n`,
      );
    }
  }
  const stack = { state: result.state, config, kc: loadKubeConfig(result.state.kube.kubeconfig) };
  return {
    stack,
    stop: async () => {
      await down(config, { purge: true });
      await fs.rm(stateDir, { recursive: true, force: true });
    },
  };
}

let shared: Promise<TestStack> | undefined;
let stopStandalone: (() => Promise<void>) | undefined;

// Registered at module level, so it runs once after every test of the file: a hook registered from
// inside a `before` would run as soon as that hook ends.
after(async () => {
  await stopStandalone?.();
});

/**
 * The stack for this test file: the one named by FLEETMEDIC_TEST_STATE_DIR (after checking it is a
 * fleetmedic simulation on 127.0.0.1), or a fresh one started for this file and stopped after it.
 */
export function useTestStack(): Promise<TestStack> {
  shared ??= (async () => {
    const stateDir = process.env[TEST_STACK_ENV];
    if (stateDir) {
      const state = await attachStack(stateDir);
      const config = loadConfig({ ...process.env, FLEETMEDIC_STATE_DIR: stateDir });
      return { state, config, kc: loadKubeConfig(state.kube.kubeconfig) };
    }
    const { stack, stop } = await startTestStack();
    stopStandalone = stop;
    return stack;
  })();
  return shared;
}
