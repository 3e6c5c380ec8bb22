/**
 * Parsers for `nvidia-smi` output: `--query-gpu=<fields> --format=csv[,noheader][,nounits]` and `-L`.
 *
 * Pure functions of stdout, so the same code reads a real GPU node and the simulated tool
 * (see `render.ts`). Format facts, checked against driver 590 captures:
 * - CSV fields are separated by ", "; a value nvidia-smi cannot read is printed in brackets
 *   (`[N/A]`, `[Not Supported]`, `[Unknown Error]`, `[Requested functionality has been deprecated]`),
 *   some fields print a bare `N/A` or nothing at all. All of these become `null`.
 * - Without `nounits`, numbers carry a unit (`81559 MiB`, `71.15 W`, `100.00 %`) and the header names it
 *   (`memory.total [MiB]`).
 * - A GPU that cannot be opened (fallen off the bus) is reported as a line
 *   "Unable to determine the device handle for GPU...: <error>" and left out of the rows.
 */
import { ErrorCode, FleetmedicError } from '../errors.js';

/**
 * The fields of the triage query: `nvidia-smi --query-gpu=<these> --format=csv,noheader,nounits`.
 * Every one is listed in the driver 590 `--help-query-gpu` (test/fixtures/gpu/nvidia-smi captures).
 * `remapped_rows.*` replaced page retirement on Ampere and newer, where `retired_pages.*` is N/A.
 */
export const DEFAULT_HEALTH_QUERY_FIELDS = [
  'index',
  'uuid',
  'name',
  'pci.bus_id',
  'ecc.errors.uncorrected.volatile.total',
  'remapped_rows.pending',
  'remapped_rows.failure',
  'temperature.gpu',
  'clocks_event_reasons.active',
  'gpu_recovery_action',
] as const;

/** Exit codes of `nvidia-smi` that callers act on. */
export const NVIDIA_SMI_EXIT = {
  OK: 0,
  /** An argument or field name is invalid. */
  INVALID_ARGUMENT: 2,
  /** No GPU was found. */
  NOT_FOUND: 6,
  /** The driver is not loaded. */
  DRIVER_NOT_LOADED: 9,
  /** A GPU has fallen off the bus or is otherwise inaccessible. */
  GPU_LOST: 15,
} as const;

/** A parsed CSV value: numbers for numeric fields, booleans for Yes/No fields, `null` for unreadable. */
export type QueryGpuValue = string | number | boolean | null;

/** One GPU's row, keyed by the field names the caller asked for. */
export type QueryGpuRow = Readonly<Record<string, QueryGpuValue>>;

/** The result of {@link parseQueryGpu}. */
export interface QueryGpuResult {
  readonly rows: readonly QueryGpuRow[];
  /** "Unable to determine the device handle ..." lines: GPUs nvidia-smi could not open. */
  readonly unreachable: readonly string[];
  /** Whether the output started with a header line. */
  readonly header: boolean;
}

/** How a query field's value is typed. */
export type QueryGpuFieldKind = 'number' | 'boolean' | 'string';

const BOOLEAN_FIELDS = new Set([
  'remapped_rows.pending',
  'remapped_rows.failure',
  'retired_pages.pending',
  'ecc.errors.uncorrected.aggregate.sram.thresholdExceeded',
]);

const NUMERIC_FIELDS: readonly RegExp[] = [
  /^(index|count|fan\.speed|accounting\.buffer_size|enforced\.power\.limit)$/,
  /^temperature\./,
  /^ecc\.errors\./,
  /^retired_pages\.(single_bit_ecc|double_bit|sbe|dbe)\.count$/,
  /^remapped_rows\.(correctable|uncorrectable|sbe|dbe|histogram\.\w+)$/,
  /^memory\.(total|reserved|used|free)$/,
  /^utilization\./,
  /^power\.(draw|draw\.average|draw\.instant|limit|default_limit|min_limit|max_limit)$/,
  /^module\.(power\.(draw\.average|draw\.instant|limit|default_limit|min_limit|max_limit)|enforced\.power\.limit)$/,
  /^clocks\.(current\.|applications\.|default_applications\.|max\.|gr$|sm$|mem$|video$)/,
  /^clocks_event_reasons_counters\./,
  /^clocks_throttle_reasons_counters\./,
  /^pcie\.link\.(gen|width)\./,
  /^encoder\.stats\./,
  /^protected_memory\./,
];

/**
 * How {@link parseQueryGpu} types a field: `boolean` for the Yes/No fields (`remapped_rows.pending`,
 * `remapped_rows.failure`, `retired_pages.pending`, ...), `number` for counters, temperatures, clocks,
 * memory, power and utilisation, `string` for everything else (names, ids, hex bitmasks, modes).
 */
export function queryGpuFieldKind(field: string): QueryGpuFieldKind {
  if (BOOLEAN_FIELDS.has(field)) return 'boolean';
  return NUMERIC_FIELDS.some((re) => re.test(field)) ? 'number' : 'string';
}

const UNREACHABLE_LINE = /^Unable to determine the device handle for GPU/i;
const NO_DEVICES_LINE = /^No devices were found\.?$/i;

/**
 * Parses `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` output. The header variant
 * (`--format=csv`) and values with units are accepted too.
 *
 * @param stdout - the tool's standard output
 * @param fields - the fields passed to `--query-gpu`, in the same order
 * @returns one row per GPU, keyed by field; "No devices were found" gives no rows
 * @throws FleetmedicError `PARSE_ERROR` (permanent) for empty output, a row with the wrong number of
 *   values, a header that does not match `fields`, or a value of the wrong type
 * @example parseQueryGpu('0, 59\n', ['index', 'temperature.gpu']).rows // [{ index: 0, 'temperature.gpu': 59 }]
 */
export function parseQueryGpu(stdout: string, fields: readonly string[]): QueryGpuResult {
  if (fields.length === 0) throw parseError('--query-gpu', 'no fields were requested');
  const lines = stdout.split(/\r?\n/).filter((line) => line.trim() !== '');
  if (lines.length === 0) throw parseError('--query-gpu', 'the output is empty');

  const rows: QueryGpuRow[] = [];
  const unreachable: string[] = [];
  let header = false;
  for (const [i, line] of lines.entries()) {
    if (UNREACHABLE_LINE.test(line)) {
      unreachable.push(line.trim());
      continue;
    }
    if (NO_DEVICES_LINE.test(line.trim())) continue;
    const cells = line.split(', ');
    if (i === 0 && isHeader(cells, fields)) {
      header = true;
      continue;
    }
    if (cells.length !== fields.length) {
      throw parseError(
        '--query-gpu',
        `line ${i + 1} has ${cells.length} values, expected ${fields.length} (${fields.join(', ')}): ${excerpt(line)}`,
      );
    }
    const row: Record<string, QueryGpuValue> = {};
    for (const [j, field] of fields.entries()) {
      row[field] = parseValue(field, cells[j] ?? '', i + 1);
    }
    rows.push(row);
  }
  return { rows, unreachable, header };
}

/**
 * A header names the first field as requested and every column as an identifier (with an optional
 * ` [unit]`). Later columns may differ from the requested names: nvidia-smi prints some aliases under
 * their long name (`gpu_util` as `gpu_utilization [%]`).
 */
function isHeader(cells: readonly string[], fields: readonly string[]): boolean {
  const name = (cell: string): string => cell.replace(/ \[[^\]]*\]$/, '').trim();
  return (
    cells.length === fields.length &&
    name(cells[0] ?? '') === fields[0] &&
    cells.every((cell) => /^[A-Za-z_][\w.]*$/.test(name(cell)))
  );
}

function parseValue(field: string, raw: string, line: number): QueryGpuValue {
  const value = raw.trim();
  if (value === '' || value === 'N/A' || /^\[.*\]$/.test(value)) return null;
  switch (queryGpuFieldKind(field)) {
    case 'boolean':
      if (value === 'Yes') return true;
      if (value === 'No') return false;
      throw parseError('--query-gpu', `line ${line}: ${field} should be Yes or No, got ${excerpt(value)}`);
    case 'number': {
      const match = /^(-?\d+(?:\.\d+)?)(?: ?(?:%|[A-Za-z]+))?$/.exec(value);
      if (match === null) {
        throw parseError('--query-gpu', `line ${line}: ${field} should be a number, got ${excerpt(value)}`);
      }
      return Number(match[1]);
    }
    case 'string':
      return value;
  }
}

// ---------------------------------------------------------------------------------------------------
// nvidia-smi -L

/** A MIG device of a GPU in MIG mode. */
export interface MigDevice {
  /** The MIG profile, e.g. `3g.40gb`. */
  readonly profile: string;
  /** The MIG device index within its GPU. */
  readonly deviceIndex: number;
  readonly uuid: string;
}

/** One GPU as `nvidia-smi -L` lists it. */
export interface ListedGpu {
  readonly index: number;
  readonly name: string;
  readonly uuid: string;
  /** MIG devices listed under the GPU; empty when MIG is off. */
  readonly mig: readonly MigDevice[];
}

/** The result of {@link parseListGpus}. */
export interface ListGpusResult {
  readonly gpus: readonly ListedGpu[];
  /** "Unable to determine the device handle ..." lines: GPUs nvidia-smi could not open. */
  readonly unreachable: readonly string[];
}

const GPU_LINE = /^GPU (\d+): (.+) \(UUID: ([^)\s]+)\)$/;
const MIG_LINE = /^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: ([^)\s]+)\)$/;

/**
 * Parses `nvidia-smi -L`, including the indented MIG device lines printed under a GPU in MIG mode.
 *
 * @param stdout - the tool's standard output
 * @throws FleetmedicError `PARSE_ERROR` (permanent) for empty output, a MIG line before any GPU line,
 *   or any line that is neither a GPU, a MIG device, nor an "Unable to determine ..." error
 * @example parseListGpus('GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0000)\n').gpus[0]?.name // 'NVIDIA H100 80GB HBM3'
 */
export function parseListGpus(stdout: string): ListGpusResult {
  const lines = stdout.split(/\r?\n/);
  if (lines.every((line) => line.trim() === '')) throw parseError('-L', 'the output is empty');
  const gpus: { index: number; name: string; uuid: string; mig: MigDevice[] }[] = [];
  const unreachable: string[] = [];
  for (const [i, rawLine] of lines.entries()) {
    const line = rawLine.trimEnd();
    if (line.trim() === '' || NO_DEVICES_LINE.test(line.trim())) continue;
    if (UNREACHABLE_LINE.test(line.trim())) {
      unreachable.push(line.trim());
      continue;
    }
    const gpu = GPU_LINE.exec(line);
    if (gpu !== null) {
      gpus.push({ index: Number(gpu[1]), name: gpu[2] ?? '', uuid: gpu[3] ?? '', mig: [] });
      continue;
    }
    const mig = MIG_LINE.exec(line);
    if (mig !== null) {
      const parent = gpus.at(-1);
      if (parent === undefined)
        throw parseError('-L', `line ${i + 1}: a MIG device before any GPU: ${excerpt(line)}`);
      parent.mig.push({ profile: mig[1] ?? '', deviceIndex: Number(mig[2]), uuid: mig[3] ?? '' });
      continue;
    }
    throw parseError('-L', `line ${i + 1} is not a GPU or MIG device line: ${excerpt(line)}`);
  }
  return { gpus, unreachable };
}

function excerpt(text: string): string {
  const t = text.trim();
  return JSON.stringify(t.length > 120 ? `${t.slice(0, 117)}...` : t);
}

function parseError(mode: string, what: string): FleetmedicError {
  return new FleetmedicError(ErrorCode.ParseError, `nvidia-smi ${mode}: cannot parse the output: ${what}`, {
    permanent: true,
  });
}
