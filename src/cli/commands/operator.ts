import { Client, Connection } from '@temporalio/client';
import { connectionOptions } from '../../client/temporal-connection.js';
import { drillRelease } from '../../client/drill-release.js';
import { runningDrillLines, runningDrills } from '../../client/drill-runs.js';
import { InvalidArgumentError, type Command } from 'commander';
import os from 'node:os';
import {
  DECISION_ALIASES,
  OperatorClient,
  OperatorError,
  REMEDIATION_PHASES,
  type BudgetView,
  type DecisionName,
  type NodeRemediation,
  type OperatorService,
  type RemediationRow,
} from '../../client/operator-client.js';
import type { Config } from '../../config/config.js';
import {
  createDrillReaper,
  describeDrillRuns,
  type DescribeDrillRun,
  type ReapOutcome,
} from '../../drill/reaper.js';
import { readStackState } from '../../stack/state.js';
import { stackHealth } from '../../stack/stack.js';
import { configFrom, resolveTargets, targetKubeConfig, type Targets } from '../context.js';
import { printStackStatus } from './stack.js';

/** Deadline of each Temporal call the operator commands make. */
const TIMEOUT_MS = 15_000;

const stdout = (text: string) => {
  process.stdout.write(text);
};

/** What the operator commands take from outside; tests pass a fake operator and collect the output. */
export interface OperatorCommandDeps {
  /**
   * Runs `fn` with the operator service. Default: an {@link OperatorClient} on the configured
   * Temporal, connected for the call. (`status` without a node always reads the configured stack.)
   */
  readonly withService?: <T>(fn: (operator: OperatorService) => Promise<T>) => Promise<T>;
  /** Where answers go (default stdout). */
  readonly out?: (text: string) => void;
  /**
   * The drill reaper's pass for one node (`release` of a node a drill cordoned); undefined when no
   * drill owns the node's record. Default: the reaper on the configured cluster.
   */
  readonly reapDrillNode?: (node: string) => Promise<ReapOutcome | undefined>;
}

function loginName(): string {
  try {
    return os.userInfo().username;
  } catch {
    // No passwd entry (some containers): the environment's name, else the caller must pass --by.
    return process.env.USER ?? process.env.LOGNAME ?? '';
  }
}

function phase(value: string): string {
  if (!(REMEDIATION_PHASES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(
      `--phase must be one of ${REMEDIATION_PHASES.join(', ')}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function positiveInt(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) <= 0) {
      throw new InvalidArgumentError(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
    }
    return Number(value);
  };
}

/** Connects to Temporal and runs `fn` with an {@link OperatorClient} for the configured cluster. */
async function withOperator<T>(
  program: Command,
  fn: (operator: OperatorClient, targets: Targets, config: Config, client: Client) => Promise<T>,
): Promise<T> {
  const config = configFrom(program);
  const targets = await resolveTargets(config);
  let connection: Connection;
  try {
    connection = await Connection.connect({
      ...connectionOptions(targets.temporal),
      connectTimeout: TIMEOUT_MS,
    });
  } catch (err) {
    throw new OperatorError(
      'unavailable',
      `cannot reach Temporal at ${targets.temporalAddress}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  try {
    const client = new Client({ connection, namespace: targets.namespace });
    const operator = new OperatorClient(client, {
      clusterId: targets.clusterId,
      taskQueue: targets.taskQueue,
      address: targets.temporalAddress,
      timeoutMs: TIMEOUT_MS,
    });
    return await fn(operator, targets, config, client);
  } finally {
    await connection.close();
  }
}

/**
 * `release` of `node` as far as drills go, on the configured cluster (Temporal is reached only for a
 * drill's node): the answer when a drill cordoned it, undefined otherwise.
 */
async function releaseDrillNode(program: Command, node: string): Promise<string | undefined> {
  const targets = await resolveTargets(configFrom(program));
  let connection: Connection | undefined;
  const describe: DescribeDrillRun = async (workflowId) => {
    connection ??= await Connection.connect({
      ...connectionOptions(targets.temporal),
      connectTimeout: TIMEOUT_MS,
    });
    return describeDrillRuns(
      new Client({ connection, namespace: targets.namespace }),
      TIMEOUT_MS,
    )(workflowId);
  };
  try {
    const reaper = createDrillReaper({
      kc: targetKubeConfig(targets),
      clusterId: targets.clusterId,
      describe,
    });
    return await drillRelease(reaper)(node);
  } finally {
    await connection?.close();
  }
}

/** `3d04h`, `2h05m`, `3m12s`, `42s`. */
export function formatAge(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d${two(h)}h`;
  if (h > 0) return `${h}h${two(m)}m`;
  if (m > 0) return `${m}m${two(s)}s`;
  return `${s}s`;
}

/** Left-aligned columns; the last column is not padded. */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** The remediation table: node, phase, outcome, age, what it waits for. */
export function remediationTable(rows: readonly RemediationRow[]): string {
  return table(
    ['NODE', 'PHASE', 'OUTCOME', 'AGE', 'WAITING FOR'],
    rows.map((r) => [
      r.node,
      r.phase ?? '-',
      r.outcome ?? (r.status === 'RUNNING' ? '-' : r.status.toLowerCase()),
      formatAge(r.ageSeconds),
      r.queryError ? `? (${r.queryError})` : (r.waitingFor ?? '-'),
    ]),
  );
}

/** One line on the fleet budget. */
export function budgetLine(budget: BudgetView | null): string {
  if (!budget) return 'fleet budget: none yet (no remediation has asked for a drain slot)\n';
  const breaker =
    budget.breaker.state === 'open'
      ? `breaker OPEN since ${new Date(budget.breaker.openedAt).toISOString()} (${budget.breaker.reason})`
      : 'breaker closed';
  if (budget.rebuilding) {
    return 'fleet budget: restarted, rebuilding from the cluster (it answers no request until it has read its records)\n';
  }
  return (
    `fleet budget: ${budget.inUse}/${budget.limit} drain slot(s) in use` +
    `${budget.draining.length > 0 ? ` (${budget.draining.join(', ')})` : ''}, ` +
    `${budget.queued.length > 0 ? `${budget.queued.length} waiting (${budget.queued.slice(0, 5).join(', ')}${budget.queued.length > 5 ? ', ...' : ''}), ` : ''}` +
    `${breaker}, ` +
    `${budget.paused ? 'automation PAUSED' : 'automation running'}, ` +
    `${budget.healthyNodes}/${budget.gpuNodeCount} GPU nodes healthy\n`
  );
}

/** A node's remediation in full, for people. */
export function nodeReport(n: NodeRemediation): string {
  const r = n.remediation;
  const lines = [
    `${n.workflowId} (run ${n.runId}): ${n.status.toLowerCase()}, age ${formatAge(n.ageSeconds)}`,
    `  phase        ${r?.phase ?? n.phase ?? '-'}`,
    `  outcome      ${r?.outcome ?? n.outcome ?? '-'}`,
  ];
  if (!r) {
    lines.push(`  (the workflow did not answer: ${n.queryError ?? 'no status'})`);
    return lines.join('\n') + '\n';
  }
  lines.push(
    `  class        ${r.class ?? '-'}`,
    `  waiting for  ${r.waitingFor ?? '-'}`,
    `  accepts      ${n.actions.length > 0 ? n.actions.join(', ') : '-'}`,
    `  quarantine   ${r.quarantineReason ?? '-'}`,
    `  alerts       ${r.alerts} firing, ${r.resolvedAlerts} resolved; ${r.reminders} reminder(s) sent`,
  );
  if (r.reasons.length > 0) lines.push('  reasons', ...r.reasons.map((x) => `    - ${x}`));
  if (r.decisions.length > 0) {
    lines.push(
      '  decisions',
      ...r.decisions.map((d) => `    - ${d.action} by ${d.by} at ${d.at}${d.reason ? `: ${d.reason}` : ''}`),
    );
  }
  return lines.join('\n') + '\n';
}

/** A one-line account of the stack `fleetmedic up` recorded, or of the configured targets. */
async function stackLine(config: Config, targets: Targets): Promise<string> {
  const state = await readStackState(config.stateDir);
  if (!state || !targets.embedded) {
    return `cluster ${targets.clusterId} via Temporal ${targets.temporalAddress} (namespace ${targets.namespace}), task queue ${targets.taskQueue}\n`;
  }
  const health = await stackHealth(state);
  return (
    `stack ${health.healthy ? 'healthy' : 'UNHEALTHY'}: cluster ${state.clusterId}, ` +
    `${health.readyNodes}/${state.nodes} simulated nodes Ready, Temporal ${state.temporal.address}, ` +
    `UI ${state.temporal.uiUrl}${health.problems.length > 0 ? ` (${health.problems.join('; ')}; see \`fleetmedic stack status\`)` : ''}\n`
  );
}

/** The decision commands, with their help (aliases: `DECISION_ALIASES`). */
const DECISION_COMMANDS: readonly (readonly [DecisionName, string])[] = [
  ['approve', 'authorize the repair a remediation proposes (or a drain although pods do not fit elsewhere)'],
  [
    'reject',
    'reject the repair: the run holds the node quarantined with the reason until release or mark-repaired',
  ],
  ['mark-repaired', 'after an out-of-band fix: validate and return the node to service (lifts a reject too)'],
  ['release', 'return a held node to service without a repair (you take responsibility; lifts a reject)'],
  ['retry', "run a held node's failed step again: its quarantine, drain or release"],
];

/**
 * `fleetmedic approve|reject|mark-repaired|release|retry <node>`, `pause|resume|reset-breaker`,
 * `list|status|show`: what an operator does and reads.
 *
 * @param deps the operator service and output, for tests; the CLI passes none.
 */
export function registerOperatorCommands(program: Command, deps: OperatorCommandDeps = {}): void {
  const out = deps.out ?? stdout;
  const releaseDrill = deps.reapDrillNode
    ? drillRelease({ reapNode: deps.reapDrillNode })
    : (node: string) => releaseDrillNode(program, node);
  const service =
    deps.withService ??
    (<T>(fn: (operator: OperatorService) => Promise<T>) => withOperator(program, (operator) => fn(operator)));

  for (const paused of [true, false]) {
    program
      .command(paused ? 'pause' : 'resume')
      .description(
        paused
          ? 'pause automatic remediation of the cluster: no new quarantines or drains; running remediations continue'
          : 'resume automatic remediation of the cluster',
      )
      .option('--by <identity>', 'who (recorded in the history)', loginName())
      .option('--reason <text>', 'why (recorded in the history)')
      .option('--json', 'print JSON')
      .action(async (opts: { by: string; reason?: string; json?: boolean }) => {
        const answer = await service((operator) =>
          operator.setPaused(paused, {
            by: opts.by,
            ...(opts.reason !== undefined && { reason: opts.reason }),
          }),
        );
        if (opts.json) {
          out(`${JSON.stringify(answer, null, 2)}\n`);
          return;
        }
        out(
          `automation ${paused ? 'paused' : 'resumed'} by ${answer.by}` +
            `${answer.reason ? ` (${answer.reason})` : ''}\n${answer.effect}\n${budgetLine(answer.budget)}`,
        );
      });
  }

  for (const [name, help] of DECISION_COMMANDS) {
    const aliases = Object.entries(DECISION_ALIASES)
      .filter(([, to]) => to === name)
      .map(([alias]) => alias);
    program
      .command(`${name} <node>`)
      .aliases(aliases)
      .description(help)
      .option('--by <identity>', 'who decides (recorded in the history)', loginName())
      .option('--reason <text>', 'why (recorded in the history)')
      .action(async (node: string, opts: { by: string; reason?: string }) => {
        // A drill's cordon has no remediation to signal: the reaper reverts it once the drill's run is closed.
        const drill = name === 'release' ? await releaseDrill(node) : undefined;
        if (drill !== undefined) {
          out(`${drill}\n`);
          return;
        }
        // A refusal already says which decision and what the node accepts now (operator-client.ts).
        const answer = await service((operator) =>
          operator.decide(node, name, {
            by: opts.by,
            ...(opts.reason !== undefined && { reason: opts.reason }),
          }),
        );
        out(`${answer}\n`);
      });
  }

  program
    .command('reset-breaker')
    .description("close the fleet's circuit breaker after looking at the fleet (automation then runs again)")
    .option('--by <identity>', 'who (recorded in the history)', loginName())
    .option('--reason <text>', 'why (recorded in the history)')
    .action(async (opts: { by: string; reason?: string }) => {
      const budget = await service((operator) =>
        operator.resetBreaker({ by: opts.by, ...(opts.reason !== undefined && { reason: opts.reason }) }),
      );
      out(`breaker reset by ${opts.by}${opts.reason ? ` (${opts.reason})` : ''}\n${budgetLine(budget)}`);
    });

  program
    .command('list')
    .description(
      'remediations of the cluster (open ones; --all includes closed): phase, outcome, age, waiting for',
    )
    .option('--all', 'include closed remediations')
    .option('--phase <phase>', 'only remediations in this phase', phase)
    .option('--node <name>', 'only this node')
    .option('--limit <n>', 'at most this many', positiveInt('--limit'), 200)
    .option('--json', 'print JSON')
    .action(async (opts: { all?: boolean; phase?: string; node?: string; limit: number; json?: boolean }) => {
      const rows = await service((operator) =>
        operator.list({
          all: opts.all ?? false,
          limit: opts.limit,
          ...(opts.phase !== undefined && { phase: opts.phase }),
          ...(opts.node !== undefined && { node: opts.node }),
        }),
      );
      if (opts.json) out(`${JSON.stringify(rows, null, 2)}\n`);
      else if (rows.length === 0) out(`no ${opts.all ? '' : 'open '}remediations\n`);
      else out(remediationTable(rows));
    });

  const showNode = async (node: string, opts: { json?: boolean }) => {
    const n = await service((operator) => operator.node(node));
    out(opts.json ? `${JSON.stringify(n, null, 2)}\n` : nodeReport(n));
  };

  program
    .command('status [node]')
    .description(
      'open remediations (phase, age, what each waits for), the fleet budget and running drills; with a node, its remediation in full',
    )
    .option('--json', 'print JSON')
    .option('--stack', 'the embedded stack in detail instead (same as `fleetmedic stack status`)')
    .action(async (node: string | undefined, opts: { json?: boolean; stack?: boolean }) => {
      if (opts.stack) {
        process.exitCode = await printStackStatus(configFrom(program), opts);
        return;
      }
      if (node !== undefined) {
        await showNode(node, opts);
        return;
      }
      await withOperator(program, async (operator, targets, config, client) => {
        const [line, rows, budget, drills] = await Promise.all([
          stackLine(config, targets),
          operator.list(),
          operator.budget(),
          // The drills are a footnote here: a failure to list them does not hide the remediations.
          runningDrills(client, targets.clusterId, TIMEOUT_MS).catch((err: unknown) =>
            err instanceof Error ? err.message : String(err),
          ),
        ]);
        if (opts.json) {
          const running = typeof drills === 'string' ? { error: drills } : drills;
          const view = { clusterId: targets.clusterId, budget, remediations: rows, drills: running };
          out(`${JSON.stringify(view, null, 2)}\n`);
          return;
        }
        out(line + budgetLine(budget));
        out(rows.length === 0 ? 'no open remediations\n' : remediationTable(rows));
        out(
          typeof drills === 'string'
            ? `running drills: not readable (${drills})\n`
            : `${runningDrillLines(drills, Date.now()).join('\n')}\n`,
        );
      });
    });

  program
    .command('show <node>')
    .description("a node's remediation in full (same as `fleetmedic status <node>`)")
    .option('--json', 'print JSON')
    .action(showNode);
}
