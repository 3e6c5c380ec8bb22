import {
  AppsV1Api,
  CoreV1Api,
  PolicyV1Api,
  KubeConfig,
  type V1Deployment,
  type V1Pod,
} from '@kubernetes/client-node';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { apiServerUrl } from '../../src/k8s/kubeconfig.js';
import { mergePatch } from '../../src/k8s/patch.js';
import {
  CORDON_ANNOTATION,
  EPISODES_ANNOTATION,
  HOLD_ANNOTATION,
  QUARANTINED_LABEL,
  REMEDIATIONS_ANNOTATION,
} from '../../src/k8s/remediation-labels.js';

/** Clients for the test cluster. */
export function clients(kc: KubeConfig) {
  return {
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    policy: kc.makeApiClient(PolicyV1Api),
  };
}

/** Creates a namespace with a unique name; returns it and a cleanup that deletes it. */
export async function tempNamespace(
  kc: KubeConfig,
  prefix: string,
): Promise<{ name: string; remove: () => Promise<void> }> {
  const name = `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
  const { core } = clients(kc);
  await core.createNamespace({ body: { metadata: { name } } });
  return {
    name,
    remove: async () => {
      await core.deleteNamespace({ name }).catch(() => {});
    },
  };
}

/** Polls `probe` until it returns a value that is not undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`,
      );
    }
    await sleep(200);
  }
}

/** A Deployment of `replicas` pods labelled app=<name>, optionally with required anti-affinity on hostname. */
export function deployment(
  name: string,
  replicas: number,
  options: { antiAffinity?: boolean; nodeSelector?: Record<string, string>; preferNode?: string } = {},
): V1Deployment {
  const labels = { app: name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels },
        spec: {
          nodeSelector: options.nodeSelector,
          affinity: {
            podAntiAffinity: options.antiAffinity
              ? {
                  requiredDuringSchedulingIgnoredDuringExecution: [
                    { labelSelector: { matchLabels: labels }, topologyKey: 'kubernetes.io/hostname' },
                  ],
                }
              : undefined,
            // Preferred, not required: the pods start on that node and can move when it is drained.
            nodeAffinity: options.preferNode
              ? {
                  preferredDuringSchedulingIgnoredDuringExecution: [
                    {
                      weight: 100,
                      preference: {
                        matchExpressions: [
                          { key: 'kubernetes.io/hostname', operator: 'In', values: [options.preferNode] },
                        ],
                      },
                    },
                  ],
                }
              : undefined,
          },
          containers: [
            {
              name: 'server',
              image: 'fleetmedic/sim-inference:latest',
              resources: { requests: { cpu: '100m' } },
            },
          ],
        },
      },
    },
  };
}

/** Pods of app=<name> in a namespace, not being deleted. */
export async function livePods(kc: KubeConfig, namespace: string, app: string): Promise<V1Pod[]> {
  const { core } = clients(kc);
  const pods = await core.listNamespacedPod({ namespace, labelSelector: `app=${app}` });
  return pods.items.filter((p) => !p.metadata?.deletionTimestamp);
}

export function isReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/**
 * What an operator does after deciding a node is fine (or repaired by hand): lift fleetmedic's
 * quarantine (taint, label, ownership record, an operator's hold) and uncordon it.
 */
export async function liftQuarantine(kc: KubeConfig, name: string): Promise<void> {
  const { core } = clients(kc);
  const node = await core.readNode({ name });
  await core.patchNode(
    {
      name,
      body: {
        spec: {
          unschedulable: false,
          taints: node.spec?.taints?.filter((t) => !t.key.startsWith('fleetmedic.io/')) ?? [],
        },
        metadata: {
          labels: { [QUARANTINED_LABEL]: null },
          annotations: { [CORDON_ANNOTATION]: null, [HOLD_ANNOTATION]: null },
        },
      },
    },
    mergePatch,
  );
}

/**
 * Forgets the nodes' remediation history (the repeat guard's record, the handled fault episodes and an
 * operator's hold). Test files share the stack: without this, a node remediated by an earlier file
 * would count as remediated twice in 7 days (replace hardware), see its alert as already handled, or
 * stay held by an earlier file's reject.
 */
export async function clearRemediationHistory(kc: KubeConfig, names: readonly string[]): Promise<void> {
  for (const name of names) {
    await clients(kc).core.patchNode(
      {
        name,
        body: {
          metadata: {
            annotations: {
              [REMEDIATIONS_ANNOTATION]: null,
              [EPISODES_ANNOTATION]: null,
              [HOLD_ANNOTATION]: null,
            },
          },
        },
      },
      mergePatch,
    );
  }
}

/**
 * A TCP relay on 127.0.0.1 in front of the API server that can be switched off (connections refused,
 * open ones cut) and on again: the workers reach the API server only through it. TLS passes through
 * untouched, so the API server's certificate for 127.0.0.1 still verifies.
 */
export async function apiServerRelay(target: URL) {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        port = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  await listen();
  return {
    get port() {
      return port;
    },
    /** Connections accepted so far. */
    get connections() {
      return connections;
    },
    /** Refuses new connections and cuts the open ones, like an API server that went away. */
    async down() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    up: listen,
    async close() {
      for (const s of sockets) s.destroy();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A copy of `kc` whose API server is reached through a relay on 127.0.0.1 at `port`. */
export function kubeconfigVia(kc: KubeConfig, port: number): KubeConfig {
  const copy = new KubeConfig();
  copy.loadFromString(kc.exportConfig());
  const server = new URL(apiServerUrl(kc));
  server.port = String(port);
  copy.clusters = copy.clusters.map((c) => ({ ...c, server: server.origin }));
  return copy;
}
