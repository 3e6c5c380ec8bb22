import type { CommandResult, CommandRunner, GpuTool } from '../gpu/command-runner.js';
import { renderDcgmiDiag, renderDcgmiHealth, renderListGpus, renderQueryGpu } from '../gpu/render.js';
import { afterReset, type GpuStateStore } from './gpu-state.js';

function ok(stdout: string, exitCode = 0): CommandResult {
  return { stdout, stderr: '', exitCode, timedOut: false };
}

function flag(args: readonly string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === name) return args[i + 1];
    if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
  }
  return undefined;
}

/**
 * Stand-in `dcgmi` / `nvidia-smi` for a simulated node: interprets the same command lines the node
 * agent sends to the real tools and prints the real output formats for the node's current fault
 * state. Only the simulated node agent host creates one, after checking the cluster's simulation
 * marker; nothing else can reach it.
 */
export function simulatedRunner(
  store: GpuStateStore,
  node: string,
  boot?: { reboot(node: string): Promise<unknown> },
): CommandRunner {
  return {
    /**
     * A reboot brings back a GPU that fell off the bus; hardware faults (failed row remap) remain.
     * The node then reports a new boot ID (`boot`, e.g. `simulatedBoot`), as a real kubelet would.
     */
    async reboot(): Promise<void> {
      const state = await store.get(node);
      let next = state;
      for (const gpu of state.gpus)
        next = afterReset(
          {
            ...next,
            gpus: next.gpus.map((g) =>
              g.index === gpu.index && g.xid === 79 ? { ...g, xid: undefined } : g,
            ),
          },
          gpu.index,
        );
      await store.set(node, { ...next, healthWatchesSet: false });
      // Last, as on a real node: the new boot is seen once the node is back with its GPUs.
      await boot?.reboot(node);
    },
    async run(tool: GpuTool, args: readonly string[]): Promise<CommandResult> {
      const state = await store.get(node);
      if (tool === 'dcgmi') {
        if (args[0] === 'health' && args.includes('-s')) {
          await store.set(node, { ...state, healthWatchesSet: true });
          return ok('Health monitor systems set successfully.\n');
        }
        if (args[0] === 'health' && args.includes('-c')) return withStderr(renderDcgmiHealth(state));
        if (args[0] === 'diag') {
          const level = Number(flag(args, '-r') ?? '1');
          if (![1, 2, 3, 4].includes(level))
            return { stdout: '', stderr: `bad -r ${level}\n`, exitCode: 2, timedOut: false };
          if (state.gpus.some((g) => (g.processes ?? 0) > 0)) {
            return ok('Error: Diagnostic could not be run while GPU processes are active.\n', 222);
          }
          return withStderr(renderDcgmiDiag(state, level as 1 | 2 | 3 | 4, '4'));
        }
      } else {
        const query = flag(args, '--query-gpu');
        if (query) {
          const format = flag(args, '--format') ?? 'csv';
          return withStderr(
            renderQueryGpu(state, query.split(','), {
              header: !format.includes('noheader'),
              units: !format.includes('nounits'),
            }),
          );
        }
        if (flag(args, '--query-compute-apps') !== undefined) {
          const lines = state.gpus.flatMap((g) =>
            Array.from({ length: g.processes ?? 0 }, (_, i) => `${10_000 + g.index * 100 + i}, ${g.uuid}`),
          );
          return ok(lines.map((l) => `${l}\n`).join(''));
        }
        if (args[0] === '-L') return withStderr(renderListGpus(state));
        if (args[0] === '-r') {
          const gpu = Number(flag(args, '-i'));
          const target = state.gpus.find((g) => g.index === gpu);
          if (!target) return ok(`No devices were found\n`, 6);
          if ((target.processes ?? 0) > 0) {
            return ok(
              `Unable to reset GPU ${target.busId} because it's being used by some other process.\n`,
              255,
            );
          }
          if (target.xid === 79)
            return ok(`Unable to reset GPU ${target.busId}: GPU is lost. Reboot the system.\n`, 15);
          await store.set(node, afterReset(state, gpu));
          return ok(`GPU ${target.busId} was successfully reset.\nAll done.\n`);
        }
      }
      return {
        stdout: '',
        stderr: `simulated ${tool}: unsupported arguments ${args.join(' ')}\n`,
        exitCode: 2,
        timedOut: false,
      };
    },
  };
}

function withStderr(r: { stdout: string; exitCode: number }): CommandResult {
  return { stdout: r.stdout, stderr: '', exitCode: r.exitCode, timedOut: false };
}
