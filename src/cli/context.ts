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
 * Resolves the Temporal address, kubeconfig and cluster ID: each from the configuration when set,
 * otherwise from the stack `fleetmedic up` recorded. Never from ~/.kube/config.
 */
export async function resolveTargets(config: Config): Promise<Targets> {
  const state = await readStackState(config.stateDir);
  const temporalAddress = config.temporalAddress ?? state?.temporal.address;
  const kubeconfig = config.inCluster ? undefined : (config.kubeconfig ?? state?.kube.kubeconfig);
  const clusterId = config.clusterId ?? state?.clusterId;
  if (!temporalAddress || (!kubeconfig && !config.inCluster) || !clusterId) {
    throw new ConfigError(
      'no Temporal address, kubeconfig or cluster ID: set FLEETMEDIC_TEMPORAL_ADDRESS, FLEETMEDIC_KUBECONFIG ' +
        '(or FLEETMEDIC_IN_CLUSTER=true in a pod) and FLEETMEDIC_CLUSTER_ID, or start the embedded stack with ' +
        `\`fleetmedic up\` (state dir ${config.stateDir})`,
    );
  }
  const tls = temporalTls(config);
  return {
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
    embedded: state !== undefined && config.kubeconfig === undefined && !config.inCluster,
  };
}

/** The Kubernetes credentials of the targets: the kubeconfig file, or the pod's ServiceAccount. */
export function targetKubeConfig(targets: Pick<Targets, 'kubeconfig' | 'inCluster'>): KubeConfig {
  if (targets.inCluster) return loadInClusterKubeConfig();
  if (targets.kubeconfig === undefined) throw new ConfigError('no kubeconfig: set FLEETMEDIC_KUBECONFIG');
  return loadKubeConfig(targets.kubeconfig);
}
