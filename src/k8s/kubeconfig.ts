import { KubeConfig } from '@kubernetes/client-node';
import fs from 'node:fs';
import { ConfigError } from '../errors.js';

/**
 * Loads a kubeconfig from an explicit file. fleetmedic never calls `loadFromDefault()`: it must not
 * pick up `~/.kube/config`, `$KUBECONFIG` or an in-cluster service account by accident, because the
 * wrong cluster is the worst cluster to remediate.
 *
 * @throws ConfigError when the file is missing or has no current context.
 */
export function loadKubeConfig(file: string): KubeConfig {
  if (!fs.existsSync(file)) throw new ConfigError(`kubeconfig ${file} does not exist`);
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(file);
  } catch (err) {
    throw new ConfigError(`kubeconfig ${file} could not be read: ${(err as Error).message}`, { cause: err });
  }
  if (!kc.getCurrentCluster()) throw new ConfigError(`kubeconfig ${file} has no current cluster`);
  return kc;
}

/** Where Kubernetes mounts a pod's ServiceAccount credentials. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The pod's ServiceAccount credentials, used only when the configuration says so explicitly
 * (`FLEETMEDIC_IN_CLUSTER=true`): outside a pod it refuses rather than fall back to anything else.
 *
 * @throws ConfigError when the process does not run in a pod with a mounted ServiceAccount token.
 */
export function loadInClusterKubeConfig(
  env: NodeJS.ProcessEnv = process.env,
  dir = SERVICE_ACCOUNT_DIR,
): KubeConfig {
  const missing = [
    env.KUBERNETES_SERVICE_HOST ? undefined : 'KUBERNETES_SERVICE_HOST is not set',
    env.KUBERNETES_SERVICE_PORT ? undefined : 'KUBERNETES_SERVICE_PORT is not set',
    fs.existsSync(`${dir}/token`) ? undefined : `${dir}/token does not exist`,
  ].filter((m) => m !== undefined);
  if (missing.length > 0) {
    throw new ConfigError(
      `FLEETMEDIC_IN_CLUSTER=true, but this is not a pod with a ServiceAccount (${missing.join('; ')}); ` +
        'outside a pod, set FLEETMEDIC_KUBECONFIG instead',
    );
  }
  const kc = new KubeConfig();
  kc.loadFromCluster();
  return kc;
}

/** The API server URL of a kubeconfig's current context. */
export function apiServerUrl(kc: KubeConfig): string {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError('kubeconfig has no current cluster');
  return cluster.server;
}
