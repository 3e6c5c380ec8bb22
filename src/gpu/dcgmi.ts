/**
 * Parsers for `dcgmi` output: `dcgmi health -c -j` and `dcgmi diag -r N -j` (DCGM 3.x and 4.x JSON).
 *
 * Pure functions of the tool's stdout and exit code, so that the same code reads a real GPU node and the
 * simulated tools (see `render.ts`). Facts they rely on, checked against DCGM's sources:
 * - `dcgmi health -c -j` exits 0 even when "Overall Health" is "Failure": the verdict is in the JSON.
 *   It exits 253 (DCGM_ST_GENERIC_ERROR) and prints "Health watches not enabled" when no watches are set.
 * - `dcgmi` exits with the DCGM status modulo 256: 226 = the diagnostic ran and found an error
 *   (DCGM_ST_NVVS_ERROR), 205 = it asks to isolate the GPU, 235 = the host engine is unreachable.
 * - A banner line may precede the JSON, so parsing starts at the first `{`.
 * - Health messages longer than 54 characters are wrapped into several `overflow` strings at word
 *   boundaries, and several incidents of one system are joined with ", ": the parser rejoins the pieces
 *   and scans the text for every known DCGM message.
 */
import { ErrorCode, FleetmedicError } from '../errors.js';
import { dcgmErrorName } from '../domain/xid-classification.js';
import type {
  DcgmErrorName,
  DcgmHealthStatus,
  DiagErrorEvidence,
  DiagEvidence,
  HealthErrorEvidence,
  HealthIncidentEvidence,
} from '../domain/xid-classification.js';

/** Exit codes of `dcgmi` that callers act on (DCGM status modulo 256). */
export const DCGMI_EXIT = {
  OK: 0,
  /** DCGM_ST_NVVS_ISOLATE_ERROR: the diagnostic found an error that calls for isolating the GPU. */
  DIAG_ISOLATE: 205,
  /** DCGM_ST_DIAG_ALREADY_RUNNING. */
  DIAG_ALREADY_RUNNING: 217,
  /** DCGM_ST_IN_USE. */
  IN_USE: 222,
  /** DCGM_ST_NVVS_ERROR: the diagnostic ran and found an error. */
  DIAG_FAILED: 226,
  /** DCGM_ST_CONNECTION_NOT_VALID: nv-hostengine is not reachable. */
  HOST_ENGINE_UNREACHABLE: 235,
  /** DCGM_ST_GENERIC_ERROR: for `dcgmi health -c`, no health watches are set. */
  GENERIC_ERROR: 253,
} as const;

/** Every health verdict `dcgmi` prints. */
export const DCGM_HEALTH_STATUSES: readonly DcgmHealthStatus[] = [
  'Healthy',
  'Warning',
  'Failure',
  'Internal error',
];

/** One system's incidents for one entity (for example GPU 0's "Memory system"). */
export interface DcgmiHealthIncident extends HealthIncidentEvidence {
  /** DCGM's entity group name, e.g. `GPU`. */
  readonly entityGroup: string;
  /** The entity id within the group, e.g. `0`. */
  readonly entityId: string;
  /** The raw `overflow` strings, as printed. */
  readonly lines: readonly string[];
}

/** The verdict for one entity. */
export interface DcgmiHealthEntity {
  readonly entityGroup: string;
  readonly entityId: string;
  readonly health: DcgmHealthStatus;
}

/**
 * The result of `dcgmi health -c -j`.
 * - `report`: the JSON report; a `Healthy` overall verdict is only meaningful once the watches have
 *   sampled (see the module documentation).
 * - `no-watches`: exit 253, no watches set. Run `dcgmi health -s a`, wait at least one update interval,
 *   and check again; until then nothing is known.
 */
export type DcgmiHealthResult =
  | { readonly kind: 'no-watches'; readonly message: string }
  | {
      readonly kind: 'report';
      readonly overall: DcgmHealthStatus;
      readonly entities: readonly DcgmiHealthEntity[];
      readonly incidents: readonly DcgmiHealthIncident[];
    };

/** What a health message template needs: the GPU and, for some codes, one number (a count, an XID). */
interface HealthMessage {
  readonly code: DcgmErrorName;
  readonly pattern: RegExp;
  /** Capture group holding the GPU id, when the message names one. */
  readonly gpuGroup?: number;
  /** Capture group holding the XID (for `DCGM_FR_XID_ERROR`). */
  readonly xidGroup?: number;
  readonly format: (gpu: number, value: number) => string;
}

/**
 * DCGM health messages (`*_MSG` in `dcgm_errors.h`, DCGM 3.x and 4.x wording), most specific first:
 * the scanner consumes each match so that the generic field-violation message at the end does not
 * match text already explained.
 */
const HEALTH_MESSAGES: readonly HealthMessage[] = [
  {
    code: 'DCGM_FR_XID_ERROR',
    pattern: /Detected XID (\d+) for GPU (\d+)/,
    xidGroup: 1,
    gpuGroup: 2,
    format: (gpu, xid) => `Detected XID ${xid} for GPU ${gpu}`,
  },
  {
    code: 'DCGM_FR_VOLATILE_DBE_DETECTED',
    pattern: /Detected (\d+) volatile double-bit ECC error\(s\) in GPU (\d+)/,
    gpuGroup: 2,
    format: (gpu, n) => `Detected ${n} volatile double-bit ECC error(s) in GPU ${gpu}.`,
  },
  {
    code: 'DCGM_FR_VOLATILE_SBE_DETECTED',
    pattern: /More than (\d+) single-bit ECC error\(s\) detected in GPU (\d+)/,
    gpuGroup: 2,
    format: (gpu, n) =>
      `More than ${n} single-bit ECC error(s) detected in GPU ${gpu} Volatile SBEs: ${n + 1}`,
  },
  {
    code: 'DCGM_FR_PENDING_PAGE_RETIREMENTS',
    pattern: /A pending retired page has been detected in GPU (\d+)/,
    gpuGroup: 1,
    format: (gpu) => `A pending retired page has been detected in GPU ${gpu}.`,
  },
  {
    code: 'DCGM_FR_RETIRED_PAGES_LIMIT',
    pattern: /(\d+) or more retired pages have been detected in GPU (\d+)/,
    gpuGroup: 2,
    format: (gpu, n) => `${n} or more retired pages have been detected in GPU ${gpu}.`,
  },
  {
    code: 'DCGM_FR_RETIRED_PAGES_DBE_LIMIT',
    pattern: /An excess of (\d+) retired pages due to DBEs have been detected and.*? in GPU (\d+)/,
    gpuGroup: 2,
    format: (gpu, n) =>
      `An excess of ${n} retired pages due to DBEs have been detected and more than one page has been retired due to DBEs in the past week in GPU ${gpu}.`,
  },
  {
    code: 'DCGM_FR_CORRUPT_INFOROM',
    pattern: /A corrupt InfoROM has been detected in GPU (\d+)/,
    gpuGroup: 1,
    format: (gpu) => `A corrupt InfoROM has been detected in GPU ${gpu}.`,
  },
  {
    code: 'DCGM_FR_CLOCKS_EVENT_THERMAL',
    pattern: /Detected clock(?:s event| throttling) due to thermal violation in GPU (\d+)/,
    gpuGroup: 1,
    format: (gpu) => `Detected clocks event due to thermal violation in GPU ${gpu}.`,
  },
  {
    code: 'DCGM_FR_CLOCKS_EVENT_POWER',
    pattern: /Detected clock(?:s event| throttling) due to power violation in GPU (\d+)/,
    gpuGroup: 1,
    format: (gpu) => `Detected clocks event due to power violation in GPU ${gpu}.`,
  },
  {
    code: 'DCGM_FR_POWER_UNREADABLE',
    pattern: /Cannot reliably read the power usage for GPU (\d+)/,
    gpuGroup: 1,
    format: (gpu) => `Cannot reliably read the power usage for GPU ${gpu}.`,
  },
  {
    code: 'DCGM_FR_NVLINK_ERROR_THRESHOLD',
    pattern: /Detected (\d+) (.+?) NvLink errors on GPU (\d+)'s NVLink which exceeds threshold of (\d+)/,
    gpuGroup: 3,
    format: (gpu, n) =>
      `Detected ${n} CRC FLIT NvLink errors on GPU ${gpu}'s NVLink which exceeds threshold of 100`,
  },
  {
    code: 'DCGM_FR_NVLINK_ERROR_CRITICAL',
    pattern: /Detected (\d+) (.+?) NvLink errors on GPU (\d+)'s NVLink \(should be 0\)/,
    gpuGroup: 3,
    format: (gpu, n) => `Detected ${n} Replay NvLink errors on GPU ${gpu}'s NVLink (should be 0)`,
  },
  {
    code: 'DCGM_FR_NVLINK_DOWN',
    pattern: /GPU (\d+)'s NvLink link (\d+) is currently down/,
    gpuGroup: 1,
    format: (gpu, link) => `GPU ${gpu}'s NvLink link ${link} is currently down`,
  },
  {
    code: 'DCGM_FR_NVLINK_CRC_ERROR_THRESHOLD',
    pattern: /([\d.]+) (.+?) NvLink errors found occuring per second on GPU (\d+)/,
    gpuGroup: 3,
    format: (gpu, n) =>
      `${n.toFixed(1)} CRC FLIT NvLink errors found occuring per second on GPU ${gpu}, exceeding the limit of 100 per second.`,
  },
  {
    code: 'DCGM_FR_NVSWITCH_FATAL_ERROR',
    pattern: /Detected fatal errors on NvSwitch (\d+) link (\d+)/,
    format: (sw, link) => `Detected fatal errors on NvSwitch ${sw} link ${link}`,
  },
  {
    code: 'DCGM_FR_NVSWITCH_NON_FATAL_ERROR',
    pattern: /Detected nonfatal errors on NvSwitch (\d+) link (\d+)/,
    format: (sw, link) => `Detected nonfatal errors on NvSwitch ${sw} link ${link}`,
  },
  {
    code: 'DCGM_FR_PCI_REPLAY_RATE',
    pattern: /Detected more than (\d+) PCIe replays per minute for GPU (\d+)/,
    gpuGroup: 2,
    format: (gpu, n) => `Detected more than ${n} PCIe replays per minute for GPU ${gpu} : ${n + 1}`,
  },
  {
    code: 'DCGM_FR_ROW_REMAP_FAILURE',
    pattern: /GPU (\d+) had uncorrectable memory errors and row remapping failed/,
    gpuGroup: 1,
    format: (gpu) => `GPU ${gpu} had uncorrectable memory errors and row remapping failed.`,
  },
  {
    code: 'DCGM_FR_PENDING_ROW_REMAP',
    pattern: /GPU (\d+) had memory errors and row remappings are pending/,
    gpuGroup: 1,
    format: (gpu) => `GPU ${gpu} had memory errors and row remappings are pending`,
  },
  {
    code: 'DCGM_FR_UNCORRECTABLE_ROW_REMAP',
    pattern: /GPU (\d+) had uncorrectable memory errors and (\d+) rows were remapped/,
    gpuGroup: 1,
    format: (gpu, n) => `GPU ${gpu} had uncorrectable memory errors and ${n} rows were remapped`,
  },
  {
    code: 'DCGM_FR_UNCORRECTABLE_ROW_REMAP_LIMIT',
    pattern: /GPU (\d+) exceeded uncorrectable row remap limit/,
    gpuGroup: 1,
    format: (gpu, n) => `GPU ${gpu} exceeded uncorrectable row remap limit with ${n} remapped rows`,
  },
  {
    code: 'DCGM_FR_FAULTY_MEMORY',
    pattern: /Found (\d+) faulty memory elements on GPU (\d+)/,
    gpuGroup: 2,
    format: (gpu, n) => `Found ${n} faulty memory elements on GPU ${gpu}`,
  },
  {
    code: 'DCGM_FR_UNCONTAINED_ERROR',
    pattern: /GPU had an uncontained error \(XID 95\)/,
    format: () => 'GPU had an uncontained error (XID 95)',
  },
  {
    code: 'DCGM_FR_CONTAINED_ERROR',
    pattern: /GPU had a contained error/,
    format: () => 'GPU had a contained error.',
  },
  {
    code: 'DCGM_FR_FALLEN_OFF_BUS',
    pattern: /GPU (\d+) has fallen off the bus/,
    gpuGroup: 1,
    format: (gpu) => `GPU ${gpu} has fallen off the bus`,
  },
  {
    code: 'DCGM_FR_GPU_RECOVERY_RESET',
    pattern: /GPU (\d+) requires a reset to recover from a fault/,
    gpuGroup: 1,
    format: (gpu) => `GPU ${gpu} requires a reset to recover from a fault. Recovery action: 1 (GPU_RESET).`,
  },
  {
    code: 'DCGM_FR_GPU_RECOVERY_REBOOT',
    pattern: /GPU (\d+) fault may have left the OS in an inconsistent state/,
    gpuGroup: 1,
    format: (gpu) =>
      `GPU ${gpu} fault may have left the OS in an inconsistent state. Recovery action: 2 (NODE_REBOOT).`,
  },
  {
    code: 'DCGM_FR_GPU_RECOVERY_DRAIN_P2P',
    pattern: /GPU (\d+) requires peer-to-peer traffic to be quiesced/,
    gpuGroup: 1,
    format: (gpu) =>
      `GPU ${gpu} requires peer-to-peer traffic to be quiesced. Recovery action: 3 (DRAIN_P2P).`,
  },
  {
    code: 'DCGM_FR_GPU_RECOVERY_DRAIN_RESET',
    pattern: /GPU (\d+) operating at reduced capacity due to a fault/,
    gpuGroup: 1,
    format: (gpu) =>
      `GPU ${gpu} operating at reduced capacity due to a fault. Recovery action: 4 (DRAIN_AND_RESET).`,
  },
  {
    code: 'DCGM_FR_NVLINK_SYMBOL_BER_THRESHOLD',
    pattern: /Detected symbol BER (\S+) exceeds minimum threshold on GPU (\d+)'s NVLink/,
    gpuGroup: 2,
    format: (gpu) => `Detected symbol BER 1.00e-09 exceeds minimum threshold on GPU ${gpu}'s NVLink.`,
  },
  {
    code: 'DCGM_FR_NVLINK_EFFECTIVE_BER_THRESHOLD',
    pattern: /Detected effective BER (\S+) exceeds minimum threshold on GPU (\d+)'s NVLink/,
    gpuGroup: 2,
    format: (gpu) => `Detected effective BER 1.00e-09 exceeds minimum threshold on GPU ${gpu}'s NVLink.`,
  },
  {
    code: 'DCGM_FR_FABRIC_PROBE_STATE',
    pattern: /GPU (\d+): Fabric State is/,
    gpuGroup: 1,
    format: (gpu) => `GPU ${gpu}: Fabric State is Not Started (1).`,
  },
  {
    code: 'DCGM_FR_IMEX_UNHEALTHY',
    pattern: /IMEX (\S+) status is/,
    format: () => 'IMEX domain status is DOWN (not reachable)',
  },
  {
    code: 'DCGM_FR_FIELD_THRESHOLD_DBL',
    pattern: /Detected (-?[\d.]+) (.+?) for (\S+):(\d+) which is above the threshold/,
    gpuGroup: 4,
    format: (gpu, n) => `Detected ${n.toFixed(1)} power draw for GPU:${gpu} which is above the threshold 1.0`,
  },
  {
    code: 'DCGM_FR_FIELD_VIOLATION',
    pattern: /Detected (-?\d+) (.+?) for GPU (\d+)/,
    gpuGroup: 3,
    format: (gpu, n) => `Detected ${n} PCIe replay errors for GPU ${gpu}`,
  },
];

/**
 * Finds every DCGM message in a health incident's text.
 *
 * @param text - the incident's text (the `overflow` strings joined with spaces)
 * @returns one entry per recognised message, in order of appearance; empty when nothing matched
 */
export function recogniseHealthErrors(text: string): HealthErrorEvidence[] {
  let rest = text.replace(/\s+/g, ' ');
  const found: { at: number; error: HealthErrorEvidence }[] = [];
  for (const message of HEALTH_MESSAGES) {
    const global = new RegExp(message.pattern.source, 'g');
    rest = rest.replace(global, (match: string, ...args: unknown[]) => {
      const groups = args.slice(0, -2) as (string | undefined)[];
      const at = args[args.length - 2] as number;
      const gpuText = message.gpuGroup === undefined ? undefined : groups[message.gpuGroup - 1];
      const xidText = message.xidGroup === undefined ? undefined : groups[message.xidGroup - 1];
      const error: HealthErrorEvidence = {
        code: message.code,
        gpu: gpuText === undefined ? null : Number(gpuText),
        ...(xidText === undefined ? {} : { xid: Number(xidText) }),
      };
      found.push({ at, error });
      // Blank the match out (same length) so later, more generic patterns cannot claim it.
      return ' '.repeat(match.length);
    });
  }
  return found.sort((a, b) => a.at - b.at).map((f) => f.error);
}

/**
 * The health message DCGM prints for `code` on `gpu`, for the simulated `dcgmi` (see `render.ts`).
 *
 * @param value - the number some messages carry (a count, an XID, a link); defaults to 1
 * @returns `undefined` for codes fleetmedic has no message template for
 */
export function formatHealthMessage(code: DcgmErrorName, gpu: number, value = 1): string | undefined {
  return HEALTH_MESSAGES.find((m) => m.code === code)?.format(gpu, value);
}

/**
 * Parses the output of `dcgmi health -c -j`.
 *
 * @param stdout - the tool's standard output (a banner before the JSON is skipped)
 * @param exitCode - the tool's exit code
 * @returns the report, or `{ kind: 'no-watches' }` for exit 253 "Health watches not enabled"
 * @throws FleetmedicError `PARSE_ERROR` (permanent) for output that is not a health report;
 *   `DCGM_UNREACHABLE` (transient) for exit 235; `DCGMI_FAILED` (transient) for other failures
 */
export function parseDcgmiHealth(stdout: string, exitCode: number): DcgmiHealthResult {
  if (exitCode === DCGMI_EXIT.HOST_ENGINE_UNREACHABLE) throw hostEngineUnreachable('health', stdout);
  if (exitCode === DCGMI_EXIT.GENERIC_ERROR) {
    if (/unable to check health watches/i.test(stdout) && !/not enabled/i.test(stdout)) {
      throw toolFailed('health', exitCode, stdout);
    }
    return {
      kind: 'no-watches',
      message:
        'dcgmi health: no health watches are set; run `dcgmi health -s a` and wait at least one update ' +
        'interval before a Healthy result means anything',
    };
  }
  if (exitCode !== DCGMI_EXIT.OK) throw toolFailed('health', exitCode, stdout);

  const root = parseJsonObject('health', stdout);
  const body = objectAt(root, 'body');
  if (body === undefined) throw parseError('health', 'the JSON has no "body" object');
  const overallNode = objectAt(body, 'Overall Health');
  const overall = healthStatus(overallNode?.['value']);
  if (overall === undefined) {
    throw parseError('health', 'the JSON has no valid "body"."Overall Health"."value"');
  }

  const entities: DcgmiHealthEntity[] = [];
  const incidents: DcgmiHealthIncident[] = [];
  for (const [entityGroup, groupNode] of Object.entries(body)) {
    if (entityGroup === 'Overall Health') continue;
    const members = objectAt(asObject(groupNode), 'children');
    if (members === undefined) throw parseError('health', `entity group "${entityGroup}" has no "children"`);
    for (const [entityId, entityNode] of Object.entries(members)) {
      const entity = asObject(entityNode);
      const health = healthStatus(entity?.['value']);
      if (entity === undefined || health === undefined) {
        throw parseError('health', `${entityGroup} ${entityId} has no valid "value"`);
      }
      entities.push({ entityGroup, entityId, health });
      const systems = objectAt(objectAt(objectAt(entity, 'children'), 'Errors'), 'children') ?? {};
      for (const [system, systemNode] of Object.entries(systems)) {
        incidents.push(parseIncident(entityGroup, entityId, system, systemNode));
      }
    }
  }
  return { kind: 'report', overall, entities, incidents };
}

function parseIncident(
  entityGroup: string,
  entityId: string,
  system: string,
  node: unknown,
): DcgmiHealthIncident {
  const obj = asObject(node);
  const health = healthStatus(obj?.['value']);
  if (obj === undefined || health === undefined) {
    throw parseError('health', `${entityGroup} ${entityId} "${system}" has no valid "value"`);
  }
  const overflow: unknown = obj['overflow'] ?? [];
  if (!Array.isArray(overflow) || !overflow.every((line): line is string => typeof line === 'string')) {
    throw parseError(
      'health',
      `${entityGroup} ${entityId} "${system}" has an "overflow" that is not a string list`,
    );
  }
  const lines: readonly string[] = overflow;
  const message = lines.join(' ').replace(/\s+/g, ' ').trim();
  return {
    entityGroup,
    entityId,
    entity: `${entityGroup} ${entityId}`,
    system,
    health,
    lines,
    message,
    // Some messages name no GPU ("GPU had an uncontained error"); the entity they are filed under does.
    errors: recogniseHealthErrors(message).map((e) =>
      e.gpu === null && entityGroup === 'GPU' && /^\d+$/.test(entityId) ? { ...e, gpu: Number(entityId) } : e,
    ),
  };
}

// ---------------------------------------------------------------------------------------------------
// dcgmi diag

/** A result status as `dcgmi diag` prints it. */
export type DiagStatus = 'Pass' | 'Fail' | 'Warn' | 'Skip' | 'Not Run';

/** One entity's (or, in DCGM 3.x deployment tests, the whole node's) result of one test. */
export interface DcgmiDiagResultEntry {
  /** GPUs the result is for; empty when it is not for particular GPUs. */
  readonly gpuIds: readonly number[];
  /** DCGM 4.x entity, e.g. `{ group: 'GPU', id: 0 }`; `null` in DCGM 3.x output. */
  readonly entity: { readonly group: string; readonly id: number } | null;
  readonly status: DiagStatus;
  readonly warnings: readonly { readonly message: string; readonly code: number | null }[];
  readonly info: readonly string[];
}

/** One test (plugin) of a diagnostic run. */
export interface DcgmiDiagTest {
  readonly category: string;
  readonly name: string;
  /** The test's own verdict: DCGM 4.x `test_summary.status`, or the worst result status in 3.x. */
  readonly status: DiagStatus;
  readonly results: readonly DcgmiDiagResultEntry[];
  /** Node-wide information lines (DCGM 4.x `test_summary.info`). */
  readonly info: readonly string[];
}

/** The normalised result of `dcgmi diag -r N -j`, whichever DCGM major printed it. */
export interface DcgmiDiagResult extends DiagEvidence {
  /** `3` for the `"DCGM GPU Diagnostic"` shape, `4` for `"DCGM Diagnostic"`. */
  readonly shape: '3' | '4';
  readonly exitCode: number;
  readonly dcgmVersion: string | null;
  readonly driverVersion: string | null;
  readonly tests: readonly DcgmiDiagTest[];
  readonly errors: readonly DiagErrorEvidence[];
}

const DIAG_STATUSES: readonly DiagStatus[] = ['Pass', 'Fail', 'Warn', 'Skip', 'Not Run'];

/**
 * Parses the output of `dcgmi diag -r N -j`, DCGM 3.x (`"DCGM GPU Diagnostic"`) or 4.x
 * (`"DCGM Diagnostic"`, with entities and test summaries).
 *
 * The run passed when at least one test ran (Pass, Warn or Fail: a run where every test was
 * skipped checked nothing), no test, result or summary says `Fail` and the exit code is not one of
 * the "diagnostic found an error" codes (226, 205). A `runtime_error` (the diagnostic did not run),
 * or no test that ran, is returned as `runtimeError` with `passed: false`.
 *
 * @param stdout - the tool's standard output (a banner before the JSON is skipped)
 * @param exitCode - the tool's exit code
 * @throws FleetmedicError `PARSE_ERROR` (permanent) for output that is not a diag report;
 *   `DCGM_UNREACHABLE` (transient) for exit 235; `DCGMI_FAILED` (transient) for a failure without JSON
 */
export function parseDcgmiDiag(stdout: string, exitCode: number): DcgmiDiagResult {
  if (exitCode === DCGMI_EXIT.HOST_ENGINE_UNREACHABLE) throw hostEngineUnreachable('diag', stdout);
  if (exitCode !== DCGMI_EXIT.OK && !stdout.includes('{')) throw toolFailed('diag', exitCode, stdout);
  const root = parseJsonObject('diag', stdout);
  const v4 = objectAt(root, 'DCGM Diagnostic');
  const v3 = objectAt(root, 'DCGM GPU Diagnostic');
  const diag = v4 ?? v3;
  if (diag === undefined) {
    throw parseError(
      'diag',
      'the JSON has neither a "DCGM Diagnostic" (4.x) nor a "DCGM GPU Diagnostic" (3.x) object',
    );
  }
  const shape = v4 !== undefined ? '4' : '3';
  const metadata = objectAt(root, 'metadata');
  const dcgmVersion =
    stringAt(metadata, 'version') ?? stringAt(diag, 'version') ?? stringAt(root, 'version') ?? null;
  const driverVersion =
    stringAt(metadata, 'Driver Version Detected') ?? stringAt(root, 'Driver Version Detected') ?? null;
  const runtimeError = stringAt(diag, 'runtime_error') ?? null;
  const categories = diag['test_categories'];
  if (runtimeError === null && !Array.isArray(categories)) {
    throw parseError(
      'diag',
      `"${shape === '4' ? 'DCGM Diagnostic' : 'DCGM GPU Diagnostic'}" has no "test_categories"`,
    );
  }

  const tests: DcgmiDiagTest[] = [];
  const errors: DiagErrorEvidence[] = [];
  for (const [ci, categoryNode] of (Array.isArray(categories) ? categories : []).entries()) {
    const category = asObject(categoryNode);
    const categoryName = stringAt(category, 'category');
    const testNodes = category?.['tests'];
    if (category === undefined || categoryName === undefined || !Array.isArray(testNodes)) {
      throw parseError('diag', `test category ${ci} has no "category" name or no "tests" list`);
    }
    for (const testNode of testNodes) {
      const test = parseDiagTest(categoryName, testNode);
      tests.push(test);
      for (const result of test.results) {
        for (const warning of result.warnings) {
          errors.push({
            test: test.name,
            code: warning.code,
            name: warning.code === null ? null : (dcgmErrorName(warning.code) ?? null),
            message: warning.message,
            gpu: result.gpuIds[0] ?? null,
            status: result.status,
          });
        }
      }
    }
  }

  const anyFail = tests.some((t) => t.status === 'Fail' || t.results.some((r) => r.status === 'Fail'));
  const exitSaysFail = exitCode === DCGMI_EXIT.DIAG_FAILED || exitCode === DCGMI_EXIT.DIAG_ISOLATE;
  // Fail closed: a run where every test was skipped (or none was listed) checked nothing.
  const ran = tests.filter((t) => t.status === 'Pass' || t.status === 'Warn' || t.status === 'Fail');
  const nothingRan =
    ran.length === 0 ? `no diagnostic test ran (${tests.length} listed, all skipped or not run)` : null;
  return {
    shape,
    exitCode,
    dcgmVersion,
    driverVersion,
    runtimeError: runtimeError ?? nothingRan,
    passed: runtimeError === null && nothingRan === null && !anyFail && !exitSaysFail,
    tests,
    errors,
  };
}

function parseDiagTest(category: string, node: unknown): DcgmiDiagTest {
  const test = asObject(node);
  const name = stringAt(test, 'name');
  const resultNodes = test?.['results'] ?? [];
  if (test === undefined || name === undefined || !Array.isArray(resultNodes)) {
    throw parseError(
      'diag',
      `a test in category "${category}" has no "name" or a "results" that is not a list`,
    );
  }
  const results: DcgmiDiagResultEntry[] = [];
  // DCGM 4.x puts node-wide errors (not tied to an entity) in the test summary.
  const summary = objectAt(test, 'test_summary');
  for (const r of resultNodes) results.push(parseDiagResult(category, name, r));
  let status: DiagStatus;
  let info: readonly string[] = [];
  if (summary !== undefined) {
    const summaryResult = parseDiagResult(category, name, summary);
    status = summaryResult.status;
    info = summaryResult.info;
    const entityWarnings = new Set(results.flatMap((r) => r.warnings.map((w) => w.message)));
    const nodeWide = summaryResult.warnings.filter((w) => !entityWarnings.has(w.message));
    if (nodeWide.length > 0) results.push({ ...summaryResult, warnings: nodeWide });
  } else {
    status = worstStatus(results.map((r) => r.status));
  }
  return { category, name, status, results, info };
}

function parseDiagResult(category: string, test: string, node: unknown): DcgmiDiagResultEntry {
  const where = `test "${test}" (${category})`;
  const r = asObject(node);
  const statusText = stringAt(r, 'status');
  const status = DIAG_STATUSES.find((s) => s === statusText);
  if (r === undefined || status === undefined) {
    throw parseError(
      'diag',
      `a result of ${where} has no valid "status" (got ${JSON.stringify(statusText)})`,
    );
  }
  const entityGroup = stringAt(r, 'entity_group');
  const entityId = r['entity_id'];
  const entity =
    entityGroup !== undefined && typeof entityId === 'number' ? { group: entityGroup, id: entityId } : null;
  const gpuIds = parseGpuIds(r['gpu_ids'] ?? r['gpu_id']);
  if (entity !== null && entity.group === 'GPU' && !gpuIds.includes(entity.id)) gpuIds.push(entity.id);

  const warningNodes = r['warnings'] ?? [];
  if (!Array.isArray(warningNodes)) throw parseError('diag', `"warnings" of ${where} is not a list`);
  const warnings = warningNodes.map((w) => {
    const obj = asObject(w);
    // DCGM 3.x level-one results wrote the text under "warnings" instead of "warning".
    const message = stringAt(obj, 'warning') ?? stringAt(obj, 'warnings');
    if (obj === undefined || message === undefined)
      throw parseError('diag', `a warning of ${where} has no text`);
    const code = obj['error_id'];
    return { message, code: typeof code === 'number' && Number.isInteger(code) ? code : null };
  });
  const infoNode = r['info'];
  const info =
    typeof infoNode === 'string' ? [infoNode] : Array.isArray(infoNode) ? infoNode.map(String) : [];
  return { gpuIds, entity, status, warnings, info };
}

function parseGpuIds(value: unknown): number[] {
  if (typeof value === 'number' && Number.isInteger(value)) return [value];
  if (typeof value !== 'string' || value.trim() === '') return [];
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => /^\d+$/.test(s))
    .map(Number);
}

function worstStatus(statuses: readonly DiagStatus[]): DiagStatus {
  for (const s of ['Fail', 'Warn', 'Pass', 'Skip'] as const) if (statuses.includes(s)) return s;
  return 'Not Run';
}

// ---------------------------------------------------------------------------------------------------
// helpers

type JsonObject = Record<string, unknown>;

function asObject(value: unknown): JsonObject | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as JsonObject)
    : undefined;
}

function objectAt(obj: JsonObject | undefined, key: string): JsonObject | undefined {
  return asObject(obj?.[key]);
}

function stringAt(obj: JsonObject | undefined, key: string): string | undefined {
  const value = obj?.[key];
  return typeof value === 'string' ? value : undefined;
}

function healthStatus(value: unknown): DcgmHealthStatus | undefined {
  return DCGM_HEALTH_STATUSES.find((s) => s === value);
}

function parseJsonObject(tool: 'health' | 'diag', stdout: string): JsonObject {
  const start = stdout.indexOf('{');
  if (start === -1) {
    throw parseError(
      tool,
      stdout.trim() === '' ? 'the output is empty' : `no JSON object in ${excerpt(stdout)}`,
    );
  }
  const end = stdout.lastIndexOf('}');
  if (end < start) throw parseError(tool, 'the JSON is invalid or truncated (no closing brace)');
  // A banner line may itself contain a brace. The tools print the JSON's opening brace at the start of
  // a line (nested ones are indented), so the candidates are the first brace and every brace that
  // starts a line; inner objects of a truncated document are never mistaken for the whole.
  const candidates = [start];
  for (let at = stdout.indexOf('\n{', start); at !== -1; at = stdout.indexOf('\n{', at + 1)) {
    candidates.push(at + 1);
  }
  let firstError: unknown;
  for (const at of candidates) {
    try {
      const obj = asObject(JSON.parse(stdout.slice(at, end + 1)));
      if (obj === undefined) throw parseError(tool, 'the JSON is not an object');
      return obj;
    } catch (err) {
      firstError ??= err;
    }
  }
  if (firstError instanceof FleetmedicError) throw firstError;
  throw parseError(tool, `the JSON is invalid or truncated (${(firstError as Error).message})`, firstError);
}

function excerpt(text: string): string {
  const t = text.trim().replace(/\s+/g, ' ');
  return JSON.stringify(t.length > 120 ? `${t.slice(0, 117)}...` : t);
}

function parseError(tool: 'health' | 'diag', what: string, cause?: unknown): FleetmedicError {
  return new FleetmedicError(ErrorCode.ParseError, `dcgmi ${tool}: cannot parse the output: ${what}`, {
    permanent: true,
    cause,
  });
}

function hostEngineUnreachable(tool: 'health' | 'diag', stdout: string): FleetmedicError {
  return new FleetmedicError(
    ErrorCode.DcgmUnreachable,
    `dcgmi ${tool}: the DCGM host engine (nv-hostengine) is not reachable (exit 235): ${excerpt(stdout)}`,
    { permanent: false },
  );
}

function toolFailed(tool: 'health' | 'diag', exitCode: number, stdout: string): FleetmedicError {
  return new FleetmedicError(
    ErrorCode.DcgmiFailed,
    `dcgmi ${tool} failed with exit code ${exitCode}: ${excerpt(stdout)}`,
    {
      permanent: false,
    },
  );
}
