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

/** The API server URL of a kubeconfig's current context. */
export function apiServerUrl(kc: KubeConfig): string {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError('kubeconfig has no current cluster');
  return cluster.server;
}
