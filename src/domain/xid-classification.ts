/**
 * Classifies GPU faults (an XID number or a DCGM health error code) into a {@link RemediationClass},
 * and refines an alert's class with evidence gathered on the node (`dcgmi health`, `nvidia-smi`,
 * `dcgmi diag`).
 *
 * The tables below are NVIDIA NVSentinel's gpu-health-monitor mappings (Apache-2.0), copied row by row
 * from `xiderrorsmapping.csv` and `dcgmerrorsmapping.csv` (test/fixtures/gpu/xid holds the copies the
 * tests compare against). Nothing is parsed at run time. Each row keeps NVSentinel's recommended
 * action; {@link NVSENTINEL_ACTION_CLASS} turns an action into our class, and
 * {@link FLEETMEDIC_XID_DEVIATIONS} / {@link FLEETMEDIC_DCGM_CLASSES} list every place where fleetmedic
 * decides differently, with the reason.
 *
 * Rules that hold for every code:
 * - an unknown XID or DCGM code is `needs-operator`: quarantine and wait, never guess a repair;
 * - configuration overrides win over the tables (an operator may also lower a class on purpose);
 * - evidence only escalates ({@link refineWithEvidence}); a "Healthy" report never lowers a class,
 *   because a freshly set DCGM watch reports Healthy before it has sampled anything.
 */
import { describeClass, isRemediationClass, maxClass, severityOf } from './remediation-class.js';
import type { RemediationClass } from './remediation-class.js';

/**
 * The recommended actions that appear in NVSentinel's mapping files, plus the names of its
 * `RecommendedAction` protobuf enum (`COMPONENT_RESET`, `CONTACT_SUPPORT`, `REPLACE_VM`, ...) that its
 * platform connector converts them into, so that either vocabulary can be classified.
 * `FOLLOW_OTHER_XID` is our name for XID 154's free-text action ("Follow guidance as it applies to
 * another Xid").
 */
export type NvsentinelAction =
  | 'NONE'
  | 'IGNORE'
  | 'RESTART_APP'
  | 'APPLICATION_RESTART'
  | 'WORKFLOW_XID_45'
  | 'CHECK_UVM'
  | 'RESET_GPU'
  | 'COMPONENT_RESET'
  | 'WORKFLOW_XID_48'
  | 'NODE_REBOOT'
  | 'RESTART_BM'
  | 'RESTART_VM'
  | 'REPORT_ISSUE'
  | 'UNEXPECTED_ERR_REPORT_ISSUE'
  | 'CONTACT_SUPPORT'
  | 'CHECK_MECHANICALS'
  | 'CHECK_THERMALS'
  | 'CHECK_FM_CONFIG'
  | 'UPDATE_SWFW'
  | 'WORKFLOW_NVLINK_ERR'
  | 'WORKFLOW_NVLINK5_ERR'
  | 'FOLLOW_OTHER_XID'
  | 'RUN_DCGMEUD'
  | 'UNKNOWN'
  | 'RUN_FIELDDIAG'
  | 'REPLACE_VM';

/**
 * How each NVSentinel action maps to a fleetmedic class, and why.
 *
 * - `NONE`, `IGNORE` -> `ignore`.
 * - `RESTART_APP` (`APPLICATION_RESTART` in the protobuf) -> `restart-app`.
 * - `WORKFLOW_XID_45` -> `restart-app`: XID 45 is the driver tearing down a channel because the
 *   application was killed or reset; NVIDIA's device plugin treats it as application-level.
 * - `CHECK_UVM` (XID 159, NONFATAL) -> `restart-app`: a UVM (unified memory) driver problem seen by one
 *   application; the node is not suspect until other evidence says so.
 * - `RESET_GPU` (`COMPONENT_RESET`) -> `reset-gpu`.
 * - `WORKFLOW_XID_48` -> `reset-gpu`: a double-bit ECC error. A reset completes the row remapping;
 *   evidence (`remapped_rows.failure`) escalates to `replace-hardware` when remapping failed.
 * - `NODE_REBOOT`, `RESTART_BM` (bare metal), `RESTART_VM` -> `reboot-node`.
 * - `REPORT_ISSUE`, `UNEXPECTED_ERR_REPORT_ISSUE`, `CONTACT_SUPPORT` -> `needs-operator`: fatal and
 *   unexplained, so quarantine and wait.
 * - `CHECK_MECHANICALS`, `CHECK_THERMALS`, `CHECK_FM_CONFIG`, `UPDATE_SWFW` -> `needs-operator`:
 *   cooling, power, Fabric Manager configuration or firmware are fixed by people, not by a reset.
 * - `WORKFLOW_NVLINK_ERR`, `WORKFLOW_NVLINK5_ERR` -> `needs-operator`: NVSentinel decodes the NVLink
 *   error registers to choose between a reset and a replacement; the alert does not carry them.
 * - `FOLLOW_OTHER_XID` (XID 154, "recovery action changed") -> `needs-operator`: the action is in the
 *   kernel message, not in the alert; the node agent's `gpu_recovery_action` evidence is reported in
 *   the reasons for the operator.
 * - `RUN_DCGMEUD`, `UNKNOWN` -> `needs-operator`.
 * - `RUN_FIELDDIAG` -> `replace-hardware`: NVIDIA's field diagnostic is the RMA gate; the codes that
 *   ask for it (faulty memory, row-remap failure, retired-page limits, SBE/DBE violations) mean
 *   degraded hardware that no reset or reboot returns to service.
 * - `REPLACE_VM` -> `replace-hardware`.
 */
export const NVSENTINEL_ACTION_CLASS: Readonly<Record<NvsentinelAction, RemediationClass>> = {
  NONE: 'ignore',
  IGNORE: 'ignore',
  RESTART_APP: 'restart-app',
  APPLICATION_RESTART: 'restart-app',
  WORKFLOW_XID_45: 'restart-app',
  CHECK_UVM: 'restart-app',
  RESET_GPU: 'reset-gpu',
  COMPONENT_RESET: 'reset-gpu',
  WORKFLOW_XID_48: 'reset-gpu',
  NODE_REBOOT: 'reboot-node',
  RESTART_BM: 'reboot-node',
  RESTART_VM: 'reboot-node',
  REPORT_ISSUE: 'needs-operator',
  UNEXPECTED_ERR_REPORT_ISSUE: 'needs-operator',
  CONTACT_SUPPORT: 'needs-operator',
  CHECK_MECHANICALS: 'needs-operator',
  CHECK_THERMALS: 'needs-operator',
  CHECK_FM_CONFIG: 'needs-operator',
  UPDATE_SWFW: 'needs-operator',
  WORKFLOW_NVLINK_ERR: 'needs-operator',
  WORKFLOW_NVLINK5_ERR: 'needs-operator',
  FOLLOW_OTHER_XID: 'needs-operator',
  RUN_DCGMEUD: 'needs-operator',
  UNKNOWN: 'needs-operator',
  RUN_FIELDDIAG: 'replace-hardware',
  REPLACE_VM: 'replace-hardware',
};

/**
 * Classifies an NVSentinel recommended action (mapping-file spelling or protobuf enum name).
 * Unknown actions are `needs-operator`.
 */
export function classifyNvsentinelAction(action: string): RemediationClass {
  const key = action.trim().toUpperCase();
  return Object.prototype.hasOwnProperty.call(NVSENTINEL_ACTION_CLASS, key)
    ? NVSENTINEL_ACTION_CLASS[key as NvsentinelAction]
    : 'needs-operator';
}

const FATAL = true;
const NONFATAL = false;

/**
 * NVSentinel `xiderrorsmapping.csv`, row for row: XID -> [mnemonic, recommended action, FATAL?].
 * Trailing spaces in three mnemonics (141, 154, 160) are trimmed; XID 162 has no mnemonic upstream.
 */
const XID_ROWS: Readonly<
  Record<number, readonly [mnemonic: string, action: NvsentinelAction, fatal: boolean]>
> = {
  1: ['ROBUST_CHANNEL_FIFO_ERROR_FIFO_METHOD', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  2: ['ROBUST_CHANNEL_FIFO_ERROR_SW_METHOD', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  3: ['ROBUST_CHANNEL_FIFO_ERROR_UNK_METHOD', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  4: ['ROBUST_CHANNEL_FIFO_ERROR_CHANNEL_BUSY', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  5: ['ROBUST_CHANNEL_FIFO_ERROR_RUNOUT_OVERFLOW', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  6: ['ROBUST_CHANNEL_FIFO_ERROR_PARSE_ERR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  7: ['ROBUST_CHANNEL_FIFO_ERROR_PTE_ERR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  8: ['ROBUST_CHANNEL_FIFO_ERROR_IDLE_TIMEOUT', 'RESTART_APP', NONFATAL],
  9: ['ROBUST_CHANNEL_GR_ERROR_INSTANCE', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  10: ['ROBUST_CHANNEL_GR_ERROR_SINGLE_STEP', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  11: ['ROBUST_CHANNEL_GR_ERROR_MISSING_HW', 'RESTART_APP', NONFATAL],
  12: ['ROBUST_CHANNEL_GR_ERROR_SW_METHOD', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  13: ['ROBUST_CHANNEL_GR_EXCEPTION / ROBUST_CHANNEL_GR_ERROR_SW_NOTIFY', 'RESTART_APP', NONFATAL],
  14: ['ROBUST_CHANNEL_FAKE_ERROR', 'IGNORE', NONFATAL],
  15: ['ROBUST_CHANNEL_SCANLINE_TIMEOUT', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  16: ['ROBUST_CHANNEL_VBLANK_CALLBACK_TIMEOUT', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  17: ['ROBUST_CHANNEL_PARAMETER_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  18: ['ROBUST_CHANNEL_BUS_MASTER_TIMEOUT_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  19: ['ROBUST_CHANNEL_DISP_MISSED_NOTIFIER', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  20: ['ROBUST_CHANNEL_MPEG_ERROR_SW_METHOD', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  21: ['ROBUST_CHANNEL_ME_ERROR_SW_METHOD', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  22: ['ROBUST_CHANNEL_VP_ERROR_SW_METHOD', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  23: ['ROBUST_CHANNEL_RC_LOGGING_ENABLED', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  24: ['ROBUST_CHANNEL_GR_SEMAPHORE_TIMEOUT', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  25: ['ROBUST_CHANNEL_GR_ILLEGAL_NOTIFY', 'RESTART_APP', NONFATAL],
  26: ['ROBUST_CHANNEL_FIFO_ERROR_FBISTATE_TIMEOUT', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  27: ['ROBUST_CHANNEL_VP_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  28: ['ROBUST_CHANNEL_VP2_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  29: ['ROBUST_CHANNEL_BSP_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  30: ['ROBUST_CHANNEL_BAD_ADDR_ACCESS', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  31: ['ROBUST_CHANNEL_FIFO_ERROR_MMU_ERR_FLT', 'RESTART_APP', NONFATAL],
  32: ['ROBUST_CHANNEL_PBDMA_ERROR', 'RESTART_APP', NONFATAL],
  33: ['ROBUST_CHANNEL_SEC_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  34: ['ROBUST_CHANNEL_MSVLD_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  35: ['ROBUST_CHANNEL_MSPDEC_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  36: ['ROBUST_CHANNEL_MSPPP_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  37: ['ROBUST_CHANNEL_FECS_ERR_UNIMP_FIRMWARE_METHOD', 'IGNORE', NONFATAL],
  38: ['ROBUST_CHANNEL_FECS_ERR_WATCHDOG_TIMEOUT', 'IGNORE', NONFATAL],
  39: ['ROBUST_CHANNEL_CE0_ERROR', 'RESTART_APP', NONFATAL],
  40: ['ROBUST_CHANNEL_CE1_ERROR', 'RESTART_APP', NONFATAL],
  41: ['ROBUST_CHANNEL_CE2_ERROR', 'RESTART_APP', NONFATAL],
  42: ['ROBUST_CHANNEL_VIC_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  43: ['ROBUST_CHANNEL_RESETCHANNEL_VERIF_ERROR', 'IGNORE', NONFATAL],
  44: ['ROBUST_CHANNEL_GR_FAULT_DURING_CTXSW', 'IGNORE', NONFATAL],
  45: ['ROBUST_CHANNEL_PREEMPTIVE_REMOVAL', 'WORKFLOW_XID_45', NONFATAL],
  46: ['ROBUST_CHANNEL_GPU_TIMEOUT_ERROR', 'RESET_GPU', FATAL],
  47: ['ROBUST_CHANNEL_NVENC0_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  48: ['ROBUST_CHANNEL_GPU_ECC_DBE', 'WORKFLOW_XID_48', FATAL],
  49: ['SILENT_RUNNING_CONSTANT_LEVEL_SET_BY_REGISTRY', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  50: ['SILENT_RUNNING_LEVEL_TRANSITION_DUE_TO_RC_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  51: ['SILENT_RUNNING_STRESS_TEST_FAILURE', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  52: ['SILENT_RUNNING_LEVEL_TRANS_DUE_TO_TEMP_RISE', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  53: ['SILENT_RUNNING_TEMP_REDUCED_CLOCKING', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  54: ['SILENT_RUNNING_PWR_REDUCED_CLOCKING', 'CHECK_MECHANICALS', FATAL],
  55: ['SILENT_RUNNING_TEMPERATURE_READ_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  56: ['DISPLAY_CHANNEL_EXCEPTION', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  57: ['FB_LINK_TRAINING_FAILURE_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  58: ['FB_MEMORY_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  59: ['PMU_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  60: ['ROBUST_CHANNEL_SEC2_ERROR', 'RESTART_APP', NONFATAL],
  61: ['PMU_BREAKPOINT', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  62: ['PMU_HALT_ERROR', 'RESET_GPU', FATAL],
  63: ['INFOROM_DRAM_RETIREMENT_EVENT', 'IGNORE', NONFATAL],
  64: ['INFOROM_DRAM_RETIREMENT_FAILURE', 'RESET_GPU', FATAL],
  65: ['ROBUST_CHANNEL_NVENC1_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  66: ['ROBUST_CHANNEL_FECS_ERR_REG_ACCESS_VIOLATION', 'IGNORE', NONFATAL],
  67: ['ROBUST_CHANNEL_FECS_ERR_VERIF_VIOLATION', 'IGNORE', NONFATAL],
  68: ['ROBUST_CHANNEL_NVDEC0_ERROR', 'RESTART_APP', NONFATAL],
  69: ['ROBUST_CHANNEL_GR_CLASS_ERROR', 'RESTART_APP', NONFATAL],
  70: ['ROBUST_CHANNEL_CE3_ERROR', 'RESTART_APP', NONFATAL],
  71: ['ROBUST_CHANNEL_CE4_ERROR', 'RESTART_APP', NONFATAL],
  72: ['ROBUST_CHANNEL_CE5_ERROR', 'RESTART_APP', NONFATAL],
  73: ['ROBUST_CHANNEL_NVENC2_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  74: ['NVLINK_ERROR', 'WORKFLOW_NVLINK_ERR', FATAL],
  75: ['ROBUST_CHANNEL_CE6_ERROR', 'RESTART_APP', NONFATAL],
  76: ['ROBUST_CHANNEL_CE7_ERROR', 'RESTART_APP', NONFATAL],
  77: ['ROBUST_CHANNEL_CE8_ERROR', 'RESTART_APP', NONFATAL],
  78: ['VGPU_START_ERROR', 'UPDATE_SWFW', FATAL],
  79: ['ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS', 'RESTART_BM', FATAL],
  80: ['PBDMA_PUSHBUFFER_CRC_MISMATCH', 'RESTART_APP', NONFATAL],
  81: ['ROBUST_CHANNEL_VGA_SUBSYSTEM_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  82: ['ROBUST_CHANNEL_NVJPG0_ERROR', 'RESTART_APP', NONFATAL],
  83: ['ROBUST_CHANNEL_NVDEC1_ERROR', 'RESTART_APP', NONFATAL],
  84: ['ROBUST_CHANNEL_NVDEC2_ERROR', 'RESTART_APP', NONFATAL],
  85: ['ROBUST_CHANNEL_CE9_ERROR', 'RESTART_APP', NONFATAL],
  86: ['ROBUST_CHANNEL_OFA0_ERROR', 'RESTART_APP', NONFATAL],
  87: ['NVTELEMETRY_DRIVER_REPORT', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  88: ['ROBUST_CHANNEL_NVDEC3_ERROR', 'RESTART_APP', NONFATAL],
  89: ['ROBUST_CHANNEL_NVDEC4_ERROR', 'RESTART_APP', NONFATAL],
  90: ['LTC_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  91: ['RESERVED_XID', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  92: ['EXCESSIVE_SBE_INTERRUPTS', 'IGNORE', NONFATAL],
  93: ['INFOROM_ERASE_LIMIT_EXCEEDED', 'IGNORE', NONFATAL],
  94: ['ROBUST_CHANNEL_CONTAINED_ERROR', 'RESTART_APP', NONFATAL],
  95: ['ROBUST_CHANNEL_UNCONTAINED_ERROR', 'RESET_GPU', FATAL],
  96: ['ROBUST_CHANNEL_NVDEC5_ERROR', 'RESTART_APP', NONFATAL],
  97: ['ROBUST_CHANNEL_NVDEC6_ERROR', 'RESTART_APP', NONFATAL],
  98: ['ROBUST_CHANNEL_NVDEC7_ERROR', 'RESTART_APP', NONFATAL],
  99: ['ROBUST_CHANNEL_NVJPG1_ERROR', 'RESTART_APP', NONFATAL],
  100: ['ROBUST_CHANNEL_NVJPG2_ERROR', 'RESTART_APP', NONFATAL],
  101: ['ROBUST_CHANNEL_NVJPG3_ERROR', 'RESTART_APP', NONFATAL],
  102: ['ROBUST_CHANNEL_NVJPG4_ERROR', 'RESTART_APP', NONFATAL],
  103: ['ROBUST_CHANNEL_NVJPG5_ERROR', 'RESTART_APP', NONFATAL],
  104: ['ROBUST_CHANNEL_NVJPG6_ERROR', 'RESTART_APP', NONFATAL],
  105: ['ROBUST_CHANNEL_NVJPG7_ERROR', 'RESTART_APP', NONFATAL],
  106: ['SMBPBI_TEST_MESSAGE', 'IGNORE', NONFATAL],
  107: ['SMBPBI_TEST_MESSAGE_SILENT', 'IGNORE', NONFATAL],
  108: ['DESTINATION_FLA_TRANSLATION_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  109: ['ROBUST_CHANNEL_CTXSW_TIMEOUT_ERROR', 'RESET_GPU', FATAL],
  110: ['SEC_FAULT_ERROR', 'RESET_GPU', FATAL],
  111: ['BUNDLE_ERROR_EVENT', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  112: ['DISP_SUPERVISOR_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  113: ['DP_LT_FAILURE', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  114: ['HEAD_RG_UNDERFLOW', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  115: ['CORE_CHANNEL_REGS', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  116: ['WINDOW_CHANNEL_REGS', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  117: ['CURSOR_CHANNEL_REGS', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  118: ['HEAD_REGS', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  119: ['GSP_RPC_TIMEOUT', 'RESET_GPU', FATAL],
  120: ['GSP_ERROR', 'RESET_GPU', FATAL],
  121: ['C2C_ERROR', 'IGNORE', NONFATAL],
  122: ['SPI_PMU_RPC_READ_FAIL', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  123: ['SPI_PMU_RPC_WRITE_FAIL', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  124: ['SPI_PMU_RPC_ERASE_FAIL', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  125: ['INFOROM_FS_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  126: ['ROBUST_CHANNEL_CE10_ERROR', 'RESTART_APP', NONFATAL],
  127: ['ROBUST_CHANNEL_CE11_ERROR', 'RESTART_APP', NONFATAL],
  128: ['ROBUST_CHANNEL_CE12_ERROR', 'RESTART_APP', NONFATAL],
  129: ['ROBUST_CHANNEL_CE13_ERROR', 'RESTART_APP', NONFATAL],
  130: ['ROBUST_CHANNEL_CE14_ERROR', 'RESTART_APP', NONFATAL],
  131: ['ROBUST_CHANNEL_CE15_ERROR', 'RESTART_APP', NONFATAL],
  132: ['ROBUST_CHANNEL_CE16_ERROR', 'RESTART_APP', NONFATAL],
  133: ['ROBUST_CHANNEL_CE17_ERROR', 'RESTART_APP', NONFATAL],
  134: ['ROBUST_CHANNEL_CE18_ERROR', 'RESTART_APP', NONFATAL],
  135: ['ROBUST_CHANNEL_CE19_ERROR', 'RESTART_APP', NONFATAL],
  136: ['ALI_TRAINING_FAIL', 'RESET_GPU', FATAL],
  137: ['NVLINK_FLA_PRIV_ERR', 'IGNORE', NONFATAL],
  138: ['ROBUST_CHANNEL_DLA_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  139: ['ROBUST_CHANNEL_OFA1_ERROR', 'RESTART_APP', NONFATAL],
  140: ['UNRECOVERABLE_ECC_ERROR_ESCAPE', 'RESET_GPU', FATAL],
  141: ['ROBUST_CHANNEL_FAST_PATH_ERROR', 'IGNORE', NONFATAL],
  142: ['ROBUST_CHANNEL_NVENC3_ERROR', 'UNEXPECTED_ERR_REPORT_ISSUE', FATAL],
  143: ['GPU_INIT_ERROR', 'RESET_GPU', FATAL],
  144: ['NVLINK_SAW_ERROR', 'WORKFLOW_NVLINK5_ERR', FATAL],
  145: ['NVLINK_RLW_ERROR', 'WORKFLOW_NVLINK5_ERR', FATAL],
  146: ['NVLINK_TLW_ERROR', 'WORKFLOW_NVLINK5_ERR', FATAL],
  147: ['NVLINK_TREX_ERROR', 'WORKFLOW_NVLINK5_ERR', FATAL],
  148: ['NVLINK_NVLPW_CTRL_ERROR', 'WORKFLOW_NVLINK5_ERR', FATAL],
  149: ['NVLINK_NETIR_ERROR', 'WORKFLOW_NVLINK5_ERR', FATAL],
  150: ['NVLINK_MSE_ERROR', 'WORKFLOW_NVLINK5_ERR', FATAL],
  151: ['ROBUST_CHANNEL_KEY_ROTATION_ERROR', 'RESTART_VM', FATAL],
  152: ['ROBUST_CHANNEL_DLA_SMMU_ERROR', 'IGNORE', NONFATAL],
  153: ['ROBUST_CHANNEL_DLA_TIMEOUT', 'IGNORE', NONFATAL],
  154: ['GPU_RECOVERY_ACTION_CHANGED', 'FOLLOW_OTHER_XID', NONFATAL],
  155: ['NVLINK_SW_DEFINED_ERROR', 'RESET_GPU', FATAL],
  156: ['RESOURCE_RETIREMENT_EVENT', 'RESET_GPU', FATAL],
  157: ['RESOURCE_RETIREMENT_FAILURE', 'IGNORE', NONFATAL],
  158: ['GPU_FATAL_TIMEOUT', 'RESET_GPU', FATAL],
  159: ['ROBUST_CHANNEL_CHI_NON_DATA_ERROR', 'CHECK_UVM', NONFATAL],
  160: ['CHANNEL_RETIREMENT_EVENT', 'RESTART_BM', FATAL],
  161: ['CHANNEL_RETIREMENT_FAILURE', 'IGNORE', NONFATAL],
  162: ['', 'RESET_GPU', FATAL],
};

/** One row of NVSentinel's XID mapping. */
export interface XidMapping {
  readonly xid: number;
  /** The driver's name for the error, e.g. `ROBUST_CHANNEL_GPU_ECC_DBE`; empty when NVSentinel has none. */
  readonly mnemonic: string;
  /** NVSentinel's recommended immediate action. */
  readonly action: NvsentinelAction;
  /** NVSentinel's FATAL/NONFATAL column. */
  readonly fatal: boolean;
}

/** The NVSentinel mapping row for an XID, or `undefined` when the XID is not in the table. */
export function xidMapping(xid: number): XidMapping | undefined {
  const row = Number.isInteger(xid) ? XID_ROWS[xid] : undefined;
  return row === undefined ? undefined : { xid, mnemonic: row[0], action: row[1], fatal: row[2] };
}

/** Every XID in NVSentinel's table, ascending. */
export const KNOWN_XIDS: readonly number[] = Object.keys(XID_ROWS)
  .map(Number)
  .sort((a, b) => a - b);

/**
 * Where fleetmedic's XID class differs from what NVSentinel's action would give, and why.
 *
 * The XIDs NVIDIA's device plugin ignores by default as application-level (13, 31, 43, 45, 68, 109) all
 * restart the application. Two of them differ from NVSentinel:
 * - 43 (`ROBUST_CHANNEL_RESETCHANNEL_VERIF_ERROR`): NVSentinel IGNORE. The GPU stopped processing the
 *   application's channel, so the application must restart to make progress: `restart-app`.
 * - 109 (`ROBUST_CHANNEL_CTXSW_TIMEOUT_ERROR`): NVSentinel RESET_GPU (FATAL). A context-switch timeout
 *   is caused by the application in the common case; quarantining a whole node for it would drain
 *   healthy capacity on every misbehaving kernel. Operators who see it repeat on one GPU can override it
 *   to `reset-gpu` (`classifyXid(109, { 109: 'reset-gpu' })`).
 *
 * The rest of the reference list agrees with NVSentinel: 79 -> RESTART_BM (`reboot-node`); 48
 * (WORKFLOW_XID_48), 95, 140 (ECC) and 62, 64, 119, 120 -> RESET_GPU (`reset-gpu`).
 */
export const FLEETMEDIC_XID_DEVIATIONS: Readonly<
  Partial<Record<number, { readonly class: RemediationClass; readonly why: string }>>
> = {
  43: {
    class: 'restart-app',
    why: 'the GPU stopped processing the application channel; the application must restart (NVSentinel: IGNORE)',
  },
  109: {
    class: 'restart-app',
    why: 'context-switch timeout, application-level in the common case (NVSentinel: RESET_GPU); override to reset-gpu if it repeats',
  },
};

/** Where a classification came from. */
export type ClassificationSource = 'nvsentinel' | 'fleetmedic' | 'override' | 'unmapped';

/** The class of one fault code and a human reason that names the code and the table row. */
export interface Classification {
  readonly class: RemediationClass;
  readonly reason: string;
  readonly source: ClassificationSource;
}

/** Per-XID class overrides from configuration. */
export type XidOverrides = Readonly<Partial<Record<number, RemediationClass>>>;

/** Per-code class overrides from configuration, keyed by `DCGM_FR_*` name. */
export type DcgmOverrides = Readonly<Partial<Record<string, RemediationClass>>>;

/**
 * Classifies an XID.
 *
 * Order: a valid configuration override, then {@link FLEETMEDIC_XID_DEVIATIONS}, then NVSentinel's row
 * through {@link NVSENTINEL_ACTION_CLASS}. An XID that is not a positive integer, or not in the table,
 * is `needs-operator`.
 *
 * @param xid - the XID number, e.g. from dcgm-exporter's `xid` label or `DCGM_FI_DEV_XID_ERRORS`
 * @param overrides - configuration overrides; values that are not a remediation class are ignored
 * @example classifyXid(79).class // 'reboot-node'
 */
export function classifyXid(xid: number, overrides?: XidOverrides): Classification {
  if (!Number.isInteger(xid) || xid <= 0) {
    return {
      class: 'needs-operator',
      source: 'unmapped',
      reason: `XID ${String(xid)} is not a valid XID number`,
    };
  }
  const row = xidMapping(xid);
  const label = row?.mnemonic ? `XID ${xid} (${row.mnemonic})` : `XID ${xid}`;
  const override = overrides?.[xid];
  if (isRemediationClass(override)) {
    return { class: override, source: 'override', reason: `${label}: configured as ${override}` };
  }
  const deviation = FLEETMEDIC_XID_DEVIATIONS[xid];
  if (deviation !== undefined) {
    return { class: deviation.class, source: 'fleetmedic', reason: `${label}: ${deviation.why}` };
  }
  if (row === undefined) {
    return {
      class: 'needs-operator',
      source: 'unmapped',
      reason: `${label} is not in the XID table; quarantine and wait for an operator`,
    };
  }
  const cls = NVSENTINEL_ACTION_CLASS[row.action];
  return {
    class: cls,
    source: 'nvsentinel',
    reason: `${label}: NVSentinel ${row.action} (${row.fatal ? 'FATAL' : 'NONFATAL'}) -> ${cls}`,
  };
}

/**
 * DCGM health and diagnostic error codes (`dcgmError_t` in DCGM's `dcgm_errors.h`): name ->
 * [numeric id, NVSentinel action or `null` when the code is newer than NVSentinel's table].
 * Deprecated aliases share their id with the current name; the first name listed for an id is the one a
 * numeric code resolves to. `DCGM_FR_ERROR_SENTINEL` moves with every release, so it has no id here.
 */
const DCGM_ROWS = {
  DCGM_FR_UNKNOWN: [1, 'REPORT_ISSUE'],
  DCGM_FR_UNRECOGNIZED: [2, 'REPORT_ISSUE'],
  DCGM_FR_PCI_REPLAY_RATE: [3, 'REPORT_ISSUE'],
  DCGM_FR_VOLATILE_DBE_DETECTED: [4, 'RESET_GPU'],
  DCGM_FR_VOLATILE_SBE_DETECTED: [5, 'IGNORE'],
  DCGM_FR_PENDING_PAGE_RETIREMENTS: [6, 'IGNORE'],
  DCGM_FR_RETIRED_PAGES_LIMIT: [7, 'RUN_FIELDDIAG'],
  DCGM_FR_RETIRED_PAGES_DBE_LIMIT: [8, 'RUN_FIELDDIAG'],
  DCGM_FR_CORRUPT_INFOROM: [9, 'RESET_GPU'],
  DCGM_FR_CLOCKS_EVENT_THERMAL: [10, 'CHECK_THERMALS'],
  DCGM_FR_CLOCK_THROTTLE_THERMAL: [10, 'IGNORE'],
  DCGM_FR_POWER_UNREADABLE: [11, 'NODE_REBOOT'],
  DCGM_FR_CLOCKS_EVENT_POWER: [12, 'IGNORE'],
  DCGM_FR_CLOCK_THROTTLE_POWER: [12, 'IGNORE'],
  DCGM_FR_NVLINK_ERROR_THRESHOLD: [13, 'IGNORE'],
  DCGM_FR_NVLINK_DOWN: [14, 'NODE_REBOOT'],
  DCGM_FR_NVSWITCH_FATAL_ERROR: [15, 'RUN_FIELDDIAG'],
  DCGM_FR_NVSWITCH_NON_FATAL_ERROR: [16, 'IGNORE'],
  DCGM_FR_NVSWITCH_DOWN: [17, 'RESET_GPU'],
  DCGM_FR_NO_ACCESS_TO_FILE: [18, 'REPORT_ISSUE'],
  DCGM_FR_NVML_API: [19, 'REPORT_ISSUE'],
  DCGM_FR_DEVICE_COUNT_MISMATCH: [20, 'REPORT_ISSUE'],
  DCGM_FR_BAD_PARAMETER: [21, 'REPORT_ISSUE'],
  DCGM_FR_CANNOT_OPEN_LIB: [22, 'REPORT_ISSUE'],
  DCGM_FR_DENYLISTED_DRIVER: [23, 'REPORT_ISSUE'],
  DCGM_FR_NVML_LIB_BAD: [24, 'REPORT_ISSUE'],
  DCGM_FR_GRAPHICS_PROCESSES: [25, 'REPORT_ISSUE'],
  DCGM_FR_HOSTENGINE_CONN: [26, 'REPORT_ISSUE'],
  DCGM_FR_FIELD_QUERY: [27, 'NODE_REBOOT'],
  DCGM_FR_BAD_CUDA_ENV: [28, 'REPORT_ISSUE'],
  DCGM_FR_PERSISTENCE_MODE: [29, 'REPORT_ISSUE'],
  DCGM_FR_LOW_BANDWIDTH: [30, 'REPORT_ISSUE'],
  DCGM_FR_HIGH_LATENCY: [31, 'REPORT_ISSUE'],
  DCGM_FR_CANNOT_GET_FIELD_TAG: [32, 'REPORT_ISSUE'],
  DCGM_FR_FIELD_VIOLATION: [33, 'NODE_REBOOT'],
  DCGM_FR_FIELD_THRESHOLD: [34, 'NODE_REBOOT'],
  DCGM_FR_FIELD_VIOLATION_DBL: [35, 'NODE_REBOOT'],
  DCGM_FR_FIELD_THRESHOLD_DBL: [36, 'NODE_REBOOT'],
  DCGM_FR_UNSUPPORTED_FIELD_TYPE: [37, 'NODE_REBOOT'],
  DCGM_FR_FIELD_THRESHOLD_TS: [38, 'NODE_REBOOT'],
  DCGM_FR_FIELD_THRESHOLD_TS_DBL: [39, 'NODE_REBOOT'],
  DCGM_FR_THERMAL_VIOLATIONS: [40, 'CHECK_THERMALS'],
  DCGM_FR_THERMAL_VIOLATIONS_TS: [41, 'CHECK_THERMALS'],
  DCGM_FR_TEMP_VIOLATION: [42, 'CHECK_THERMALS'],
  DCGM_FR_CLOCKS_EVENT_VIOLATION: [43, 'NODE_REBOOT'],
  DCGM_FR_THROTTLING_VIOLATION: [43, 'NODE_REBOOT'],
  DCGM_FR_INTERNAL: [44, 'REPORT_ISSUE'],
  DCGM_FR_PCIE_GENERATION: [45, 'REPORT_ISSUE'],
  DCGM_FR_PCIE_WIDTH: [46, 'REPORT_ISSUE'],
  DCGM_FR_ABORTED: [47, 'IGNORE'],
  DCGM_FR_TEST_DISABLED: [48, 'IGNORE'],
  DCGM_FR_CANNOT_GET_STAT: [49, 'REPORT_ISSUE'],
  DCGM_FR_STRESS_LEVEL: [50, 'NODE_REBOOT'],
  DCGM_FR_CUDA_API: [51, 'REPORT_ISSUE'],
  DCGM_FR_FAULTY_MEMORY: [52, 'RUN_FIELDDIAG'],
  DCGM_FR_CANNOT_SET_WATCHES: [53, 'NODE_REBOOT'],
  DCGM_FR_CUDA_UNBOUND: [54, 'NODE_REBOOT'],
  DCGM_FR_ECC_DISABLED: [55, 'REPORT_ISSUE'],
  DCGM_FR_MEMORY_ALLOC: [56, 'NODE_REBOOT'],
  DCGM_FR_CUDA_DBE: [57, 'RUN_FIELDDIAG'],
  DCGM_FR_MEMORY_MISMATCH: [58, 'RUN_FIELDDIAG'],
  DCGM_FR_CUDA_DEVICE: [59, 'REPORT_ISSUE'],
  DCGM_FR_ECC_UNSUPPORTED: [60, 'REPORT_ISSUE'],
  DCGM_FR_ECC_PENDING: [61, 'NODE_REBOOT'],
  DCGM_FR_MEMORY_BANDWIDTH: [62, 'NODE_REBOOT'],
  DCGM_FR_TARGET_POWER: [63, 'IGNORE'],
  DCGM_FR_API_FAIL: [64, 'NODE_REBOOT'],
  DCGM_FR_API_FAIL_GPU: [65, 'NODE_REBOOT'],
  DCGM_FR_CUDA_CONTEXT: [66, 'REPORT_ISSUE'],
  DCGM_FR_DCGM_API: [67, 'NODE_REBOOT'],
  DCGM_FR_CONCURRENT_GPUS: [68, 'REPORT_ISSUE'],
  DCGM_FR_TOO_MANY_ERRORS: [69, 'REPORT_ISSUE'],
  DCGM_FR_NVLINK_CRC_ERROR_THRESHOLD: [70, 'RUN_FIELDDIAG'],
  DCGM_FR_NVLINK_ERROR_CRITICAL: [71, 'RUN_FIELDDIAG'],
  DCGM_FR_ENFORCED_POWER_LIMIT: [72, 'REPORT_ISSUE'],
  DCGM_FR_MEMORY_ALLOC_HOST: [73, 'NODE_REBOOT'],
  DCGM_FR_GPU_OP_MODE: [74, 'REPORT_ISSUE'],
  DCGM_FR_NO_MEMORY_CLOCKS: [75, 'REPORT_ISSUE'],
  DCGM_FR_NO_GRAPHICS_CLOCKS: [76, 'IGNORE'],
  DCGM_FR_HAD_TO_RESTORE_STATE: [77, 'NODE_REBOOT'],
  DCGM_FR_L1TAG_UNSUPPORTED: [78, 'REPORT_ISSUE'],
  DCGM_FR_L1TAG_MISCOMPARE: [79, 'RUN_FIELDDIAG'],
  DCGM_FR_ROW_REMAP_FAILURE: [80, 'RUN_FIELDDIAG'],
  DCGM_FR_UNCONTAINED_ERROR: [81, 'NODE_REBOOT'],
  DCGM_FR_EMPTY_GPU_LIST: [82, 'REPORT_ISSUE'],
  DCGM_FR_DBE_PENDING_PAGE_RETIREMENTS: [83, 'NODE_REBOOT'],
  DCGM_FR_UNCORRECTABLE_ROW_REMAP: [84, 'IGNORE'],
  DCGM_FR_PENDING_ROW_REMAP: [85, 'RESET_GPU'],
  DCGM_FR_BROKEN_P2P_MEMORY_DEVICE: [86, 'REPORT_ISSUE'],
  DCGM_FR_BROKEN_P2P_WRITER_DEVICE: [87, 'REPORT_ISSUE'],
  DCGM_FR_NVSWITCH_NVLINK_DOWN: [88, 'CHECK_FM_CONFIG'],
  DCGM_FR_EUD_BINARY_PERMISSIONS: [89, 'REPORT_ISSUE'],
  DCGM_FR_EUD_NON_ROOT_USER: [90, 'REPORT_ISSUE'],
  DCGM_FR_EUD_SPAWN_FAILURE: [91, 'REPORT_ISSUE'],
  DCGM_FR_EUD_TIMEOUT: [92, 'REPORT_ISSUE'],
  DCGM_FR_EUD_ZOMBIE: [93, 'REPORT_ISSUE'],
  DCGM_FR_EUD_NON_ZERO_EXIT_CODE: [94, 'REPORT_ISSUE'],
  DCGM_FR_EUD_TEST_FAILED: [95, 'REPORT_ISSUE'],
  DCGM_FR_FILE_CREATE_PERMISSIONS: [96, 'REPORT_ISSUE'],
  DCGM_FR_PAUSE_RESUME_FAILED: [97, 'REPORT_ISSUE'],
  DCGM_FR_PCIE_H_REPLAY_VIOLATION: [98, 'REPORT_ISSUE'],
  DCGM_FR_GPU_EXPECTED_NVLINKS_UP: [99, 'CHECK_FM_CONFIG'],
  DCGM_FR_NVSWITCH_EXPECTED_NVLINKS_UP: [100, 'CHECK_FM_CONFIG'],
  DCGM_FR_XID_ERROR: [101, 'NONE'],
  DCGM_FR_SBE_VIOLATION: [102, 'RUN_FIELDDIAG'],
  DCGM_FR_DBE_VIOLATION: [103, 'RUN_FIELDDIAG'],
  DCGM_FR_PCIE_REPLAY_VIOLATION: [104, 'RUN_FIELDDIAG'],
  DCGM_FR_SBE_THRESHOLD_VIOLATION: [105, 'RUN_FIELDDIAG'],
  DCGM_FR_DBE_THRESHOLD_VIOLATION: [106, 'RUN_FIELDDIAG'],
  DCGM_FR_PCIE_REPLAY_THRESHOLD_VIOLATION: [107, 'RUN_FIELDDIAG'],
  DCGM_FR_CUDA_FM_NOT_INITIALIZED: [108, 'REPORT_ISSUE'],
  DCGM_FR_SXID_ERROR: [109, 'NODE_REBOOT'],
  DCGM_FR_GFLOPS_THRESHOLD_VIOLATION: [110, 'REPORT_ISSUE'],
  DCGM_FR_NAN_VALUE: [111, 'RUN_FIELDDIAG'],
  DCGM_FR_FABRIC_MANAGER_TRAINING_ERROR: [112, 'CHECK_FM_CONFIG'],
  DCGM_FR_BROKEN_P2P_PCIE_MEMORY_DEVICE: [113, 'REPORT_ISSUE'],
  DCGM_FR_BROKEN_P2P_PCIE_WRITER_DEVICE: [114, 'REPORT_ISSUE'],
  DCGM_FR_BROKEN_P2P_NVLINK_MEMORY_DEVICE: [115, 'REPORT_ISSUE'],
  DCGM_FR_BROKEN_P2P_NVLINK_WRITER_DEVICE: [116, 'REPORT_ISSUE'],
  DCGM_FR_TEST_SKIPPED: [117, 'IGNORE'],
  DCGM_FR_SRAM_THRESHOLD: [118, null],
  DCGM_FR_NVLINK_EFFECTIVE_BER_THRESHOLD: [119, null],
  DCGM_FR_FALLEN_OFF_BUS: [120, null],
  DCGM_FR_NVLINK_SYMBOL_BER_THRESHOLD: [121, null],
  DCGM_FR_IMEX_UNHEALTHY: [122, null],
  DCGM_FR_FABRIC_PROBE_STATE: [123, null],
  DCGM_FR_BINARY_PERMISSIONS: [124, null],
  DCGM_FR_GPU_RECOVERY_RESET: [125, null],
  DCGM_FR_GPU_RECOVERY_REBOOT: [126, null],
  DCGM_FR_GPU_RECOVERY_DRAIN_P2P: [127, null],
  DCGM_FR_GPU_RECOVERY_DRAIN_RESET: [128, null],
  DCGM_FR_NCCL_ERROR: [129, null],
  DCGM_FR_RETEST_REQUESTED: [130, null],
  DCGM_FR_CONTAINED_ERROR: [131, null],
  DCGM_FR_UNCORRECTABLE_ROW_REMAP_LIMIT: [132, null],
  DCGM_FR_ERROR_SENTINEL: [null, 'IGNORE'],
} as const satisfies Record<string, readonly [number | null, NvsentinelAction | null]>;

/** Every `DCGM_FR_*` name fleetmedic knows (DCGM 4.6 plus deprecated aliases), except `DCGM_FR_OK`. */
export type DcgmErrorName = keyof typeof DCGM_ROWS | 'DCGM_FR_OK';

/** Old names DCGM renamed without keeping an alias in `dcgm_errors.h`. */
const DCGM_RENAMED: Readonly<Record<string, DcgmErrorName>> = {
  DCGM_FR_BLACKLISTED_DRIVER: 'DCGM_FR_DENYLISTED_DRIVER',
};

const DCGM_NAME_BY_ID: ReadonlyMap<number, DcgmErrorName> = (() => {
  const byId = new Map<number, DcgmErrorName>([[0, 'DCGM_FR_OK']]);
  for (const name of Object.keys(DCGM_ROWS) as (keyof typeof DCGM_ROWS)[]) {
    const id = DCGM_ROWS[name][0];
    if (id !== null && !byId.has(id)) byId.set(id, name);
  }
  return byId;
})();

/**
 * Where fleetmedic classifies a DCGM code without (or unlike) an NVSentinel row, and why.
 * - `DCGM_FR_XID_ERROR` (NVSentinel NONE): the code itself says only "an XID happened"; the XID is
 *   classified on its own, from the alert or from the health message ({@link refineWithEvidence}).
 * - Codes added in DCGM 4.x after NVSentinel's table: the GPU recovery actions map to what they say
 *   (reset, reboot, drain-and-reset; drain-P2P needs an operator); `FALLEN_OFF_BUS` is XID 79
 *   (`reboot-node`); `CONTAINED_ERROR` is XID 94 (`restart-app`); `UNCORRECTABLE_ROW_REMAP_LIMIT`
 *   means the memory has run out of spare rows (`replace-hardware`). Other new codes stay unmapped
 *   (`needs-operator`).
 */
export const FLEETMEDIC_DCGM_CLASSES: Readonly<
  Partial<Record<DcgmErrorName, { readonly class: RemediationClass; readonly why: string }>>
> = {
  DCGM_FR_OK: { class: 'ignore', why: 'no error' },
  DCGM_FR_XID_ERROR: {
    class: 'ignore',
    why: 'the XID itself is classified separately (NVSentinel: NONE)',
  },
  DCGM_FR_FALLEN_OFF_BUS: { class: 'reboot-node', why: 'the GPU fell off the bus (as XID 79)' },
  DCGM_FR_GPU_RECOVERY_RESET: { class: 'reset-gpu', why: 'the driver asks for a GPU reset' },
  DCGM_FR_GPU_RECOVERY_DRAIN_RESET: { class: 'reset-gpu', why: 'the driver asks to drain and reset the GPU' },
  DCGM_FR_GPU_RECOVERY_REBOOT: { class: 'reboot-node', why: 'the driver asks for a node reboot' },
  DCGM_FR_GPU_RECOVERY_DRAIN_P2P: {
    class: 'needs-operator',
    why: 'the driver asks to quiesce peer-to-peer traffic; an operator decides',
  },
  DCGM_FR_CONTAINED_ERROR: {
    class: 'restart-app',
    why: 'a contained error (as XID 94) affects one application',
  },
  DCGM_FR_UNCORRECTABLE_ROW_REMAP_LIMIT: {
    class: 'replace-hardware',
    why: 'the GPU exceeded its uncorrectable row-remap limit',
  },
};

/**
 * Normalises a DCGM error code to its `DCGM_FR_*` name.
 *
 * Accepts the full name (`DCGM_FR_VOLATILE_DBE_DETECTED`), the name without the prefix
 * (`VOLATILE_DBE_DETECTED`), any letter case, the numeric id (4) or a numeric string ("4"). Returns
 * `undefined` for anything else.
 */
export function dcgmErrorName(code: string | number): DcgmErrorName | undefined {
  if (typeof code === 'number') {
    return Number.isInteger(code) ? DCGM_NAME_BY_ID.get(code) : undefined;
  }
  const trimmed = code.trim();
  if (/^\d+$/.test(trimmed)) return DCGM_NAME_BY_ID.get(Number(trimmed));
  const upper = trimmed.toUpperCase();
  const name = upper.startsWith('DCGM_FR_') ? upper : `DCGM_FR_${upper}`;
  if (name === 'DCGM_FR_OK') return 'DCGM_FR_OK';
  if (Object.prototype.hasOwnProperty.call(DCGM_ROWS, name)) return name as DcgmErrorName;
  return DCGM_RENAMED[name];
}

/** The numeric `dcgmError_t` value of a code name, or `undefined` when it has none. */
export function dcgmErrorId(name: DcgmErrorName): number | undefined {
  if (name === 'DCGM_FR_OK') return 0;
  return DCGM_ROWS[name][0] ?? undefined;
}

/** The NVSentinel action for a DCGM code, or `undefined` when NVSentinel's table has no row for it. */
export function dcgmNvsentinelAction(name: DcgmErrorName): NvsentinelAction | undefined {
  if (name === 'DCGM_FR_OK') return undefined;
  return DCGM_ROWS[name][1] ?? undefined;
}

/** Every DCGM code name in the table (aliases included, `DCGM_FR_OK` excluded). */
export const KNOWN_DCGM_ERRORS: readonly DcgmErrorName[] = Object.keys(DCGM_ROWS) as DcgmErrorName[];

/**
 * Classifies a DCGM health or diagnostic error code.
 *
 * Order: a valid configuration override (keyed by `DCGM_FR_*` name), then
 * {@link FLEETMEDIC_DCGM_CLASSES}, then NVSentinel's row through {@link NVSENTINEL_ACTION_CLASS}.
 * Unknown codes are `needs-operator`.
 *
 * @param code - a `DCGM_FR_*` name (with or without prefix) or its numeric id
 * @param overrides - configuration overrides keyed by `DCGM_FR_*` name
 * @example classifyDcgm('DCGM_FR_VOLATILE_DBE_DETECTED').class // 'reset-gpu'
 * @example classifyDcgm(80).class // 'replace-hardware' (DCGM_FR_ROW_REMAP_FAILURE)
 */
export function classifyDcgm(code: string | number, overrides?: DcgmOverrides): Classification {
  const name = dcgmErrorName(code);
  if (name === undefined) {
    return {
      class: 'needs-operator',
      source: 'unmapped',
      reason: `DCGM error ${String(code)} is not a known code; quarantine and wait for an operator`,
    };
  }
  const override = overrides?.[name];
  if (isRemediationClass(override)) {
    return { class: override, source: 'override', reason: `${name}: configured as ${override}` };
  }
  const own = FLEETMEDIC_DCGM_CLASSES[name];
  if (own !== undefined) {
    return { class: own.class, source: 'fleetmedic', reason: `${name}: ${own.why}` };
  }
  const action = dcgmNvsentinelAction(name);
  if (action === undefined) {
    return {
      class: 'needs-operator',
      source: 'unmapped',
      reason: `${name} has no mapping; quarantine and wait for an operator`,
    };
  }
  const cls = NVSENTINEL_ACTION_CLASS[action];
  return { class: cls, source: 'nvsentinel', reason: `${name}: NVSentinel ${action} -> ${cls}` };
}

// ---------------------------------------------------------------------------------------------------
// Evidence refinement

/** DCGM's health verdicts, as `dcgmi health -c` prints them. */
export type DcgmHealthStatus = 'Healthy' | 'Warning' | 'Failure' | 'Internal error';

/** One error recognised in a health incident's message. */
export interface HealthErrorEvidence {
  /** The `DCGM_FR_*` name the message matched. */
  readonly code: DcgmErrorName;
  /** The GPU the message names, when it names one. */
  readonly gpu: number | null;
  /** For `DCGM_FR_XID_ERROR`: the XID the message names. */
  readonly xid?: number;
}

/** One system's verdict for one entity in a `dcgmi health -c` report. */
export interface HealthIncidentEvidence {
  /** Entity group and id, e.g. `GPU 0`. */
  readonly entity: string;
  /** DCGM's system name, e.g. `Memory system`. */
  readonly system: string;
  readonly health: DcgmHealthStatus;
  /** The incident messages, joined. */
  readonly message: string;
  /** The errors recognised in the message; empty when none was recognised. */
  readonly errors: readonly HealthErrorEvidence[];
}

/** A parsed `dcgmi health -c` result (see `parseDcgmiHealth`). */
export type HealthEvidence =
  | { readonly kind: 'no-watches'; readonly message: string }
  | {
      readonly kind: 'report';
      readonly overall: DcgmHealthStatus;
      readonly incidents: readonly HealthIncidentEvidence[];
    };

/** One error reported by `dcgmi diag`. */
export interface DiagErrorEvidence {
  readonly test: string;
  /** The numeric DCGM error code, when the output carries one. */
  readonly code: number | null;
  readonly name: DcgmErrorName | null;
  readonly message: string;
  readonly gpu: number | null;
  /** The status of the result the error belongs to (`Fail`, `Warn`, ...). */
  readonly status: string;
}

/** A parsed `dcgmi diag` result (see `parseDcgmiDiag`). */
export interface DiagEvidence {
  readonly passed: boolean;
  /** Set when the diagnostic did not run at all. */
  readonly runtimeError: string | null;
  readonly errors: readonly DiagErrorEvidence[];
}

/** One `nvidia-smi --query-gpu` row keyed by field name (see `parseQueryGpu`). */
export type GpuQueryEvidence = Readonly<Record<string, string | number | boolean | null>>;

/** Everything the node agent found on the node. Every part is optional. */
export interface TriageEvidence {
  readonly health?: HealthEvidence;
  readonly gpus?: readonly GpuQueryEvidence[];
  /** `nvidia-smi` lines for GPUs it could not open ("Unable to determine the device handle ..."). */
  readonly unreachableGpus?: readonly string[];
  /** How many GPUs the node should have (e.g. its `nvidia.com/gpu` capacity). */
  readonly expectedGpuCount?: number;
  readonly diag?: DiagEvidence;
}

/** Configuration overrides that also apply to codes found in evidence. */
export interface RefinementOptions {
  readonly xidOverrides?: XidOverrides;
  readonly dcgmOverrides?: DcgmOverrides;
}

/** The refined class and every reason that shaped it, the alert's first. */
export interface Refinement {
  readonly class: RemediationClass;
  readonly reasons: readonly string[];
  /** True when the evidence raised the class above the alert's. */
  readonly escalated: boolean;
}

/**
 * Refines an alert's class with on-node evidence. Evidence can only escalate: the result is never
 * less severe than `alertClass`.
 *
 * - `dcgmi health`: a Failure incident escalates to its code's class (an XID named in the message is
 *   classified as that XID; an unrecognised message is `needs-operator`). A Warning escalates only up
 *   to `reset-gpu`: DCGM says the GPU can keep working, so a warning may ask for a reset (e.g. pending
 *   row remapping) but never quarantines a node on its own for an operator. "Healthy" and "no watches"
 *   change nothing: a fresh watch reports Healthy before it has sampled.
 * - `nvidia-smi` rows: `remapped_rows.failure` Yes -> `replace-hardware`; `remapped_rows.pending` Yes,
 *   `retired_pages.pending` Yes or uncorrected volatile ECC errors -> at least `reset-gpu`;
 *   `gpu_recovery_action` Reset / Drain and Reset -> `reset-gpu`, Reboot -> `reboot-node`, Drain P2P or
 *   an unknown action -> `needs-operator`.
 * - A GPU `nvidia-smi` cannot open, or fewer GPUs than expected -> `reboot-node` (fell off the bus).
 * - `dcgmi diag`: each error of a failed result escalates to its code's class; a failed diagnostic
 *   with no code -> `needs-operator`.
 *
 * @param alertClass - the class of the alert that started the remediation
 * @param evidence - what the node agent found; missing parts are skipped
 * @param options - configuration overrides for XIDs and DCGM codes found in the evidence
 */
export function refineWithEvidence(
  alertClass: RemediationClass,
  evidence: TriageEvidence,
  options: RefinementOptions = {},
): Refinement {
  let cls = alertClass;
  const reasons: string[] = [`alert: ${alertClass} (${describeClass(alertClass)})`];
  const raise = (to: RemediationClass, why: string): void => {
    const next = maxClass(cls, to);
    reasons.push(next === cls ? `${why} (keeps ${cls})` : `${why} -> ${next}`);
    cls = next;
  };

  if (evidence.health !== undefined) refineWithHealth(evidence.health, options, raise, reasons);
  if (evidence.gpus !== undefined) refineWithGpuRows(evidence.gpus, raise);
  for (const line of evidence.unreachableGpus ?? []) {
    raise('reboot-node', `nvidia-smi cannot open a GPU: "${line}"`);
  }
  const expected = evidence.expectedGpuCount;
  if (evidence.gpus !== undefined && expected !== undefined && evidence.gpus.length < expected) {
    raise('reboot-node', `nvidia-smi lists ${evidence.gpus.length} of ${expected} GPUs (fell off the bus?)`);
  }
  if (evidence.diag !== undefined) refineWithDiag(evidence.diag, options, raise, reasons);

  return { class: cls, reasons, escalated: severityOf(cls) > severityOf(alertClass) };
}

type Raise = (to: RemediationClass, why: string) => void;

function refineWithHealth(
  health: HealthEvidence,
  options: RefinementOptions,
  raise: Raise,
  reasons: string[],
): void {
  if (health.kind === 'no-watches') {
    reasons.push('dcgmi health: no watches set, so the health check says nothing yet');
    return;
  }
  if (health.overall === 'Healthy' && health.incidents.length === 0) {
    reasons.push(
      'dcgmi health: Healthy (never lowers a class: a fresh watch reports Healthy before sampling)',
    );
    return;
  }
  for (const incident of health.incidents) {
    const where = `dcgmi health ${incident.entity} ${incident.system} ${incident.health}`;
    if (incident.health !== 'Failure' && incident.health !== 'Warning') {
      reasons.push(`${where}: "${incident.message}" (no class change)`);
      continue;
    }
    const found = incident.errors.map((error) => classifyHealthError(error, options));
    if (found.length === 0) {
      if (incident.health === 'Failure') {
        raise('needs-operator', `${where}: unrecognised message "${incident.message}"`);
      } else {
        reasons.push(`${where}: unrecognised message "${incident.message}" (no class change)`);
      }
      continue;
    }
    for (const c of found) {
      if (incident.health === 'Warning' && severityOf(c.class) > severityOf('reset-gpu')) {
        reasons.push(`${where}: ${c.reason} (a warning alone does not raise past reset-gpu)`);
      } else {
        raise(c.class, `${where}: ${c.reason}`);
      }
    }
  }
}

function classifyHealthError(error: HealthErrorEvidence, options: RefinementOptions): Classification {
  if (error.code === 'DCGM_FR_XID_ERROR' && error.xid !== undefined) {
    return classifyXid(error.xid, options.xidOverrides);
  }
  return classifyDcgm(error.code, options.dcgmOverrides);
}

function refineWithGpuRows(rows: readonly GpuQueryEvidence[], raise: Raise): void {
  for (const row of rows) {
    const gpu = `GPU ${String(row['index'] ?? row['uuid'] ?? '?')}`;
    if (yes(row['remapped_rows.failure'])) {
      raise('replace-hardware', `${gpu}: remapped_rows.failure=Yes (row remapping failed)`);
    }
    if (yes(row['remapped_rows.pending'])) {
      raise('reset-gpu', `${gpu}: remapped_rows.pending=Yes (a reset completes the remapping)`);
    }
    if (yes(row['retired_pages.pending'])) {
      raise('reset-gpu', `${gpu}: retired_pages.pending=Yes (a reset retires the pages)`);
    }
    const ecc = count(row['ecc.errors.uncorrected.volatile.total']);
    if (ecc !== null && ecc > 0) {
      raise('reset-gpu', `${gpu}: ${ecc} uncorrected volatile ECC error(s)`);
    }
    const action = row['gpu_recovery_action'];
    if (typeof action === 'string' && action.trim() !== '') {
      const cls = recoveryActionClass(action);
      if (cls !== undefined) raise(cls, `${gpu}: gpu_recovery_action=${action}`);
    }
  }
}

/**
 * The class NVML's GPU recovery action asks for (`nvmlGpuRecoveryAction_t`: None, GPU reset, node
 * reboot, drain P2P, drain and reset); `undefined` for "None". Unknown strings are `needs-operator`.
 */
function recoveryActionClass(action: string): RemediationClass | undefined {
  const a = action.trim().toLowerCase();
  if (a === 'none' || a === '0') return undefined;
  if (a.includes('reboot')) return 'reboot-node';
  if (a.includes('p2p')) return 'needs-operator';
  if (a.includes('reset')) return 'reset-gpu';
  return 'needs-operator';
}

function refineWithDiag(
  diag: DiagEvidence,
  options: RefinementOptions,
  raise: Raise,
  reasons: string[],
): void {
  if (diag.runtimeError !== null) {
    reasons.push(`dcgmi diag did not run: ${diag.runtimeError} (no class change)`);
    return;
  }
  if (diag.passed) {
    reasons.push('dcgmi diag: passed (never lowers a class)');
    return;
  }
  const failing = diag.errors.filter((e) => e.status === 'Fail');
  if (failing.length === 0) {
    raise('needs-operator', 'dcgmi diag failed without an error code');
    return;
  }
  for (const error of failing) {
    const c =
      error.name !== null
        ? classifyDcgm(error.name, options.dcgmOverrides)
        : classifyDcgm(error.code ?? 'unknown', options.dcgmOverrides);
    raise(c.class, `dcgmi diag ${error.test}${error.gpu === null ? '' : ` GPU ${error.gpu}`}: ${c.reason}`);
  }
}

function yes(value: string | number | boolean | null | undefined): boolean {
  return value === true || (typeof value === 'string' && value.trim().toLowerCase() === 'yes');
}

function count(value: string | number | boolean | null | undefined): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'string' && /^\d+$/.test(value.trim())) return Number(value.trim());
  return null;
}
