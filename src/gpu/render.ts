/**
 * Renders `dcgmi` and `nvidia-smi` output from a simulated GPU fault state, in the real tools' formats.
 *
 * The stand-in tools on simulated nodes print what these functions return, so the parsers in
 * `dcgmi.ts` and `nvidia-smi.ts` read the same formats on simulated and real nodes. The shapes follow
 * the tools' sources and the captures in test/fixtures/gpu: `dcgmi` prints JSON the way jsoncpp's
 * styled writer does (tab indentation, `" : "`, sorted keys), `dcgmi health` wraps messages at 54
 * characters into `overflow` lists, and `nvidia-smi` prints ", "-separated CSV.
 *
 * What the simulation decides (the real tools do not say):
 * - DCGM's health check reports only the XIDs it watches (48, 74, 79, 94, 95, 119, 120, 140 always;
 *   31, 32, 43, 63, 64 as memory, 38, 39, 42 as PCIe, 60-62 as thermal, 54-58 and 78 as power, 67, 73,
 *   121, 137 as NVLink); other XIDs leave it Healthy, as on a real node.
 * - A GPU with XID 79 has fallen off the bus: `nvidia-smi` cannot open it (exit 15) and it is missing
 *   from the listings.
 * - `dcgmi diag` refuses to run while a GPU has processes: a `runtime_error` and exit 222 (DCGM_ST_IN_USE).
 */
import { dcgmErrorId } from '../domain/xid-classification.js';
import type { DcgmErrorName } from '../domain/xid-classification.js';
import { DCGMI_EXIT, formatHealthMessage } from './dcgmi.js';
import { NVIDIA_SMI_EXIT, queryGpuFieldKind } from './nvidia-smi.js';

/** One simulated GPU and its faults. */
export interface SimulatedGpu {
  readonly index: number;
  readonly uuid: string;
  readonly name: string;
  /** PCI bus id as nvidia-smi prints it, e.g. `00000000:3B:00.0`. */
  readonly busId: string;
  /** The last XID the GPU raised; 79 means it fell off the bus. */
  readonly xid?: number;
  readonly remappedRowsPending?: boolean;
  readonly remappedRowsFailure?: boolean;
  /** Uncorrected volatile ECC errors since the last reset. */
  readonly eccUncorrected?: number;
  /** Processes using the GPU (a GPU reset and `dcgmi diag` need none). */
  readonly processes?: number;
  readonly temperatureC?: number;
  /** nvidia-smi's `gpu_recovery_action`; `None` when unset. */
  readonly recoveryAction?: string;
  /** MIG devices, when the GPU is in MIG mode. */
  readonly mig?: readonly { readonly profile: string; readonly uuid: string }[];
}

/** A DCGM health incident the simulation injects directly. */
export interface SimulatedHealthFailure {
  readonly gpuIndex: number;
  readonly code: DcgmErrorName;
  /** Defaults to `Failure`. */
  readonly health?: 'Warning' | 'Failure';
  /** The system it is reported under; defaults to `Memory system`. */
  readonly system?: string;
  /** The message; defaults to DCGM's message for the code. */
  readonly message?: string;
}

/** The fault state of a simulated node's GPUs. */
export interface SimulatedGpuState {
  readonly gpus: readonly SimulatedGpu[];
  readonly healthFailures?: readonly SimulatedHealthFailure[];
  /** Whether `dcgmi health -s a` has been run; defaults to true. */
  readonly healthWatchesSet?: boolean;
  /** Whether nv-hostengine answers; defaults to true. */
  readonly hostEngineReachable?: boolean;
  readonly dcgmVersion?: string;
  readonly driverVersion?: string;
}

/** What a stand-in tool prints and how it exits. */
export interface RenderedCommand {
  readonly stdout: string;
  readonly exitCode: number;
}

/** One incident as DCGM's health check would report it for the state. */
export interface SimulatedHealthIncident {
  readonly gpuIndex: number;
  readonly system: string;
  readonly health: 'Warning' | 'Failure';
  readonly code: DcgmErrorName;
  readonly message: string;
}

const DEFAULT_DRIVER_VERSION = '590.48.01';
const DEFAULT_DCGM_VERSION = '4.2.3';
/** dcgmi wraps health messages longer than this into several `overflow` lines. */
const HEALTH_MESSAGE_WIDTH = 54;

/** How DCGM's health watch reports each XID it watches: [health, system, code]. */
const HEALTH_XIDS: Readonly<Record<number, readonly ['Warning' | 'Failure', string, DcgmErrorName]>> = {
  31: ['Warning', 'Memory system', 'DCGM_FR_XID_ERROR'],
  32: ['Warning', 'Memory system', 'DCGM_FR_XID_ERROR'],
  38: ['Warning', 'PCIe system', 'DCGM_FR_XID_ERROR'],
  39: ['Warning', 'PCIe system', 'DCGM_FR_XID_ERROR'],
  42: ['Warning', 'PCIe system', 'DCGM_FR_XID_ERROR'],
  43: ['Warning', 'Memory system', 'DCGM_FR_XID_ERROR'],
  48: ['Failure', 'Memory system', 'DCGM_FR_XID_ERROR'],
  54: ['Warning', 'Power system', 'DCGM_FR_XID_ERROR'],
  56: ['Warning', 'Power system', 'DCGM_FR_XID_ERROR'],
  57: ['Warning', 'Power system', 'DCGM_FR_CLOCKS_EVENT_POWER'],
  58: ['Warning', 'Power system', 'DCGM_FR_XID_ERROR'],
  60: ['Warning', 'Thermal system', 'DCGM_FR_CLOCKS_EVENT_THERMAL'],
  61: ['Warning', 'Thermal system', 'DCGM_FR_XID_ERROR'],
  62: ['Warning', 'Thermal system', 'DCGM_FR_XID_ERROR'],
  63: ['Warning', 'Memory system', 'DCGM_FR_PENDING_PAGE_RETIREMENTS'],
  64: ['Failure', 'Memory system', 'DCGM_FR_ROW_REMAP_FAILURE'],
  67: ['Warning', 'NVLINK system', 'DCGM_FR_XID_ERROR'],
  73: ['Warning', 'NVLINK system', 'DCGM_FR_XID_ERROR'],
  74: ['Failure', 'NVLINK system', 'DCGM_FR_XID_ERROR'],
  78: ['Warning', 'Power system', 'DCGM_FR_XID_ERROR'],
  79: ['Failure', 'PCIe system', 'DCGM_FR_FALLEN_OFF_BUS'],
  94: ['Warning', 'Memory system', 'DCGM_FR_CONTAINED_ERROR'],
  95: ['Failure', 'Memory system', 'DCGM_FR_UNCONTAINED_ERROR'],
  119: ['Failure', 'Driver', 'DCGM_FR_XID_ERROR'],
  120: ['Failure', 'Driver', 'DCGM_FR_XID_ERROR'],
  121: ['Warning', 'NVLINK system', 'DCGM_FR_XID_ERROR'],
  137: ['Warning', 'NVLINK system', 'DCGM_FR_XID_ERROR'],
  140: ['Failure', 'Memory system', 'DCGM_FR_XID_ERROR'],
};

function isLost(gpu: SimulatedGpu): boolean {
  return gpu.xid === 79;
}

function message(code: DcgmErrorName, gpu: number, value?: number): string {
  return formatHealthMessage(code, gpu, value) ?? `${code} detected on GPU ${gpu}`;
}

/**
 * The health incidents DCGM would report for `state`, in the order `dcgmi` prints them (by GPU, then
 * by system in sorted order).
 */
export function simulatedHealthIncidents(state: SimulatedGpuState): SimulatedHealthIncident[] {
  const incidents: SimulatedHealthIncident[] = [];
  for (const gpu of state.gpus) {
    const i = gpu.index;
    const watched = gpu.xid === undefined ? undefined : HEALTH_XIDS[gpu.xid];
    if (gpu.xid !== undefined && watched !== undefined) {
      const [health, system, code] = watched;
      incidents.push({ gpuIndex: i, system, health, code, message: message(code, i, gpu.xid) });
    }
    if ((gpu.eccUncorrected ?? 0) > 0) {
      const code = 'DCGM_FR_VOLATILE_DBE_DETECTED';
      incidents.push({
        gpuIndex: i,
        system: 'Memory system',
        health: 'Failure',
        code,
        message: message(code, i, gpu.eccUncorrected),
      });
    }
    if (gpu.remappedRowsFailure === true) {
      const code = 'DCGM_FR_ROW_REMAP_FAILURE';
      incidents.push({
        gpuIndex: i,
        system: 'Memory system',
        health: 'Failure',
        code,
        message: message(code, i),
      });
    } else if (gpu.remappedRowsPending === true) {
      const code = 'DCGM_FR_PENDING_ROW_REMAP';
      incidents.push({
        gpuIndex: i,
        system: 'Memory system',
        health: 'Warning',
        code,
        message: message(code, i),
      });
    }
  }
  for (const f of state.healthFailures ?? []) {
    incidents.push({
      gpuIndex: f.gpuIndex,
      system: f.system ?? 'Memory system',
      health: f.health ?? 'Failure',
      code: f.code,
      message: f.message ?? message(f.code, f.gpuIndex),
    });
  }
  return incidents.sort((a, b) => a.gpuIndex - b.gpuIndex || compareKeys(a.system, b.system));
}

/**
 * Renders `dcgmi health -c -j` for the state: exit 0 with the JSON report (also when it says
 * "Failure"), exit 253 without watches, exit 235 when the host engine is unreachable.
 */
export function renderDcgmiHealth(state: SimulatedGpuState): RenderedCommand {
  if (state.hostEngineReachable === false) return hostEngineUnreachable();
  if (state.healthWatchesSet === false) {
    return {
      stdout: 'Error: Health watches not enabled. Please enable watches. \n',
      exitCode: DCGMI_EXIT.GENERIC_ERROR,
    };
  }
  const incidents = simulatedHealthIncidents(state);
  const body: JsonObject = { 'Overall Health': { value: worst(incidents.map((i) => i.health)) } };
  if (incidents.length > 0) {
    const gpus: JsonObject = {};
    for (const gpuIndex of [...new Set(incidents.map((i) => i.gpuIndex))]) {
      const mine = incidents.filter((i) => i.gpuIndex === gpuIndex);
      const systems: JsonObject = {};
      for (const system of [...new Set(mine.map((i) => i.system))]) {
        const inSystem = mine.filter((i) => i.system === system);
        systems[system] = {
          // Several incidents of one system share one entry, joined as dcgmi joins them.
          overflow: wrap(inSystem.map((i) => i.message).join(', '), HEALTH_MESSAGE_WIDTH),
          value: worst(inSystem.map((i) => i.health)),
        };
      }
      gpus[String(gpuIndex)] = {
        children: { Errors: { children: systems } },
        value: worst(mine.map((i) => i.health)),
      };
    }
    body['GPU'] = { children: gpus };
  }
  return { stdout: `${styledJson({ body, header: ['Health Monitor Report'] })}\n`, exitCode: DCGMI_EXIT.OK };
}

/** Wraps text into lines of at most `width` characters at spaces, as dcgmi's health output does. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line === '') line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

function worst(healths: readonly ('Warning' | 'Failure')[]): 'Healthy' | 'Warning' | 'Failure' {
  if (healths.includes('Failure')) return 'Failure';
  return healths.includes('Warning') ? 'Warning' : 'Healthy';
}

// ---------------------------------------------------------------------------------------------------
// dcgmi diag

/** A diag failure for one GPU: the DCGM code and the message. */
interface DiagFailure {
  readonly code: DcgmErrorName;
  readonly message: string;
}

/** DCGM error category and severity (`dcgmErrorCategory_t`, `dcgmErrorSeverity_t`) for codes we emit. */
const DIAG_ERROR_META: Readonly<
  Partial<Record<DcgmErrorName, readonly [category: number, severity: number]>>
> = {
  DCGM_FR_ROW_REMAP_FAILURE: [10, 2],
  DCGM_FR_PENDING_ROW_REMAP: [10, 6],
  DCGM_FR_VOLATILE_DBE_DETECTED: [10, 6],
  DCGM_FR_FAULTY_MEMORY: [10, 2],
  DCGM_FR_XID_ERROR: [5, 4],
  DCGM_FR_FALLEN_OFF_BUS: [15, 2],
};

/** Failures the deployment ("software") checks find on a GPU. */
function softwareFailures(gpu: SimulatedGpu, state: SimulatedGpuState): DiagFailure[] {
  const i = gpu.index;
  const failures: DiagFailure[] = [];
  if (isLost(gpu))
    failures.push({ code: 'DCGM_FR_FALLEN_OFF_BUS', message: message('DCGM_FR_FALLEN_OFF_BUS', i) });
  else if (gpu.xid !== undefined) {
    failures.push({ code: 'DCGM_FR_XID_ERROR', message: message('DCGM_FR_XID_ERROR', i, gpu.xid) });
  }
  if (gpu.remappedRowsFailure === true) {
    failures.push({ code: 'DCGM_FR_ROW_REMAP_FAILURE', message: message('DCGM_FR_ROW_REMAP_FAILURE', i) });
  } else if (gpu.remappedRowsPending === true) {
    failures.push({ code: 'DCGM_FR_PENDING_ROW_REMAP', message: message('DCGM_FR_PENDING_ROW_REMAP', i) });
  }
  if ((gpu.eccUncorrected ?? 0) > 0) {
    const code = 'DCGM_FR_VOLATILE_DBE_DETECTED';
    failures.push({ code, message: message(code, i, gpu.eccUncorrected) });
  }
  for (const f of state.healthFailures ?? []) {
    if (f.gpuIndex === i && (f.health ?? 'Failure') === 'Failure') {
      failures.push({ code: f.code, message: f.message ?? message(f.code, i) });
    }
  }
  return failures;
}

/** Failures the memory test (level 2 and up) finds on a GPU. */
function memoryFailures(gpu: SimulatedGpu): DiagFailure[] {
  const bad = gpu.remappedRowsFailure === true || (gpu.eccUncorrected ?? 0) > 0;
  return bad ? [{ code: 'DCGM_FR_FAULTY_MEMORY', message: message('DCGM_FR_FAULTY_MEMORY', gpu.index) }] : [];
}

interface DiagPlanTest {
  readonly category: string;
  readonly name3: string;
  readonly name4: string;
  readonly failures: (gpu: SimulatedGpu, state: SimulatedGpuState) => DiagFailure[];
  /** DCGM 3.x deployment tests report one node-wide result, not one per GPU. */
  readonly nodeWide3?: boolean;
}

const none = (): DiagFailure[] => [];

function diagPlan(level: 1 | 2 | 3 | 4): DiagPlanTest[] {
  const plan: DiagPlanTest[] = [
    { category: 'Deployment', name3: 'Denylist', name4: 'software', failures: none, nodeWide3: true },
    { category: 'Deployment', name3: 'NVML Library', name4: 'software', failures: none, nodeWide3: true },
    {
      category: 'Deployment',
      name3: 'CUDA Main Library',
      name4: 'software',
      failures: none,
      nodeWide3: true,
    },
    {
      category: 'Deployment',
      name3: 'Permissions and OS Blocks',
      name4: 'software',
      failures: none,
      nodeWide3: true,
    },
    { category: 'Deployment', name3: 'Persistence Mode', name4: 'software', failures: none, nodeWide3: true },
    {
      category: 'Deployment',
      name3: 'Environment Variables',
      name4: 'software',
      failures: none,
      nodeWide3: true,
    },
    {
      category: 'Deployment',
      name3: 'Page Retirement/Row Remap',
      name4: 'software',
      failures: softwareFailures,
      nodeWide3: true,
    },
    {
      category: 'Deployment',
      name3: 'Graphics Processes',
      name4: 'software',
      failures: none,
      nodeWide3: true,
    },
    { category: 'Deployment', name3: 'Inforom', name4: 'software', failures: none, nodeWide3: true },
  ];
  if (level >= 2) {
    plan.push(
      { category: 'Integration', name3: 'PCIe', name4: 'pcie', failures: none },
      { category: 'Hardware', name3: 'GPU Memory', name4: 'memory', failures: memoryFailures },
    );
  }
  if (level >= 3) {
    plan.push(
      { category: 'Stress', name3: 'Diagnostic', name4: 'diagnostic', failures: none },
      { category: 'Stress', name3: 'Targeted Stress', name4: 'targeted_stress', failures: none },
      { category: 'Stress', name3: 'Targeted Power', name4: 'targeted_power', failures: none },
      { category: 'Stress', name3: 'Memory Bandwidth', name4: 'memory_bandwidth', failures: none },
    );
  }
  if (level >= 4) {
    plan.push(
      { category: 'Hardware', name3: 'Memtest', name4: 'memtest', failures: memoryFailures },
      { category: 'Hardware', name3: 'Pulse Test', name4: 'pulse_test', failures: none },
    );
  }
  return plan;
}

function warningJson(f: DiagFailure): JsonObject {
  const [category, severity] = DIAG_ERROR_META[f.code] ?? [16, 4];
  return {
    error_category: category,
    error_id: dcgmErrorId(f.code) ?? 1,
    error_severity: severity,
    warning: f.message,
  };
}

/**
 * Renders `dcgmi diag -r <level> -j` for the state, in the DCGM 3.x (`"DCGM GPU Diagnostic"`) or 4.x
 * (`"DCGM Diagnostic"`) shape. Exit 226 when a test fails, 0 when all pass, 222 with a
 * `runtime_error` while a GPU has processes, 235 when the host engine is unreachable.
 *
 * @param level - the run level, 1 to 4 (`-r N`)
 * @param shape - `'3'` or `'4'`, the DCGM major whose JSON to print
 */
export function renderDcgmiDiag(
  state: SimulatedGpuState,
  level: 1 | 2 | 3 | 4,
  shape: '3' | '4',
): RenderedCommand {
  if (state.hostEngineReachable === false) return hostEngineUnreachable();
  const rootKey = shape === '4' ? 'DCGM Diagnostic' : 'DCGM GPU Diagnostic';
  const busy = state.gpus.filter((g) => (g.processes ?? 0) > 0 && !isLost(g));
  if (busy.length > 0) {
    const list = busy.map((g) => `GPU ${g.index} (${g.processes ?? 0} process(es))`).join(', ');
    const diag: JsonObject = {
      runtime_error: `The diagnostic cannot run while processes use the GPUs: ${list}. Stop them and retry.`,
      version: state.dcgmVersion ?? DEFAULT_DCGM_VERSION,
    };
    return { stdout: `${styledJson({ [rootKey]: diag })}\n`, exitCode: DCGMI_EXIT.IN_USE };
  }

  const plan = diagPlan(level);
  let failed = false;
  const categories: { category: string; tests: JsonValue[] }[] = [];
  const categoryFor = (name: string): JsonValue[] => {
    let entry = categories.find((c) => c.category === name);
    if (entry === undefined) {
      entry = { category: name, tests: [] };
      categories.push(entry);
    }
    return entry.tests;
  };

  if (shape === '3') {
    for (const test of plan) {
      const perGpu = state.gpus.map((gpu) => ({ gpu, failures: test.failures(gpu, state) }));
      failed ||= perGpu.some((p) => p.failures.length > 0);
      let results: JsonObject[];
      if (test.nodeWide3 === true) {
        const failing = perGpu.filter((p) => p.failures.length > 0);
        results =
          failing.length === 0
            ? [{ status: 'Pass' }]
            : failing.map((p) => ({
                gpu_ids: String(p.gpu.index),
                status: 'Fail',
                warnings: p.failures.map(warningJson),
              }));
      } else {
        results = perGpu.map((p): JsonObject =>
          p.failures.length === 0
            ? { gpu_ids: String(p.gpu.index), status: 'Pass' }
            : { gpu_ids: String(p.gpu.index), status: 'Fail', warnings: p.failures.map(warningJson) },
        );
      }
      categoryFor(test.category).push({ name: test.name3, results });
    }
    return {
      stdout: `${styledJson({ [rootKey]: { test_categories: categories } })}\n`,
      exitCode: failed ? DCGMI_EXIT.DIAG_FAILED : DCGMI_EXIT.OK,
    };
  }

  // DCGM 4.x folds the deployment checks into one "software" test with one result per GPU.
  const tests4 = new Map<string, { category: string; failures: (gpu: SimulatedGpu) => DiagFailure[] }>();
  for (const test of plan) {
    const prev = tests4.get(test.name4);
    const failures = (gpu: SimulatedGpu): DiagFailure[] => [
      ...(prev?.failures(gpu) ?? []),
      ...test.failures(gpu, state),
    ];
    tests4.set(test.name4, { category: test.category, failures });
  }
  for (const [name, test] of tests4) {
    const results = state.gpus.map((gpu) => {
      const failures = test.failures(gpu);
      const entry: JsonObject = {
        entity_group: 'GPU',
        entity_group_id: 1,
        entity_id: gpu.index,
        status: failures.length === 0 ? 'Pass' : 'Fail',
      };
      if (failures.length > 0) entry['warnings'] = failures.map(warningJson);
      return entry;
    });
    const testFailed = results.some((r) => r['status'] === 'Fail');
    failed ||= testFailed;
    categoryFor(test.category).push({
      name,
      results,
      test_summary: { status: testFailed ? 'Fail' : 'Pass' },
    });
  }
  const output: JsonObject = {
    [rootKey]: { test_categories: categories },
    entity_groups: [
      {
        entities: state.gpus.map((gpu) => ({
          device_id: '2330',
          entity_id: gpu.index,
          serial_num: gpu.uuid,
        })),
        entity_group: 'GPU',
        entity_group_id: 1,
      },
    ],
    metadata: {
      'Driver Version Detected': state.driverVersion ?? DEFAULT_DRIVER_VERSION,
      version: state.dcgmVersion ?? DEFAULT_DCGM_VERSION,
    },
  };
  return { stdout: `${styledJson(output)}\n`, exitCode: failed ? DCGMI_EXIT.DIAG_FAILED : DCGMI_EXIT.OK };
}

function hostEngineUnreachable(): RenderedCommand {
  return {
    stdout:
      'Error: unable to establish a connection to the specified host: localhost\n' +
      'Error: Unable to connect to host engine. Host engine connection invalid/disconnected.\n',
    exitCode: DCGMI_EXIT.HOST_ENGINE_UNREACHABLE,
  };
}

// ---------------------------------------------------------------------------------------------------
// nvidia-smi

/** Output options of `--format=csv[,noheader][,nounits]`. */
export interface QueryGpuFormat {
  /** Print the header line (`--format=csv` without `noheader`); default false. */
  readonly header?: boolean;
  /** Print units (`--format=csv` without `nounits`); default false. */
  readonly units?: boolean;
}

const UNITS: readonly [RegExp, string][] = [
  [/^memory\./, 'MiB'],
  [/^power\.(draw|limit)/, 'W'],
  [/^utilization\./, '%'],
  [/^clocks\./, 'MHz'],
];

function unitOf(field: string): string | undefined {
  return queryGpuFieldKind(field) === 'number' ? UNITS.find(([re]) => re.test(field))?.[1] : undefined;
}

function queryValue(gpu: SimulatedGpu, field: string, state: SimulatedGpuState): string {
  const yesNo = (b: boolean | undefined): string => (b === true ? 'Yes' : 'No');
  switch (field) {
    case 'index':
      return String(gpu.index);
    case 'uuid':
    case 'gpu_uuid':
      return gpu.uuid;
    case 'name':
    case 'gpu_name':
      return gpu.name;
    case 'pci.bus_id':
    case 'gpu_bus_id':
      return gpu.busId;
    case 'count':
      return String(state.gpus.length);
    case 'driver_version':
      return state.driverVersion ?? DEFAULT_DRIVER_VERSION;
    case 'ecc.errors.uncorrected.volatile.total':
    case 'ecc.errors.uncorrected.aggregate.total':
      return String(gpu.eccUncorrected ?? 0);
    case 'remapped_rows.pending':
      return yesNo(gpu.remappedRowsPending);
    case 'remapped_rows.failure':
      return yesNo(gpu.remappedRowsFailure);
    case 'temperature.gpu':
      return String(gpu.temperatureC ?? 34);
    case 'clocks_event_reasons.active':
    case 'clocks_throttle_reasons.active':
      // Idle GPUs report the "GPU idle" reason (bit 0), as in the driver 590 captures.
      return (gpu.processes ?? 0) > 0 ? '0x0000000000000000' : '0x0000000000000001';
    case 'gpu_recovery_action':
      return gpu.recoveryAction ?? 'None';
    case 'memory.total':
      return '81559';
    case 'mig.mode.current':
      return gpu.mig !== undefined && gpu.mig.length > 0 ? 'Enabled' : 'Disabled';
    default:
      return '[N/A]';
  }
}

function unreachableLine(gpu: SimulatedGpu): string {
  return `Unable to determine the device handle for GPU${gpu.busId}: Unknown Error`;
}

/**
 * Renders `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` (or with header / units).
 * Fields the simulation does not model print `[N/A]`. A GPU that fell off the bus (XID 79) prints an
 * "Unable to determine the device handle" line instead of a row, and the exit code is 15.
 */
export function renderQueryGpu(
  state: SimulatedGpuState,
  fields: readonly string[],
  format: QueryGpuFormat = {},
): RenderedCommand {
  const lines: string[] = [];
  if (format.header === true) {
    lines.push(
      fields
        .map((f) => {
          const unit = format.units === true ? unitOf(f) : undefined;
          return unit === undefined ? f : `${f} [${unit}]`;
        })
        .join(', '),
    );
  }
  let lost = false;
  for (const gpu of state.gpus) {
    if (isLost(gpu)) {
      lost = true;
      lines.push(unreachableLine(gpu));
      continue;
    }
    const values = fields.map((f) => {
      const value = queryValue(gpu, f, state);
      const unit = format.units === true ? unitOf(f) : undefined;
      return unit === undefined || value.startsWith('[') ? value : `${value} ${unit}`;
    });
    lines.push(values.join(', '));
  }
  if (state.gpus.length === 0) lines.push('No devices were found');
  return {
    stdout: `${lines.join('\n')}\n`,
    exitCode: state.gpus.length === 0 ? NVIDIA_SMI_EXIT.NOT_FOUND : lost ? NVIDIA_SMI_EXIT.GPU_LOST : 0,
  };
}

/** Renders `nvidia-smi -L`, with the indented MIG device lines of GPUs in MIG mode. */
export function renderListGpus(state: SimulatedGpuState): RenderedCommand {
  const lines: string[] = [];
  let lost = false;
  for (const gpu of state.gpus) {
    if (isLost(gpu)) {
      lost = true;
      lines.push(unreachableLine(gpu));
      continue;
    }
    lines.push(`GPU ${gpu.index}: ${gpu.name} (UUID: ${gpu.uuid})`);
    for (const [i, mig] of (gpu.mig ?? []).entries()) {
      lines.push(`  MIG ${mig.profile.padEnd(12)}Device ${String(i).padStart(2)}: (UUID: ${mig.uuid})`);
    }
  }
  if (state.gpus.length === 0) lines.push('No devices were found');
  return {
    stdout: `${lines.join('\n')}\n`,
    exitCode: state.gpus.length === 0 ? NVIDIA_SMI_EXIT.NOT_FOUND : lost ? NVIDIA_SMI_EXIT.GPU_LOST : 0,
  };
}

// ---------------------------------------------------------------------------------------------------
// jsoncpp-style JSON

type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
interface JsonObject {
  [key: string]: JsonValue;
}

/** Byte-wise key order, as jsoncpp's `std::map` keeps object members. */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Serialises like jsoncpp's `toStyledString()` as seen in dcgmi output: tab indentation, `" : "`
 * between key and value, members in byte order, and nested objects and arrays opening on their own line.
 */
function styledJson(value: JsonValue, indent = ''): string {
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    const inner = `${indent}\t`;
    return `[\n${value.map((v) => `${inner}${styledJson(v, inner)}`).join(',\n')}\n${indent}]`;
  }
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort(compareKeys);
    if (keys.length === 0) return '{}';
    const inner = `${indent}\t`;
    const members = keys.map((key) => {
      const v = value[key] ?? null;
      const nested =
        v !== null && typeof v === 'object' && (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0);
      return nested
        ? `${inner}${JSON.stringify(key)} :\n${inner}${styledJson(v, inner)}`
        : `${inner}${JSON.stringify(key)} : ${styledJson(v, inner)}`;
    });
    return `{\n${members.join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value);
}
