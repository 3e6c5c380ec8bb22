import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import type { DiagEvidence, TriageEvidence } from '../domain/xid-classification.js';
import { FailureType, FleetmedicError } from '../errors.js';
import type { CommandRunner, GpuTool } from '../gpu/command-runner.js';
import { parseDcgmiDiag, parseDcgmiHealth } from '../gpu/dcgmi.js';
import { DEFAULT_HEALTH_QUERY_FIELDS, parseListGpus, parseQueryGpu } from '../gpu/nvidia-smi.js';
import { DEVICE_HELD, type ResetHolder } from '../gpu/reset-holders.js';
import { BootIdUnavailable } from '../k8s/boot-id.js';
import { validateInput } from './input.js';

/** What the agent checks of its activities' input beyond the target (which `guard` checks). */
const resetGpuSchema = z.object({ gpu: z.number().int().min(0) });
const rebootSchema = z.object({ bootIdBefore: z.string().min(1).max(256).optional() });
const diagSchema = z.object({ level: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)]) });

export interface NodeAgentDeps {
  readonly clusterId: string;
  readonly node: string;
  readonly runner: CommandRunner;
  /** Per-command timeout for quick queries (health, nvidia-smi). */
  readonly queryTimeoutMs?: number;
  /**
   * The GPU holders stopped around a reset and started again after it (the agent's
   * `--reset-holders` file; see gpu/reset-holders.ts). Empty: a reset the device refuses goes to an
   * operator.
   */
  readonly resetHolders?: readonly ResetHolder[];
  /** Reads this node's boot ID (`status.nodeInfo.bootID` of its own Node); needed to reboot. */
  readonly readBootId?: () => Promise<string>;
}

/** What `agentRebootNode` did: the boot ID the reboot must replace, and whether it had already. */
export interface RebootNodeResult {
  readonly bootIdBefore: string;
  /** The node already runs another boot than `bootIdBefore`: this attempt rebooted nothing. */
  readonly alreadyRebooted: boolean;
}

/** Every node agent activity names the node and cluster it is meant for; the agent refuses others. */
export interface AgentTarget {
  readonly clusterId: string;
  readonly node: string;
}

export interface GpuProcesses {
  /** Compute processes per GPU index. */
  readonly byGpu: Readonly<Record<number, number>>;
  readonly total: number;
  /** Processes whose GPU could not be matched to an index: they may be on any GPU. */
  readonly unmatched: number;
  /** Why the GPU list (`nvidia-smi -L`) could not be read; then no process can be placed. */
  readonly listError?: string;
}

/**
 * How many processes may hold `gpu`, failing closed: a process that could not be matched to a GPU,
 * or a GPU list that could not be read, counts against every GPU.
 */
export function processesOnGpu(procs: GpuProcesses, gpu: number): { count: number; why: string } {
  if (procs.listError !== undefined) {
    return {
      count: Math.max(1, procs.total),
      why: `${procs.listError}: the busy check cannot place processes`,
    };
  }
  const own = procs.byGpu[gpu] ?? 0;
  if (procs.unmatched > 0) {
    return {
      count: own + procs.unmatched,
      why: `${own} process(es), and ${procs.unmatched} on a GPU nvidia-smi -L does not list`,
    };
  }
  return { count: own, why: `${own} process(es)` };
}

/**
 * Activities that must run on the GPU node itself (task queue `fleetmedic-node/<cluster>/<node>`):
 * `dcgmi` and `nvidia-smi`. The central worker never needs `pods/exec`; a node whose agent is gone
 * shows up as a schedule-to-start timeout, which the workflow treats as "node unreachable".
 */
export function createNodeAgentActivities(deps: NodeAgentDeps) {
  const queryTimeoutMs = deps.queryTimeoutMs ?? 30_000;

  function guard(target: AgentTarget): void {
    if (target.clusterId !== deps.clusterId || target.node !== deps.node) {
      throw ApplicationFailure.nonRetryable(
        `node agent for ${deps.clusterId}/${deps.node} refused work for ${target.clusterId}/${target.node}`,
        FailureType.WrongNode,
      );
    }
  }

  async function run(tool: GpuTool, args: string[], timeoutMs = queryTimeoutMs) {
    let signal: AbortSignal | undefined;
    try {
      signal = Context.current().cancellationSignal;
    } catch {
      // Called outside an activity (unit tests of the helpers): no cancellation.
    }
    return deps.runner.run(tool, args, { timeoutMs, signal });
  }

  /** Runs a holder's stop or start command; says why it failed, undefined when it did not. */
  async function hostCommand(holder: ResetHolder, which: 'stop' | 'start'): Promise<string | undefined> {
    if (!deps.runner.exec) return 'this agent cannot run host commands';
    try {
      const r = await deps.runner.exec(holder[which], { timeoutMs: holder.timeoutSeconds * 1000 });
      if (r.exitCode === 0) return undefined;
      return `${holder[which].join(' ')} exited ${r.exitCode}: ${`${r.stdout}${r.stderr}`.trim().slice(0, 300)}`;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /** Permanent parse failures become non-retryable; transient ones (host engine down) retry. */
  function boundary<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof FleetmedicError && err.permanent) {
        throw ApplicationFailure.nonRetryable(err.message, err.code);
      }
      throw err;
    }
  }

  async function gpuProcesses(target: AgentTarget): Promise<GpuProcesses> {
    guard(target);
    const list = await run('nvidia-smi', ['-L']);
    const uuids = new Map<string, number>();
    let listError: string | undefined;
    if (list.exitCode !== 0) {
      listError = `nvidia-smi -L exited ${list.exitCode}`;
    } else {
      try {
        for (const gpu of parseListGpus(list.stdout).gpus) {
          uuids.set(gpu.uuid, gpu.index);
          for (const mig of gpu.mig) uuids.set(mig.uuid, gpu.index);
        }
      } catch (err) {
        listError = `nvidia-smi -L printed what fleetmedic cannot read: ${(err as Error).message}`;
      }
    }
    const apps = await run('nvidia-smi', ['--query-compute-apps=pid,gpu_uuid', '--format=csv,noheader']);
    if (apps.exitCode !== 0)
      throw new Error(`nvidia-smi --query-compute-apps exited ${apps.exitCode}: ${apps.stdout}`);
    const byGpu: Record<number, number> = {};
    let total = 0;
    let unmatched = 0;
    for (const line of apps.stdout.split('\n').filter((l) => l.trim())) {
      const uuid = line.split(',')[1]?.trim() ?? '';
      const index = uuids.get(uuid);
      total++;
      if (index !== undefined) byGpu[index] = (byGpu[index] ?? 0) + 1;
      else unmatched++;
    }
    return { byGpu, total, unmatched, ...(listError !== undefined && { listError }) };
  }

  return {
    /**
     * Triage: `dcgmi health -c -j` and an `nvidia-smi --query-gpu` of the health fields. With no health
     * watches set (exit 253) it sets them (`dcgmi health -s a`) and reports `no-watches`: a fresh
     * watch says Healthy before it has sampled, so that is never taken as evidence of health.
     */
    async agentTriage(target: AgentTarget & { expectedGpuCount?: number }): Promise<TriageEvidence> {
      guard(target);
      const health = await run('dcgmi', ['health', '-c', '-j']);
      const parsedHealth = boundary(() => parseDcgmiHealth(health.stdout, health.exitCode));
      if (parsedHealth.kind === 'no-watches') await run('dcgmi', ['health', '-s', 'a']);
      const fields = [...DEFAULT_HEALTH_QUERY_FIELDS];
      const query = await run('nvidia-smi', [
        `--query-gpu=${fields.join(',')}`,
        '--format=csv,noheader,nounits',
      ]);
      const parsedQuery = boundary(() => parseQueryGpu(query.stdout, fields));
      const healthEvidence =
        parsedHealth.kind === 'no-watches'
          ? parsedHealth
          : { kind: 'report' as const, overall: parsedHealth.overall, incidents: parsedHealth.incidents };
      return {
        health: healthEvidence,
        gpus: parsedQuery.rows,
        unreachableGpus: parsedQuery.unreachable,
        ...(target.expectedGpuCount !== undefined && { expectedGpuCount: target.expectedGpuCount }),
      };
    },

    /** Compute processes per GPU (`nvidia-smi --query-compute-apps`). */
    async agentGpuProcesses(target: AgentTarget): Promise<GpuProcesses> {
      return gpuProcesses(target);
    },

    /**
     * Resets one GPU with `nvidia-smi -r -i N`. A reset needs zero processes on the GPU; the drain
     * keeps DaemonSet pods (dcgm-exporter, device plugin) that may hold it, so the agent checks first
     * and fails with `GpuBusy` (the workflow falls back to the operator path) rather than trying.
     *
     * With reset holders configured, it stops them in order first (a holder that will not stop: the
     * ones stopped are started again, nothing is reset), resets, and starts them again in reverse order
     * whatever the reset did. A holder that does not start again fails the activity (`ResetFailed`,
     * naming it): the GPU was reset, but DCGM may be down, so an operator looks.
     */
    async agentResetGpu(target: AgentTarget & { gpu: number }): Promise<{ output: string }> {
      guard(target);
      validateInput('agentResetGpu', resetGpuSchema, target);
      const busy = processesOnGpu(await gpuProcesses(target), target.gpu);
      if (busy.count > 0) {
        throw ApplicationFailure.nonRetryable(
          `GPU ${target.gpu} on ${deps.node} may be in use (${busy.why}): a reset needs none`,
          FailureType.GpuBusy,
        );
      }
      const holders = deps.resetHolders ?? [];
      const stopped: ResetHolder[] = [];
      const notRestarted: string[] = [];
      const startAgain = async () => {
        for (const h of [...stopped].reverse()) {
          const why = await hostCommand(h, 'start');
          if (why !== undefined) notRestarted.push(`${h.name} (${why})`);
        }
      };
      for (const h of holders) {
        const why = await hostCommand(h, 'stop');
        if (why !== undefined) {
          await startAgain();
          throw ApplicationFailure.nonRetryable(
            `could not stop ${h.name} before resetting GPU ${target.gpu} on ${deps.node} (${why}); ` +
              `nothing was reset${notRestarted.length > 0 ? `; not started again: ${notRestarted.join(', ')}` : ''}`,
            FailureType.ResetFailed,
          );
        }
        stopped.push(h);
      }
      let result: Awaited<ReturnType<typeof run>>;
      try {
        result = await run('nvidia-smi', ['-r', '-i', String(target.gpu)], 120_000);
      } finally {
        await startAgain();
      }
      if (result.exitCode !== 0) {
        const printed = `${result.stdout}${result.stderr}`.trim();
        const held = holders.length === 0 && DEVICE_HELD.test(printed);
        throw ApplicationFailure.nonRetryable(
          `nvidia-smi -r -i ${target.gpu} on ${deps.node} failed (exit ${result.exitCode}): ${printed}` +
            (held
              ? '; the device is held (persistence daemon, DCGM host engine, dcgm-exporter): configure the ' +
                "agent's reset holders (--reset-holders, see docs/install-kubernetes.md) or reset it by hand and run mark-repaired"
              : '') +
            (notRestarted.length > 0 ? `; not started again: ${notRestarted.join(', ')}` : ''),
          FailureType.ResetFailed,
        );
      }
      if (notRestarted.length > 0) {
        throw ApplicationFailure.nonRetryable(
          `GPU ${target.gpu} on ${deps.node} was reset, but ${notRestarted.join(', ')} did not start again: ` +
            'start it by hand, then run mark-repaired',
          FailureType.ResetFailed,
        );
      }
      return { output: result.stdout.trim() };
    },

    /**
     * Schedules a reboot of the node and returns; the workflow then waits for a new boot ID
     * (`awaitNewBoot` on the control worker), since on a real node the reboot kills this activity.
     * With `bootIdBefore` (the boot ID the workflow recorded before asking), an attempt that finds
     * another boot ID now returns at once: the reboot already happened, and never happens twice.
     * Only runners that can reboot support it: the simulated one, and on a real node an agent given
     * a reboot command (`--reboot-command`); without one it refuses (`RebootUnsupported`) and the
     * operator reboots out of band. A reboot command that fails or times out is `RebootFailed`,
     * non-retryable: it may have rebooted after all, and a reboot is never repeated blindly.
     */
    async agentRebootNode(target: AgentTarget & { bootIdBefore?: string }): Promise<RebootNodeResult> {
      guard(target);
      const { bootIdBefore } = validateInput('agentRebootNode', rebootSchema, target);
      if (!deps.runner.reboot || !deps.readBootId) {
        throw ApplicationFailure.nonRetryable(
          `automatic reboot of ${deps.node} is not enabled on this agent (no --reboot-command / FLEETMEDIC_REBOOT_COMMAND)`,
          FailureType.RebootUnsupported,
        );
      }
      let now: string;
      try {
        now = await deps.readBootId();
      } catch (err) {
        if (err instanceof BootIdUnavailable) {
          throw ApplicationFailure.nonRetryable(
            err.message,
            err.why === 'not-found' ? FailureType.NodeNotFound : FailureType.BootIdUnknown,
          );
        }
        throw err;
      }
      if (bootIdBefore !== undefined && now !== bootIdBefore) return { bootIdBefore, alreadyRebooted: true };
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat({ running: 'reboot command' }), 5_000);
      try {
        await deps.runner.reboot();
      } catch (err) {
        // A reboot command that failed or timed out may have rebooted after all: never run it again blindly.
        if (err instanceof FleetmedicError && err.permanent) {
          throw ApplicationFailure.nonRetryable(`reboot of ${deps.node}: ${err.message}`, err.code);
        }
        throw err;
      } finally {
        clearInterval(beat);
      }
      return { bootIdBefore: now, alreadyRebooted: false };
    },

    /**
     * Validation: `dcgmi diag -r <level> -j`. Level 3 runs for a long time, so the activity heartbeats
     * while it runs (give it a heartbeat timeout); diag refuses to run while GPU processes exist.
     */
    async agentDiag(target: AgentTarget & { level: 1 | 2 | 3 | 4 }): Promise<DiagEvidence> {
      guard(target);
      validateInput('agentDiag', diagSchema, target);
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat({ running: `dcgmi diag -r ${target.level}` }), 5_000);
      try {
        const result = await run('dcgmi', ['diag', '-r', String(target.level), '-j'], 4 * 3600_000);
        const parsed = boundary(() => parseDcgmiDiag(result.stdout, result.exitCode));
        return { passed: parsed.passed, runtimeError: parsed.runtimeError, errors: parsed.errors };
      } finally {
        clearInterval(beat);
      }
    },
  };
}

export type NodeAgentActivities = ReturnType<typeof createNodeAgentActivities>;
