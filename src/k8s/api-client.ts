import {
  createConfiguration,
  ServerConfiguration,
  type ApiConstructor,
  type ApiType,
  type KubeConfig,
  type Middleware,
} from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import type https from 'node:https';
import { Agent } from 'undici';
import { ConfigError } from '../errors.js';

/**
 * The longest one Kubernetes API request may take. client-node sets no limit of its own, so an API
 * server that accepts the connection and never answers (a partition, an overloaded control plane)
 * would hold an activity forever; with a limit the call fails and Temporal retries it.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * Connections to the API server kept open between requests, one pool per TLS identity (server CA,
 * client certificate and key, server name). client-node 2 still gives every request a new undici
 * Agent, so every call would pay a TCP connect, a TLS handshake and the parse of the client key:
 * measured with client-node 1.4's per-request agents, a fifth of the control worker's CPU in an
 * alert storm went to creating TLS contexts, plus the API server's side of each handshake.
 */
const SHARED_DISPATCHERS = new Map<string, Agent>();
/** Connections per API server and identity (watches do not use these pools). */
const MAX_SOCKETS = 32;
/** How long the TLS identity read from a kubeconfig is trusted before it is read again (rotation). */
const IDENTITY_TTL_MS = 30_000;
const IDENTITY_FIELDS = [
  'ca',
  'cert',
  'key',
  'pfx',
  'passphrase',
  'servername',
  'rejectUnauthorized',
] as const;

const identities = new WeakMap<KubeConfig, { readonly dispatcher: Agent; readonly at: number }>();

/**
 * The shared pool for a kubeconfig's current TLS identity, or undefined when client-node would use
 * no agent of its own (plain HTTP without TLS options, a proxy).
 */
export async function sharedDispatcher(kc: KubeConfig, now = Date.now()): Promise<Agent | undefined> {
  const known = identities.get(kc);
  if (known && now - known.at < IDENTITY_TTL_MS) return known.dispatcher;
  const requestOptions: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(requestOptions);
  const { ca, cert, key, pfx, passphrase, servername, rejectUnauthorized } = requestOptions;
  const options = kc.createDispatcherOptions(kc.getCurrentCluster(), {
    ca,
    cert,
    key,
    pfx,
    passphrase,
    servername,
    rejectUnauthorized,
  });
  if (options.type !== 'agent') return undefined;
  const connect = options.connect as Record<string, unknown>;
  const hash = createHash('sha256');
  for (const field of IDENTITY_FIELDS) {
    const value = connect[field];
    hash.update(`\0${field}=`);
    if (value === undefined) continue;
    for (const part of Array.isArray(value) ? value : [value]) {
      hash.update(Buffer.isBuffer(part) ? part : String(part));
      hash.update('\0');
    }
  }
  const identity = hash.digest('hex');
  let dispatcher = SHARED_DISPATCHERS.get(identity);
  if (!dispatcher) {
    // At most MAX_SOCKETS connections: in a storm, a hundred calls at once queue for a few kept-alive
    // connections instead of each opening one (a TLS handshake on both sides, when the API server has
    // the least CPU to spare).
    dispatcher = new Agent({ connect: options.connect, connections: MAX_SOCKETS });
    SHARED_DISPATCHERS.set(identity, dispatcher);
  }
  identities.set(kc, { dispatcher, at: now });
  return dispatcher;
}

/** Makes an API client of the given type (tests pass one that records the calls). */
export type ApiClientFactory = <T extends ApiType>(api: ApiConstructor<T>) => T;

/**
 * `kc.makeApiClient(Api)` with a per-request timeout and kept-alive connections (see
 * `sharedDispatcher`). Per-call options that add middleware (the patch content types of
 * `k8s/patch.ts`) append to it, so every call keeps both.
 *
 * @example
 * const core = makeApiClient(kc, CoreV1Api);
 */
export function makeApiClient<T extends ApiType>(
  kc: KubeConfig,
  api: ApiConstructor<T>,
  timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError('kubeconfig has no current cluster');
  const timeout: Middleware = {
    pre: async (request) => {
      request.setSignal(AbortSignal.timeout(timeoutMs));
      // Runs after client-node applied the kubeconfig's authentication, which set a fresh Agent; a
      // proxy's dispatcher is not an Agent and is kept.
      if (!(request.getDispatcher() instanceof Agent)) return request;
      const shared = await sharedDispatcher(kc);
      if (shared) request.setDispatcher(shared);
      return request;
    },
    post: (response) => Promise.resolve(response),
  };
  return new api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kc },
      promiseMiddleware: [timeout],
    }),
  );
}
