import { Option, type Command } from 'commander';
import { loadConfig, type Config, type ConfigKey } from '../config/config.js';

/** Global flags shared by every command; each maps to the configuration key of the same name. */
const globalFlags: ReadonlyArray<{ flag: string; key: ConfigKey; help: string }> = [
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
  for (const { key } of globalFlags) {
    const value = opts[key];
    if (value !== undefined) overrides[key] = value;
  }
  return loadConfig(process.env, overrides);
}

/** Adds the global flags to the root command. */
export function addGlobalFlags(program: Command): void {
  for (const { flag, help } of globalFlags) program.addOption(new Option(flag, help));
}
