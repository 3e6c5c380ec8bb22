import { CoreV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import { NotSimulatedError } from '../errors.js';
import { SIMULATED_LABEL, SIMULATION_MARKER, SYSTEM_NAMESPACE } from '../k8s/labels.js';
import { isApiError } from '../k8s/api-errors.js';
import { simNodeManifest } from './sim-nodes.js';

/**
 * Marks a cluster as a fleetmedic simulation: a labelled namespace and a ConfigMap recording the
 * cluster ID. Stand-in GPU tools and fault injection check for it before they act.
 */
export async function ensureSimulationMarker(kc: KubeConfig, clusterId: string): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  await createIfAbsent(() =>
    core.createNamespace({
      body: { metadata: { name: SYSTEM_NAMESPACE, labels: { [SIMULATED_LABEL]: 'true' } } },
    }),
  );
  await createIfAbsent(() =>
    core.createNamespacedConfigMap({
      namespace: SYSTEM_NAMESPACE,
      body: {
        metadata: { name: SIMULATION_MARKER, labels: { [SIMULATED_LABEL]: 'true' } },
        data: { simulated: 'true', clusterId, createdBy: 'fleetmedic up' },
      },
    }),
  );
}

/**
 * Refuses, with {@link NotSimulatedError}, to go on unless the cluster carries fleetmedic's simulation
 * marker. Every code path meant only for simulated clusters calls this first: a stand-in `dcgmi` that
 * reported Healthy on a real node would return a broken GPU to service.
 *
 * @returns the cluster ID recorded in the marker.
 */
export async function assertSimulatedCluster(kc: KubeConfig): Promise<string> {
  const core = kc.makeApiClient(CoreV1Api);
  const server = kc.getCurrentCluster()?.server ?? '(unknown)';
  try {
    const marker = await core.readNamespacedConfigMap({
      name: SIMULATION_MARKER,
      namespace: SYSTEM_NAMESPACE,
    });
    if (marker.data?.simulated === 'true' && marker.data.clusterId) return marker.data.clusterId;
  } catch (err) {
    if (!isApiError(err, 404)) throw err;
  }
  throw new NotSimulatedError(
    `cluster at ${server} is not a fleetmedic simulation (no ConfigMap ${SYSTEM_NAMESPACE}/${SIMULATION_MARKER} ` +
      `with simulated=true): refusing a simulation-only action`,
  );
}

/**
 * Whether the cluster carries fleetmedic's simulation marker (read from the cluster, not assumed
 * from the configuration): processes that send traffic anywhere restrict it to loopback then.
 */
export async function isSimulatedCluster(kc: KubeConfig): Promise<boolean> {
  try {
    await assertSimulatedCluster(kc);
    return true;
  } catch (err) {
    if (err instanceof NotSimulatedError) return false;
    throw err;
  }
}

/** Refuses a node that does not carry the simulation label. */
export function assertSimulatedNode(node: V1Node): void {
  if (node.metadata?.labels?.[SIMULATED_LABEL] !== 'true') {
    throw new NotSimulatedError(
      `node ${node.metadata?.name ?? '?'} has no ${SIMULATED_LABEL}=true label: refusing a simulation-only action`,
    );
  }
}

/** Creates simulated GPU nodes 0..count-1 that do not exist yet; existing ones are left as they are. */
export async function ensureSimNodes(kc: KubeConfig, count: number, clusterId: string): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const existing = new Set((await core.listNode()).items.map((n) => n.metadata?.name));
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const manifest = simNodeManifest(i, clusterId);
    if (existing.has(manifest.metadata?.name)) continue;
    pending.push(createIfAbsent(() => core.createNode({ body: manifest })));
    // Bounded parallelism: a 1,500-node simulation must not open 1,500 requests at once.
    if (pending.length >= 32) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
}

/**
 * The taint the API server puts on every new node (admission plugin TaintNodesByCondition) and
 * kube-controller-manager's node lifecycle controller takes off once it has seen the node Ready: until
 * then no pod is scheduled there.
 */
const NOT_READY_TAINT = 'node.kubernetes.io/not-ready';

/**
 * Names of simulated nodes that are Ready and can take pods: Ready condition True, and the not-ready
 * taint already taken off by the controller manager. kube-controller-manager reaches a new node some
 * time after kwok reports it Ready (for 1,500 new nodes at its default client limit of 20 requests a
 * second, about 3 minutes, during which it keeps the API server busy): a stack whose nodes still carry
 * the taint is not ready yet.
 */
export async function readySimNodes(kc: KubeConfig): Promise<string[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const nodes = await core.listNode({ labelSelector: `${SIMULATED_LABEL}=true` });
  return nodes.items
    .filter(
      (n) =>
        n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') &&
        !(n.spec?.taints ?? []).some((t) => t.key === NOT_READY_TAINT),
    )
    .map((n) => n.metadata?.name ?? '');
}

async function createIfAbsent(create: () => Promise<unknown>): Promise<void> {
  try {
    await create();
  } catch (err) {
    if (!isApiError(err, 409)) throw err;
  }
}
