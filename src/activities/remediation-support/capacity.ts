import type { CoreV1Api } from '@kubernetes/client-node';
import { z } from 'zod';
import { podsFitElsewhere, type CapacityCheck } from '../../domain/capacity.js';
import { objectName, validateInput } from '../input.js';

const checkCapacitySchema = z.object({ node: objectName });

/** The capacity check before a drain, on the cluster `core` reaches. */
export function createCapacityActivities(core: CoreV1Api) {
  return {
    /**
     * Whether the pods a drain of `node` would evict fit on the remaining schedulable nodes (requests
     * against allocatable, taints, node selectors, required anti-affinity). A drain that would leave
     * pods Pending waits, or asks an operator, instead of evicting.
     *
     * @throws non-retryable `InvalidInput` naming the field when `node` is not a node name.
     */
    async checkCapacity(input: { node: string }): Promise<Pick<CapacityCheck, 'fits' | 'unplaced'>> {
      const { node } = validateInput('checkCapacity', checkCapacitySchema, input);
      const [pods, nodes] = await Promise.all([
        core.listPodForAllNamespaces({
          fieldSelector: 'spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed',
        }),
        core.listNode(),
      ]);
      const check = podsFitElsewhere(pods.items, nodes.items, node);
      return { fits: check.fits, unplaced: check.unplaced.slice(0, 20) };
    },
  };
}
