import {
  createConfiguration,
  ServerConfiguration,
  type ApiConstructor,
  type ApiType,
  type KubeConfig,
  type Middleware,
} from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { ConfigError } from '../errors.js';

/**
 * The longest one Kubernetes API request may take. client-node sets no limit of its own, so an API
 * server that accepts the connection and never answers (a partition, an overloaded control plane)
 * would hold an activity forever; with a limit the call fails and Temporal retries it.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * Connections to the API server kept open between requests, one agent per TLS identity (server CA,
 * client certificate and key, server name). client-node 1.4 gives every request a new agent, so
 * every call pays a TCP connect, a TLS handshake and the parse of the client key: measured here, a
 * fifth of the control worker's CPU in an alert storm went to creating TLS contexts, plus the API
 * server's side of each handshake.
 */
const KEEP_ALIVE_AGENTS = new Map<string, http.Agent>();
/** Connections per API server and identity (watches do not use these agents). */
const MAX_SOCKETS = 32;
const AGENT_IDENTITY_FIELDS = [
  'ca',
  'cert',
  'key',
  'pfx',
  'passphrase',
  'servername',
  'rejectUnauthorized',
] as const;

/**
 * The shared keep-alive agent for the options of the agent client-node made for one request. Only
 * plain `https.Agent`/`http.Agent` are replaced: a proxy agent (a kubeconfig `proxy-url`) is kept.
 */
export function keepAliveAgent(agent: http.Agent | https.Agent | undefined): http.Agent | undefined {
  if (agent === undefined) return undefined;
  const isHttps = agent.constructor === https.Agent;
  if (!isHttps && agent.constructor !== http.Agent) return agent;
  const options = (agent as https.Agent).options;
  const hash = createHash('sha256').update(isHttps ? 'https' : 'http');
  for (const field of AGENT_IDENTITY_FIELDS) {
    const value: unknown = options[field];
    hash.update(`\0${field}=`);
    if (value === undefined) continue;
    for (const part of Array.isArray(value) ? value : [value]) {
      hash.update(Buffer.isBuffer(part) ? part : String(part));
      hash.update('\0');
    }
  }
  const key = hash.digest('hex');
  let shared = KEEP_ALIVE_AGENTS.get(key);
  if (!shared) {
    // At most MAX_SOCKETS connections: in a storm, a hundred calls at once queue for a few kept-alive
    // connections instead of each opening one (a TLS handshake on both sides, when the API server has
    // the least CPU to spare).
    const keep = { ...options, keepAlive: true, scheduling: 'lifo' as const, maxSockets: MAX_SOCKETS };
    // One TLS context for every connection of the agent: built per connection, it parses the CA,
    // the client certificate and the key again each time (a storm opens many connections at once).
    shared = isHttps
      ? new https.Agent({
          ...keep,
          secureContext: tls.createSecureContext({
            ca: options.ca,
            cert: options.cert,
            key: options.key,
            pfx: options.pfx,
            passphrase: options.passphrase,
          }),
        })
      : new http.Agent(keep);
    KEEP_ALIVE_AGENTS.set(key, shared);
  }
  return shared;
}

/** Makes an API client of the given type (tests pass one that records the calls). */
export type ApiClientFactory = <T extends ApiType>(api: ApiConstructor<T>) => T;

/**
 * `kc.makeApiClient(Api)` with a per-request timeout and kept-alive connections (see
 * `keepAliveAgent`). Per-call options that add middleware (the patch content types of
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
    pre: (request) => {
      request.setSignal(AbortSignal.timeout(timeoutMs));
      // Runs after client-node applied the kubeconfig's authentication, which set a fresh agent.
      const agent = keepAliveAgent(request.getAgent());
      if (agent) request.setAgent(agent);
      return Promise.resolve(request);
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
