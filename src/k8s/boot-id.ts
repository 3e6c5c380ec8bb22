/**
 * A node's boot ID (`status.nodeInfo.bootID`): the kubelet reports the kernel's
 * `/proc/sys/kernel/random/boot_id`, which changes at every boot, so a new one proves a reboot.
 */
import { randomUUID } from 'node:crypto';
import { CoreV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import { makeApiClient } from './api-client.js';
import { isApiError } from './api-errors.js';
import { mergePatch } from './patch.js';

/** The node's boot ID, or undefined when it reports none. */
export function bootIdOf(node: V1Node): string | undefined {
  const id = node.status?.nodeInfo?.bootID;
  return id !== undefined && id !== '' ? id : undefined;
}

/** Why a boot ID could not be read: the node is gone, or reports none. */
export class BootIdUnavailable extends Error {
  constructor(
    readonly node: string,
    readonly why: 'not-found' | 'none',
  ) {
    super(
      why === 'not-found'
        ? `node ${node} not found`
        : `node ${node} reports no boot ID (status.nodeInfo.bootID): a reboot cannot be verified`,
    );
    this.name = 'BootIdUnavailable';
  }
}

/**
 * Reads node `name`'s boot ID. API errors other than 404 are thrown as they are (a retry may help).
 *
 * @throws BootIdUnavailable when the node does not exist or reports no boot ID
 */
export async function readBootId(core: CoreV1Api, name: string): Promise<string> {
  let node: V1Node;
  try {
    node = await core.readNode({ name });
  } catch (err) {
    if (isApiError(err, 404)) throw new BootIdUnavailable(name, 'not-found');
    throw err;
  }
  const id = bootIdOf(node);
  if (id === undefined) throw new BootIdUnavailable(name, 'none');
  return id;
}

/**
 * The boot of simulated nodes, as their kubelet would report it: `read` the boot ID, `reboot` gives
 * the node a new one (status subresource, which kwok does not rewrite for a Running node). Simulated
 * clusters only.
 */
export function simulatedBoot(kc: KubeConfig) {
  const core = makeApiClient(kc, CoreV1Api);
  return {
    read: (node: string) => readBootId(core, node),
    async reboot(node: string): Promise<string> {
      const bootID = randomUUID();
      await core.patchNodeStatus({ name: node, body: { status: { nodeInfo: { bootID } } } }, mergePatch);
      return bootID;
    },
  };
}

/** See {@link simulatedBoot}. */
export type SimulatedBoot = ReturnType<typeof simulatedBoot>;
