import {
  createConfiguration,
  ServerConfiguration,
  type ApiConstructor,
  type ApiType,
  type KubeConfig,
  type Middleware,
} from '@kubernetes/client-node';
import { ConfigError } from '../errors.js';

/**
 * The longest one Kubernetes API request may take. client-node sets no limit of its own, so an API
 * server that accepts the connection and never answers (a partition, an overloaded control plane)
 * would hold an activity forever; with a limit the call fails and Temporal retries it.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** Makes an API client of the given type (tests pass one that records the calls). */
export type ApiClientFactory = <T extends ApiType>(api: ApiConstructor<T>) => T;

/**
 * `kc.makeApiClient(Api)` with a per-request timeout. Per-call options that add middleware (the
 * patch content types of `k8s/patch.ts`) append to it, so every call keeps the limit.
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
