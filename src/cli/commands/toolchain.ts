import type { Command } from 'commander';
import { buildToolchain } from '../../toolchain/toolchain.js';
import { configFrom } from '../context.js';

/** `fleetmedic toolchain`: builds (or checks) every binary of the embedded stack into the cache. */
export function registerToolchainCommand(program: Command): void {
  program
    .command('toolchain')
    .description('build the embedded stack tools from their Go modules into the cache (idempotent)')
    .option('--force', 'rebuild even when the cached binaries pass their version checks')
    .action(async (opts: { force?: boolean }) => {
      const config = configFrom(program);
      const started = Date.now();
      const tools = await buildToolchain({
        cacheDir: config.cacheDir,
        force: opts.force ?? false,
        log: (line) => process.stderr.write(`[toolchain] ${line}\n`),
      });
      for (const tool of Object.values(tools)) {
        process.stdout.write(`${tool.name.padEnd(24)} v${tool.version.padEnd(8)} ${tool.path}\n`);
      }
      process.stderr.write(`[toolchain] ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    });
}
