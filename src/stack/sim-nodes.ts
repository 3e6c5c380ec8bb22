import type { V1Node } from '@kubernetes/client-node';
import {
  CLUSTER_LABEL,
  GPU_PRODUCT_LABEL,
  GPU_RESOURCE,
  KWOK_NODE_ANNOTATION,
  SIMULATED_LABEL,
} from '../k8s/labels.js';

/** GPUs per simulated node, as on an 8-GPU HGX H100 server. */
export const GPUS_PER_NODE = 8;
export const GPU_PRODUCT = 'NVIDIA-H100-80GB-HBM3';
/** Most simulated nodes one cluster can address with the scheme below. */
export const MAX_SIM_NODES = 16_384;

/** `gpu-node-1` ... (1-based, as operators count). */
export function simNodeName(index: number): string {
  return `gpu-node-${index + 1}`;
}

/**
 * Loopback addresses of simulated node `index` (0-based). Node addresses live in 127.10.0.0/16 and
 * each node's pod range is a /24 in 127.128.0.0/10, so every address a simulated pod or node gets is in
 * 127.0.0.0/8 (kwok's default pod range is 10.0.0.0/24, which must never be used here).
 */
export function simNodeAddresses(index: number): { nodeIP: string; podCIDR: string } {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_SIM_NODES) {
    throw new RangeError(`simulated node index ${index} is outside 0..${MAX_SIM_NODES - 1}`);
  }
  const n = index + 1;
  return {
    nodeIP: `127.10.${n >> 8}.${n & 255}`,
    podCIDR: `127.${128 + (index >> 8)}.${index & 255}.0/24`,
  };
}

/**
 * The Node object of simulated GPU node `index`: managed by kwok, marked simulated, with the GPU
 * capacity and labels a real node gets from the NVIDIA device plugin and GPU feature discovery.
 */
export function simNodeManifest(index: number, clusterId: string): V1Node {
  const name = simNodeName(index);
  const { nodeIP, podCIDR } = simNodeAddresses(index);
  const resources = {
    cpu: '96',
    memory: '1536Gi',
    pods: '110',
    'ephemeral-storage': '2Ti',
    [GPU_RESOURCE]: String(GPUS_PER_NODE),
  };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      annotations: { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'node.kubernetes.io/instance-type': 'sim.h100x8',
        type: 'kwok',
        [GPU_PRODUCT_LABEL]: GPU_PRODUCT,
        'nvidia.com/gpu.count': String(GPUS_PER_NODE),
        'nvidia.com/gpu.present': 'true',
        [SIMULATED_LABEL]: 'true',
        [CLUSTER_LABEL]: clusterId,
      },
    },
    spec: { podCIDR, podCIDRs: [podCIDR] },
    status: {
      capacity: resources,
      allocatable: resources,
      addresses: [
        { type: 'InternalIP', address: nodeIP },
        { type: 'Hostname', address: name },
      ],
      nodeInfo: {
        architecture: 'amd64',
        operatingSystem: 'linux',
        kubeletVersion: 'fake',
        kubeProxyVersion: 'fake',
        containerRuntimeVersion: 'kwok',
        kernelVersion: 'kwok',
        osImage: 'kwok',
        machineID: name,
        systemUUID: name,
        bootID: name,
      },
    },
  };
}
