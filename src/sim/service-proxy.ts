import type { KubeConfig } from '@kubernetes/client-node';
import net from 'node:net';
import { KubernetesPodDiscovery, type Endpoint, type ReplicaDiscovery } from '../gateway/discovery.js';
import { assertLoopbackAddress } from '../k8s/loopback.js';

/** Options of {@link startServiceProxy}. */
export interface ServiceProxyOptions {
  readonly kc?: KubeConfig;
  readonly namespace: string;
  /** The Deployment whose Ready pods serve the Service. */
  readonly deployment: string;
  /** The pods' port (the Service's target port). */
  readonly targetPort: number;
  /** Loopback address to listen on (default 127.0.0.1) and port (default 0: any free one). */
  readonly host?: string;
  readonly port?: number;
  /** Told about pod watch errors (the watch restarts by itself). */
  readonly onError?: (err: unknown) => void;
  /** Where the pods come from instead of the Deployment's pod watch (tests). */
  readonly discovery?: ReplicaDiscovery;
}

/** A running {@link startServiceProxy}. */
export interface RunningServiceProxy {
  /** `http://host:port`: the Service's address for clients. */
  readonly url: string;
  /** The pods it sends new connections to now. */
  endpoints(): readonly Endpoint[];
  /** Connections opened through it so far, by pod (tests, the drill's log). */
  connections(): ReadonlyMap<string, number>;
  close(): Promise<void>;
}

/**
 * A Service of the embedded stack, as kube-proxy makes one: a TCP listener on a loopback address
 * that sends each new connection to one of the Deployment's Ready pods, round robin. A pod leaves
 * the rotation as soon as it is terminating or not Ready (the gateway's own pod watch,
 * {@link KubernetesPodDiscovery}); a connection already open stays with its pod, as conntrack keeps
 * it, so a pod going away must close its keep-alive connections itself (the gateway's drain). A pod
 * that refuses the connection is skipped for the next one; with no pod left the client's connection
 * is reset, as with a Service without endpoints.
 */
export async function startServiceProxy(o: ServiceProxyOptions): Promise<RunningServiceProxy> {
  const host = assertLoopbackAddress(o.host ?? '127.0.0.1');
  let endpoints: readonly Endpoint[] = [];
  let turn = 0;
  const counts = new Map<string, number>();
  const open = new Set<net.Socket>();
  if (!o.discovery && !o.kc) throw new Error('startServiceProxy needs a kubeconfig or a discovery');
  const discovery =
    o.discovery ??
    new KubernetesPodDiscovery({
      kc: o.kc!,
      namespace: o.namespace,
      deployment: o.deployment,
      port: o.targetPort,
      loopbackOnly: true,
      ...(o.onError && { onError: o.onError }),
    });
  await discovery.start((list) => {
    endpoints = list;
  });

  const track = (socket: net.Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  };

  /** Connects `client` to the next pod, trying each pod of the rotation at most once. */
  function forward(client: net.Socket, triesLeft: number): void {
    const pool = endpoints;
    if (triesLeft <= 0 || pool.length === 0 || client.destroyed) {
      client.resetAndDestroy();
      return;
    }
    const endpoint = pool[turn++ % pool.length]!;
    const { hostname, port } = new URL(endpoint.url);
    const upstream = net.connect({ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port) });
    track(upstream);
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      counts.set(endpoint.id, (counts.get(endpoint.id) ?? 0) + 1);
      // Either side's end ends the other (the pod's `Connection: close` closes the client's side).
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on('error', () => {
      if (!connected) {
        upstream.destroy();
        forward(client, triesLeft - 1);
        return;
      }
      // Reset by the pod: the client sees a reset too, as it would through a real Service.
      if (!client.destroyed) client.resetAndDestroy();
    });
    upstreams.set(client, upstream);
  }

  const upstreams = new WeakMap<net.Socket, net.Socket>();
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    track(client);
    const drop = () => upstreams.get(client)?.destroy();
    client.on('error', drop);
    client.on('close', drop);
    forward(client, Math.max(1, endpoints.length));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://${host}:${port}`,
    endpoints: () => endpoints,
    connections: () => counts,
    close: async () => {
      await discovery.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of open) socket.destroy();
      await closed;
    },
  };
}
