/** Labels, annotations and taints fleetmedic reads and writes on Kubernetes objects. */

/** On every node (and the marker namespace) of a simulated cluster: stand-ins and fault injection require it. */
export const SIMULATED_LABEL = 'fleetmedic.io/simulated';
/** The cluster ID a node belongs to. */
export const CLUSTER_LABEL = 'fleetmedic.io/cluster';
/** Namespace holding fleetmedic's own objects, including the simulation marker. */
export const SYSTEM_NAMESPACE = 'fleetmedic-system';
/** ConfigMap in {@link SYSTEM_NAMESPACE} that marks a cluster as a fleetmedic simulation. */
export const SIMULATION_MARKER = 'fleetmedic-simulation';
/** kwok manages nodes carrying this annotation. */
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
/**
 * On pods of a simulated node that fleetmedic's process runner serves with a real local process; the
 * value names the process kind (`standin`, `llama-server`), from the runner's fixed list: a pod never
 * names the command it runs.
 */
export const PROCESS_LABEL = 'fleetmedic.io/process';
/** NVIDIA device plugin resource name. */
export const GPU_RESOURCE = 'nvidia.com/gpu';
/** GPU feature discovery's product label. */
export const GPU_PRODUCT_LABEL = 'nvidia.com/gpu.product';
