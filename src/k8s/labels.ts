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
/** NVIDIA device plugin resource name. */
export const GPU_RESOURCE = 'nvidia.com/gpu';
/** GPU feature discovery's product label. */
export const GPU_PRODUCT_LABEL = 'nvidia.com/gpu.product';
