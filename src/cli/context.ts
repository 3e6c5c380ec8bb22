import type { KubeConfig } from '@kubernetes/client-node';
import { Option, type Command } from 'commander';
import { temporalTls, type TemporalTarget } from '../client/temporal-connection.js';
import { loadConfig, type Config, type ConfigKey } from '../config/config.js';
import { ConfigError } from '../errors.js';
import { loadInClusterKubeConfig, loadKubeConfig } from '../k8s/kubeconfig.js';
import { readStackState } from '../stack/state.js';

/** Global flags shared by every command; each maps to the configuration key of the same name. */
export const GLOBAL_FLAGS: ReadonlyArray<{ flag: string; key: ConfigKey; help: string }> = [
  { flag: '--state-dir <dir>', key: 'stateDir', help: 'state directory of the embedded stack' },
  { flag: '--cache-dir <dir>', key: 'cacheDir', help: 'cache directory for built tools' },
  { flag: '--cluster-id <id>', key: 'clusterId', help: 'ID of the managed cluster' },
  { flag: '--kubeconfig <file>', key: 'kubeconfig', help: 'explicit kubeconfig (never ~/.kube/config)' },
  { flag: '--temporal-address <host:port>', key: 'temporalAddress', help: 'Temporal frontend' },
  { flag: '--log-level <level>', key: 'logLevel', help: 'trace|debug|info|warn|error|silent' },
];

/** Builds the configuration from the environment plus the global flags given to `program`. */
export function configFrom(program: Command): Config {
  const opts = program.opts<Record<string, string | undefined>>();
  const overrides: Partial<Record<ConfigKey, string>> = {};
  for (const { key } of GLOBAL_FLAGS) {
    const value = opts[key];
    if (value !== undefined) overrides[key] = value;
  }
  return loadConfig(process.env, overrides);
}

/** Adds the global flags to the root command. */
export function addGlobalFlags(program: Command): void {
  for (const { flag, help } of GLOBAL_FLAGS) program.addOption(new Option(flag, help));
}

/** Where the CLI's commands act: explicit configuration first, else the embedded stack's record. */
export interface Targets {
  readonly temporalAddress: string;
  readonly namespace: string;
  /** The Temporal frontend with its TLS settings and API key: pass to `connectionOptions`. */
  readonly temporal: TemporalTarget;
  /** The kubeconfig file; absent when the pod's ServiceAccount is used (`inCluster`). */
  readonly kubeconfig?: string;
  readonly inCluster: boolean;
  readonly clusterId: string;
  readonly taskQueue: string;
  /** True when the targets come from the embedded (simulated) stack. */
  readonly embedded: boolean;
}

/**
 * Resolves the Temporal address, kubeconfig and cluster ID from one source, never mixed: all three
 * from the configuration (environment or flags) when any of them is set there, else all from the
 * stack `fleetmedic up` recorded. A kubeconfig for one cluster with another's Temporal or cluster ID
 * would act on the wrong fleet; a partial configuration is refused, naming what is missing. Never
 * from ~/.kube/config.
 */
export async function resolveTargets(config: Config): Promise<Targets> {
  const explicit = {
    FLEETMEDIC_TEMPORAL_ADDRESS: config.temporalAddress,
    'FLEETMEDIC_KUBECONFIG (or FLEETMEDIC_IN_CLUSTER=true)': config.inCluster
      ? 'in-cluster'
      : config.kubeconfig,
    FLEETMEDIC_CLUSTER_ID: config.clusterId,
  };
  const given = Object.entries(explicit).filter(([, v]) => v !== undefined);
  const tls = temporalTls(config);
  const targets = (
    temporalAddress: string,
    clusterId: string,
    kubeconfig: string | undefined,
    embedded: boolean,
  ) => ({
    temporalAddress,
    namespace: config.temporalNamespace,
    temporal: {
      address: temporalAddress,
      namespace: config.temporalNamespace,
      ...(tls !== undefined && { tls }),
      ...(config.temporalApiKey !== undefined && { apiKey: config.temporalApiKey }),
    },
    ...(kubeconfig !== undefined && { kubeconfig }),
    inCluster: config.inCluster,
    clusterId,
    taskQueue: config.taskQueue,
    embedded,
  });
  if (given.length > 0) {
    const missing = Object.entries(explicit)
      .filter(([, v]) => v === undefined)
      .map(([k]) => k);
    if (missing.length > 0) {
      throw new ConfigError(
        `${given.map(([k]) => k.split(' ')[0]).join(' and ')} ${given.length === 1 ? 'is' : 'are'} set but ` +
          `${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} not: the Temporal address, the ` +
          'kubeconfig and the cluster ID come from one place (all set, or none and the embedded stack of ' +
          "`fleetmedic up`), never mixed: a kubeconfig with another cluster's Temporal or cluster ID would act on the wrong fleet",
      );
    }
    return targets(
      config.temporalAddress!,
      config.clusterId!,
      config.inCluster ? undefined : config.kubeconfig,
      false,
    );
  }
  const state = await readStackState(config.stateDir);
  if (!state) {
    throw new ConfigError(
      'no Temporal address, kubeconfig or cluster ID: set FLEETMEDIC_TEMPORAL_ADDRESS, FLEETMEDIC_KUBECONFIG ' +
        '(or FLEETMEDIC_IN_CLUSTER=true in a pod) and FLEETMEDIC_CLUSTER_ID, or start the embedded stack with ' +
        `\`fleetmedic up\` (state dir ${config.stateDir})`,
    );
  }
  return targets(state.temporal.address, state.clusterId, state.kube.kubeconfig, true);
}

/** The Kubernetes credentials of the targets: the kubeconfig file, or the pod's ServiceAccount. */
export function targetKubeConfig(targets: Pick<Targets, 'kubeconfig' | 'inCluster'>): KubeConfig {
  if (targets.inCluster) return loadInClusterKubeConfig();
  if (targets.kubeconfig === undefined) throw new ConfigError('no kubeconfig: set FLEETMEDIC_KUBECONFIG');
  return loadKubeConfig(targets.kubeconfig);
}
