import { DefaultLogger, Runtime } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../src/config/config.js';
import { resolveTool } from '../../src/toolchain/toolchain.js';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/search-attributes.js';

/** Path of the Temporal CLI built by `fleetmedic toolchain` (or named by FLEETMEDIC_TEMPORAL_BIN). */
export async function temporalBinary(): Promise<string> {
  return (await resolveTool('temporal', { cacheDir: loadConfig().cacheDir })).path;
}

/**
 * A fresh Temporal dev server on 127.0.0.1 and a free port, with fleetmedic's search attributes, for
 * one test file. The SDK's own download cannot reach its server here, so it runs the cached CLI.
 */
export async function createTemporalTestEnv(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: await temporalBinary() },
      ip: '127.0.0.1',
      searchAttributes: [...SEARCH_ATTRIBUTES],
      extraArgs: ['--log-level', 'error'],
    },
  });
}

let runtimeInstalled = false;

/** Installs the SDK runtime with a WARN-level logger, so worker lifecycle chatter stays out of test output. */
export function installQuietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: new DefaultLogger('WARN') });
}
