import { Client, Connection } from '@temporalio/client';
import { connectionOptions, temporalTls } from '../../client/temporal-connection.js';
import { InvalidArgumentError, Option, type Command } from 'commander';
import path from 'node:path';
import { readCatalog, restorableNewestFirst } from '../../checkpoint/catalog.js';
import { ErrorCode, FailureType } from '../../errors.js';
import { CheckpointError } from '../../checkpoint/errors.js';
import { openFileReader } from '../../checkpoint/pump.js';
import { restoreCheckpoint } from '../../checkpoint/restore.js';
import { scanCheckpoint } from '../../checkpoint/scan.js';
import {
  CHECKPOINT_WORKFLOW_TYPE,
  createCheckpointSchedule,
  DEFAULT_CHECKPOINT_INTERVAL,
  DEFAULT_CHECKPOINT_SCHEDULE_ID,
  deleteCheckpointSchedule,
  listCheckpointSchedules,
  parseInterval,
  pauseCheckpointSchedule,
  resumeCheckpointSchedule,
  triggerCheckpointSchedule,
} from '../../checkpoint/schedule.js';
import { FilesystemStorage } from '../../checkpoint/storage.js';
import {
  CHECKPOINT_FORMATS,
  checkpointBackupInputProblems,
  DEFAULT_KEEP,
  DEFAULT_SETTLE_MS,
  DEFAULT_STALE_AFTER_MS,
  type CheckpointBackupInput,
  type CheckpointBackupResult,
  type CheckpointFormat,
  type SlotIdentity,
} from '../../checkpoint/types.js';
import {
  parseVerifyCommand,
  runVerifyCommand,
  describeVerifyFailure,
} from '../../checkpoint/verify-command.js';
import { readStackState } from '../../stack/state.js';
import { configFrom } from '../context.js';

/** Where the commands write; tests pass their own. */
export interface CheckpointCliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const defaultIo: CheckpointCliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

function positiveInt(flag: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1) {
      throw new InvalidArgumentError(`${flag} must be an integer >= 1, got ${JSON.stringify(value)}`);
    }
    return Number(value);
  };
}

function nonNegativeInt(flag: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) {
      throw new InvalidArgumentError(`${flag} must be an integer >= 0, got ${JSON.stringify(value)}`);
    }
    return Number(value);
  };
}

function duration(flag: string) {
  return (value: string): number => {
    try {
      return parseInterval(value);
    } catch {
      throw new InvalidArgumentError(
        `${flag} must be a duration like 30s, 5m or 1h, got ${JSON.stringify(value)}`,
      );
    }
  };
}

function absolutePath(flag: string) {
  return (value: string): string => {
    if (!path.isAbsolute(value))
      throw new InvalidArgumentError(`${flag} must be an absolute path, got ${value}`);
    return path.resolve(value);
  };
}

/** `--format`, on every command that takes a checkpoint file. */
const formatOption = () =>
  new Option(
    '--format <format>',
    'what the checkpoint is (default torch; llama-slot with --slot-url)',
  ).choices(CHECKPOINT_FORMATS);

/** `--model-sha256` and `--ctx-size`: a slot's identity. */
function addSlotIdentityFlags(command: Command, what: string): Command {
  return command
    .option('--model-sha256 <hex>', `sha256 of the GGUF model ${what}`)
    .option('--ctx-size <n>', `context size (--ctx-size) ${what}`, positiveInt('--ctx-size'));
}

function slotIdentity(flags: { modelSha256?: string; ctxSize?: number }): SlotIdentity | undefined {
  if (flags.modelSha256 === undefined && flags.ctxSize === undefined) return undefined;
  if (flags.modelSha256 === undefined || flags.ctxSize === undefined) {
    throw new CheckpointError(FailureType.InvalidInput, 'give both --model-sha256 <hex> and --ctx-size <n>');
  }
  return { modelSha256: flags.modelSha256.toLowerCase(), ctxSize: flags.ctxSize };
}

interface InputFlags {
  sourceDir?: string;
  adminUrl?: string;
  slotUrl?: string;
  slot: number;
  slotDir?: string;
  modelSha256?: string;
  ctxSize?: number;
  format?: CheckpointFormat;
  suffix?: string;
  settle?: number;
  adminTimeout?: number;
  keep: number;
  verifier?: string;
  staleAfter: number;
  skipUnchanged: boolean;
  torchLayout: boolean;
}

/** Flags shared by `schedule create` and `run-once`: they build the workflow input. */
function addInputFlags(command: Command): Command {
  addSlotIdentityFlags(command, 'the server runs (with --slot-url; recorded in the manifest)');
  return command
    .addOption(formatOption())
    .option(
      '--slot-url <url>',
      'have llama-server save a slot (POST <url>/slots/<id>?action=save), e.g. http://127.0.0.1:8080',
    )
    .option('--slot <id>', 'the slot to save with --slot-url', nonNegativeInt('--slot'), 0)
    .option(
      '--slot-dir <dir>',
      "the server's --slot-save-path (under the worker's checkpoint root)",
      absolutePath('--slot-dir'),
    )
    .addOption(
      new Option('--source-dir <dir>', 'back up the newest checkpoint file in this directory')
        .argParser(absolutePath('--source-dir'))
        .conflicts('adminUrl'),
    )
    .option(
      '--admin-url <url>',
      'ask the model server to checkpoint (POST), e.g. http://127.0.0.1:8000/admin/checkpoint',
    )
    .option(
      '--suffix <suffix>',
      'checkpoint file suffix with --source-dir (default .pt, .gguf, .bin by format)',
    )
    .option(
      '--settle <duration>',
      `skip a file modified this recently (default ${DEFAULT_SETTLE_MS / 1000}s)`,
      duration('--settle'),
    )
    .option(
      '--admin-timeout <duration>',
      'how long the model server may take to checkpoint (default 10m)',
      duration('--admin-timeout'),
    )
    .option('--keep <n>', 'verified backups to keep', positiveInt('--keep'), DEFAULT_KEEP)
    .option(
      '--verifier <name>',
      'extra check run on each copy: a verifier configured on the worker (FLEETMEDIC_CHECKPOINT_VERIFIERS)',
    )
    .option(
      '--stale-after <duration>',
      'remove leftovers of killed copies older than this',
      duration('--stale-after'),
      DEFAULT_STALE_AFTER_MS,
    )
    .option('--no-skip-unchanged', 'copy even when the newest backup already holds this file')
    .option('--no-torch-layout', 'accept any zip of stored entries, not only PyTorch checkpoints');
}

function sourceFrom(flags: InputFlags): CheckpointBackupInput['source'] {
  if ([flags.sourceDir, flags.adminUrl, flags.slotUrl].filter((f) => f !== undefined).length !== 1) {
    throw new CheckpointError(
      FailureType.InvalidInput,
      'give exactly one of --source-dir <dir>, --admin-url <url> and --slot-url <url>',
    );
  }
  if (flags.slotUrl !== undefined) {
    const identity = slotIdentity(flags);
    if (!identity || flags.slotDir === undefined) {
      throw new CheckpointError(
        FailureType.InvalidInput,
        '--slot-url needs --slot-dir <dir>, --model-sha256 <hex> and --ctx-size <n>',
      );
    }
    return {
      kind: 'llama-slot',
      url: flags.slotUrl,
      slot: flags.slot,
      directory: flags.slotDir,
      ...identity,
      ...(flags.adminTimeout && { timeoutMs: flags.adminTimeout }),
    };
  }
  return flags.adminUrl
    ? {
        kind: 'admin-endpoint',
        url: flags.adminUrl,
        ...(flags.adminTimeout && { timeoutMs: flags.adminTimeout }),
      }
    : {
        kind: 'newest-file',
        directory: flags.sourceDir as string,
        ...(flags.suffix !== undefined && { suffix: flags.suffix }),
        ...(flags.settle !== undefined && { settleMs: flags.settle }),
      };
}

function inputFrom(flags: InputFlags): CheckpointBackupInput {
  const input: CheckpointBackupInput = {
    source: sourceFrom(flags),
    ...(flags.format !== undefined && { format: flags.format }),
    keep: flags.keep,
    staleAfterMs: flags.staleAfter,
    skipUnchanged: flags.skipUnchanged,
    requireTorchLayout: flags.torchLayout,
    ...(flags.verifier !== undefined && { verifier: flags.verifier }),
  };
  const problems = checkpointBackupInputProblems(input);
  if (problems.length > 0) throw new CheckpointError(FailureType.InvalidInput, problems.join('; '));
  return input;
}

/** Connects to Temporal: `--temporal-address`, else the embedded stack's, else 127.0.0.1:7233. */
async function withClient<T>(
  program: Command,
  fn: (client: Client, taskQueue: string) => Promise<T>,
): Promise<T> {
  const config = configFrom(program);
  const stack = config.temporalAddress
    ? undefined
    : await readStackState(config.stateDir).catch(() => undefined);
  const address = config.temporalAddress ?? stack?.temporal.address ?? '127.0.0.1:7233';
  const namespace = config.temporalAddress
    ? config.temporalNamespace
    : (stack?.temporal.namespace ?? config.temporalNamespace);
  const tls = temporalTls(config);
  const connection = await Connection.connect(
    connectionOptions({
      address,
      namespace,
      ...(tls !== undefined && { tls }),
      ...(config.temporalApiKey !== undefined && { apiKey: config.temporalApiKey }),
    }),
  );
  try {
    return await fn(new Client({ connection, namespace }), config.taskQueue);
  } finally {
    await connection.close();
  }
}

function printResult(io: CheckpointCliIo, result: CheckpointBackupResult): void {
  io.stdout(
    [
      `${result.outcome === 'backed-up' ? 'backed up' : 'unchanged'}: ${result.name}`,
      `  location  ${result.location ?? ''}`,
      `  size      ${result.size ?? ''} bytes`,
      `  sha256    ${result.sha256 ?? ''}`,
      `  source    ${result.sourcePath}`,
      `  kept      ${result.retention.kept.join(', ') || '(none)'}`,
      `  removed   ${result.retention.removed.join(', ') || '(none)'}`,
      '',
    ].join('\n'),
  );
}

/**
 * `fleetmedic checkpoint ...`: the checkpoint backup schedule (create, pause, resume, trigger, list,
 * delete), a single run, restore from the newest verified backup, and verification of a file.
 *
 * @param io where output goes; defaults to the process's stdout and stderr.
 */
export function registerCheckpointCommands(program: Command, io: CheckpointCliIo = defaultIo): void {
  const checkpoint = program
    .command('checkpoint')
    .description('verified checkpoint backups on a Temporal Schedule, and restore from them');

  const schedule = checkpoint
    .command('schedule')
    .description('the Temporal Schedule that runs checkpoint backups');
  const idOption = () =>
    new Option('--schedule-id <id>', 'schedule ID').default(DEFAULT_CHECKPOINT_SCHEDULE_ID);

  addInputFlags(
    schedule
      .command('create')
      .description(
        'create the schedule (overlap policy skip: a backup still running makes the next one skip)',
      )
      .addOption(idOption())
      .option('--every <duration>', 'interval between backups', DEFAULT_CHECKPOINT_INTERVAL)
      .option('--paused', 'create it paused')
      .option('--note <text>', 'note shown with the schedule'),
  ).action(
    async (flags: InputFlags & { scheduleId: string; every: string; paused?: boolean; note?: string }) => {
      const input = inputFrom(flags);
      parseInterval(flags.every);
      await withClient(program, async (client, taskQueue) => {
        const config = configFrom(program);
        await createCheckpointSchedule(client, {
          scheduleId: flags.scheduleId,
          every: flags.every,
          taskQueue,
          input,
          paused: flags.paused,
          note: flags.note,
          clusterId: config.clusterId,
        });
        io.stdout(
          `created schedule ${flags.scheduleId}: every ${flags.every}${flags.paused ? ' (paused)' : ''}\n`,
        );
      });
    },
  );

  for (const [name, description, run] of [
    ['pause', 'pause the schedule (a run in progress finishes)', pauseCheckpointSchedule],
    ['resume', 'resume a paused schedule', resumeCheckpointSchedule],
  ] as const) {
    schedule
      .command(name)
      .description(description)
      .addOption(idOption())
      .option('--note <text>', 'why')
      .action(async (flags: { scheduleId: string; note?: string }) => {
        await withClient(program, (client) => run(client, flags.scheduleId, flags.note));
        io.stdout(`${name === 'pause' ? 'paused' : 'resumed'} schedule ${flags.scheduleId}\n`);
      });
  }

  schedule
    .command('trigger')
    .description('run a backup now through the schedule (skipped if one is running)')
    .addOption(idOption())
    .action(async (flags: { scheduleId: string }) => {
      await withClient(program, (client) => triggerCheckpointSchedule(client, flags.scheduleId));
      io.stdout(`triggered schedule ${flags.scheduleId} (skipped if a backup is already running)\n`);
    });

  schedule
    .command('delete')
    .description('delete the schedule (backups and running workflows stay)')
    .addOption(idOption())
    .action(async (flags: { scheduleId: string }) => {
      await withClient(program, (client) => deleteCheckpointSchedule(client, flags.scheduleId));
      io.stdout(`deleted schedule ${flags.scheduleId}\n`);
    });

  schedule
    .command('list')
    .description('list checkpoint schedules with their recent and next runs')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const schedules = await withClient(program, (client) => listCheckpointSchedules(client));
      if (flags.json) {
        io.stdout(`${JSON.stringify(schedules, null, 2)}\n`);
        return;
      }
      if (schedules.length === 0) io.stdout('no checkpoint schedules\n');
      for (const s of schedules) {
        io.stdout(
          [
            `${s.scheduleId}  every ${s.every ?? '?'}  ${s.paused ? 'PAUSED' : 'active'}${s.note ? `  (${s.note})` : ''}`,
            `  running          ${s.running.join(', ') || '-'}`,
            `  next             ${s.nextRuns[0] ?? '-'}`,
            `  recent           ${s.recentRuns.map((r) => r.scheduledAt).join(', ') || '-'}`,
            `  skipped overlap  ${s.skippedOverlap}`,
            '',
          ].join('\n'),
        );
      }
    });

  addInputFlags(
    checkpoint
      .command('run-once')
      .description('run one backup now as a workflow (needs a running control worker) and wait for it'),
  ).action(async (flags: InputFlags) => {
    const input = inputFrom(flags);
    await withClient(program, async (client, taskQueue) => {
      const workflowId = `fleetmedic-checkpoint-manual-${new Date().toISOString().replace(/[:.]/g, '')}`;
      io.stderr(`started ${workflowId} on task queue ${taskQueue}\n`);
      const result = await client.workflow.execute<
        (i: CheckpointBackupInput) => Promise<CheckpointBackupResult>
      >(CHECKPOINT_WORKFLOW_TYPE, { taskQueue, workflowId, args: [input] });
      printResult(io, result);
    });
  });

  checkpoint
    .command('restore')
    .description(
      'restore the newest verified backup (re-verified; falls back to the previous one if it fails)',
    )
    .requiredOption(
      '--backup-dir <dir>',
      'backup location (the control worker writes there)',
      absolutePath('--backup-dir'),
    )
    .option(
      '--to <file>',
      'write the checkpoint here atomically (default: use it in place, print its path)',
      absolutePath('--to'),
    )
    .option(
      '--verify-command <command>',
      'extra check run on the restored file; {path} is replaced by its path',
    )
    .option('--verify-timeout <duration>', 'time limit of the verify command', duration('--verify-timeout'))
    .option('--no-torch-layout', 'accept any zip of stored entries, not only PyTorch checkpoints')
    .addOption(formatOption())
    .option('--model-sha256 <hex>', 'llama-slot: sha256 of the model this replica serves')
    .option('--ctx-size <n>', 'llama-slot: context size this replica runs', positiveInt('--ctx-size'))
    .option('--json', 'print JSON')
    .action(
      async (flags: {
        format?: CheckpointFormat;
        modelSha256?: string;
        ctxSize?: number;
        backupDir: string;
        to?: string;
        verifyCommand?: string;
        verifyTimeout?: number;
        torchLayout: boolean;
        json?: boolean;
      }) => {
        const expect = slotIdentity(flags);
        const result = await restoreCheckpoint(new FilesystemStorage(flags.backupDir), {
          ...(flags.format !== undefined && { format: flags.format }),
          ...(expect && { expect }),
          destination: flags.to,
          verifyCommand: flags.verifyCommand ? parseVerifyCommand(flags.verifyCommand) : undefined,
          verifyCommandTimeoutMs: flags.verifyTimeout,
          requireTorchLayout: flags.torchLayout,
          log: (line) => io.stderr(`[restore] ${line}\n`),
        });
        if (flags.json) {
          io.stdout(`${JSON.stringify(result, null, 2)}\n`);
          return;
        }
        io.stdout(
          [
            `restored ${result.name} in ${result.durationMs.toFixed(0)} ms (listing ${result.catalogMs.toFixed(0)} ms)`,
            `  path      ${result.path}`,
            `  size      ${result.manifest.size} bytes`,
            `  sha256    ${result.manifest.sha256}`,
            `  taken     ${result.manifest.createdAt} from ${result.manifest.source.path}`,
            ...result.attempts.map(
              (a) =>
                `  ${a.ok ? 'restored' : 'skipped '}  ${a.name}${a.ok ? '' : `: ${a.reason}`} (${a.steps.map((s) => `${s.step} ${s.ms.toFixed(1)} ms`).join(', ')})`,
            ),
            '',
          ].join('\n'),
        );
      },
    );

  checkpoint
    .command('list')
    .description('list the backups in a backup location, newest verified first')
    .requiredOption('--backup-dir <dir>', 'backup location', absolutePath('--backup-dir'))
    .option('--json', 'print JSON')
    .action(async (flags: { backupDir: string; json?: boolean }) => {
      const catalog = await readCatalog(new FilesystemStorage(flags.backupDir));
      const restorable = restorableNewestFirst(catalog.records);
      if (flags.json) {
        io.stdout(
          `${JSON.stringify({ restorable: restorable.map((r) => r.manifest), ...catalog }, null, 2)}\n`,
        );
        return;
      }
      for (const r of restorable) {
        io.stdout(
          `${r.name}  ${r.manifest?.format ?? 'torch'}  ${r.manifest?.size} bytes  sha256 ${r.manifest?.sha256.slice(0, 16)}  ${r.manifest?.createdAt}\n`,
        );
      }
      const others = catalog.records.filter((r) => !restorable.includes(r));
      for (const r of others) {
        const why =
          r.manifestError ?? (r.manifest ? (r.manifest.failure?.message ?? 'data missing') : 'no manifest');
        io.stdout(`${r.name}  NOT RESTORABLE: ${why}\n`);
      }
      if (catalog.records.length === 0) io.stdout(`no backups in ${flags.backupDir}\n`);
    });

  checkpoint
    .command('verify <file>')
    .description(
      'verify a checkpoint file: zip structure, CRC-32s and PyTorch layout (torch), GGUF header (gguf) or slot layout (llama-slot); optional sha256/size',
    )
    .option('--sha256 <hex>', 'expected sha256')
    .option('--size <bytes>', 'expected size in bytes', positiveInt('--size'))
    .option('--verify-command <command>', 'extra check; {path} is replaced by the file path')
    .option('--verify-timeout <duration>', 'time limit of the verify command', duration('--verify-timeout'))
    .option('--no-torch-layout', 'accept any zip of stored entries, not only PyTorch checkpoints')
    .addOption(formatOption())
    .option('--json', 'print JSON')
    .action(
      async (
        file: string,
        flags: {
          format?: CheckpointFormat;
          sha256?: string;
          size?: number;
          verifyCommand?: string;
          verifyTimeout?: number;
          torchLayout: boolean;
          json?: boolean;
        },
      ) => {
        const target = path.resolve(file);
        const reader = await openFileReader(target).catch((err: unknown) => {
          throw new CheckpointError(ErrorCode.CheckpointSource, `cannot open ${target}: ${String(err)}`, {
            cause: err,
          });
        });
        const report = await scanCheckpoint(reader, {
          ...(flags.format !== undefined && { format: flags.format }),
          expectedSha256: flags.sha256,
          expectedSize: flags.size,
          torchLayout: flags.torchLayout,
        }).finally(() => reader.close());
        if (flags.verifyCommand) {
          const result = await runVerifyCommand(parseVerifyCommand(flags.verifyCommand), target, {
            timeoutMs: flags.verifyTimeout,
          });
          if (!result.ok)
            throw new CheckpointError(ErrorCode.VerifyCommand, `${target}: ${describeVerifyFailure(result)}`);
        }
        if (flags.json) {
          io.stdout(`${JSON.stringify({ file: target, ok: true, ...report }, null, 2)}\n`);
          return;
        }
        io.stdout(
          [
            `ok: ${target}`,
            `  size      ${report.size} bytes`,
            `  sha256    ${report.sha256}`,
            `  format    ${report.format}`,
            ...(report.zip
              ? [
                  `  entries   ${report.zip.entries}${report.layout ? ` under ${report.layout.prefix}/` : ''}${report.zip.zip64 ? ' (zip64)' : ''}`,
                ]
              : []),
            ...(report.gguf
              ? [
                  `  gguf      v${report.gguf.version}, ${report.gguf.architecture}, ${report.gguf.tensors} tensors, ${report.gguf.metadataKeys} metadata keys`,
                ]
              : []),
            ...(report.slot
              ? [
                  `  slot      v${report.slot.version}, ${report.slot.tokens} tokens, ${report.slot.cells} cells, ${report.slot.layers} layers`,
                ]
              : []),
            `  read in   ${report.durationMs.toFixed(0)} ms`,
            '',
          ].join('\n'),
        );
      },
    );
}
