import {
  AppsV1Api,
  CoreV1Api,
  makeInformer,
  type Informer,
  type KubeConfig,
  type ObjectCache,
  type V1Pod,
} from '@kubernetes/client-node';
import { podUrl } from '../k8s/loopback.js';

/** A replica the gateway may route to. */
export interface Endpoint {
  /** Stable name: the pod name, or the URL of a static replica. */
  readonly id: string;
  /** Base URL, e.g. `http://127.128.0.5:8080`. */
  readonly url: string;
}

/**
 * Where replicas come from. `start` calls `onChange` with the whole current list each time it
 * changes (the first time before it resolves, when it can).
 */
export interface ReplicaDiscovery {
  start(onChange: (endpoints: readonly Endpoint[]) => void): Promise<void>;
  stop(): Promise<void>;
}

/** A fixed list of base URLs. */
export class StaticDiscovery implements ReplicaDiscovery {
  constructor(private readonly urls: readonly string[]) {}

  start(onChange: (endpoints: readonly Endpoint[]) => void): Promise<void> {
    onChange(this.urls.map((url) => ({ id: url, url })));
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}

/** Several discoveries as one: the union of their lists. */
export class CombinedDiscovery implements ReplicaDiscovery {
  constructor(private readonly parts: readonly ReplicaDiscovery[]) {}

  async start(onChange: (endpoints: readonly Endpoint[]) => void): Promise<void> {
    const lists: (readonly Endpoint[])[] = this.parts.map(() => []);
    await Promise.all(
      this.parts.map((part, i) =>
        part.start((endpoints) => {
          lists[i] = endpoints;
          onChange(lists.flat());
        }),
      ),
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.stop()));
  }
}

/**
 * The endpoint of a pod, or why it gets no traffic (pure; table-tested). Only a Running, Ready pod
 * with an IP and no deletionTimestamp serves: a terminating pod is dropped at once, before its
 * readiness turns false, so nothing new reaches a replica that is shutting down.
 */
export function podEndpoint(
  pod: V1Pod,
  options: { readonly port: number; readonly loopbackOnly: boolean },
): { endpoint: Endpoint } | { skip: string } {
  const name = pod.metadata?.name ?? '(unnamed)';
  if (pod.metadata?.deletionTimestamp) return { skip: 'terminating' };
  if (pod.status?.phase !== 'Running') return { skip: `phase ${pod.status?.phase ?? 'unknown'}` };
  const ready = pod.status.conditions?.find((c) => c.type === 'Ready');
  if (ready?.status !== 'True') return { skip: 'not ready' };
  if (!pod.status.podIP) return { skip: 'no pod IP' };
  try {
    return {
      endpoint: {
        id: name,
        url: podUrl({ podIP: pod.status.podIP, port: options.port, simulated: options.loopbackOnly }),
      },
    };
  } catch (err) {
    return { skip: (err as Error).message };
  }
}

/** The endpoints of a set of pods, by name for a stable order. */
export function endpointsFromPods(
  pods: readonly V1Pod[],
  options: { readonly port: number; readonly loopbackOnly: boolean },
): Endpoint[] {
  return pods
    .map((pod) => podEndpoint(pod, options))
    .flatMap((r) => ('endpoint' in r ? [r.endpoint] : []))
    .sort((a, b) => a.id.localeCompare(b.id));
}

/** Options of {@link KubernetesPodDiscovery}. */
export interface PodDiscoveryOptions {
  readonly kc: KubeConfig;
  readonly namespace: string;
  readonly deployment: string;
  readonly port: number;
  readonly loopbackOnly: boolean;
  /** Delay before the watch restarts after an error. */
  readonly restartDelayMs?: number;
  readonly onError?: (err: unknown) => void;
}

/**
 * The pods of one Deployment, watched (list + watch informer on its label selector). The selector
 * is read once at start: a Deployment's selector is immutable.
 */
export class KubernetesPodDiscovery implements ReplicaDiscovery {
  private informer: (Informer<V1Pod> & ObjectCache<V1Pod>) | undefined;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: PodDiscoveryOptions) {}

  async start(onChange: (endpoints: readonly Endpoint[]) => void): Promise<void> {
    const { kc, namespace, deployment } = this.options;
    const apps = kc.makeApiClient(AppsV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const dep = await apps.readNamespacedDeployment({ name: deployment, namespace });
    const labels = dep.spec?.selector.matchLabels ?? {};
    const labelSelector = Object.entries(labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const informer = makeInformer<V1Pod>(
      kc,
      `/api/v1/namespaces/${namespace}/pods`,
      () => core.listNamespacedPod({ namespace, labelSelector }),
      labelSelector,
    );
    this.informer = informer;
    const publish = () => onChange(endpointsFromPods(informer.list(namespace), this.options));
    informer.on('add', publish);
    informer.on('update', publish);
    informer.on('delete', publish);
    informer.on('error', (err: unknown) => {
      this.options.onError?.(err);
      if (this.stopped) return;
      // The informer stops on an error; the last list stays in use until the watch is back.
      this.restartTimer = setTimeout(() => {
        informer.start().catch((e: unknown) => this.options.onError?.(e));
      }, this.options.restartDelayMs ?? 2_000);
    });
    await informer.start();
    publish();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.informer?.stop();
  }
}
