import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requiresQuarantine } from '../../src/domain/remediation-class.js';
import type { RemediationClass } from '../../src/domain/remediation-class.js';
import {
  FLEETMEDIC_DCGM_CLASSES,
  FLEETMEDIC_XID_DEVIATIONS,
  KNOWN_DCGM_ERRORS,
  KNOWN_XIDS,
  NVSENTINEL_ACTION_CLASS,
  classifyDcgm,
  classifyNvsentinelAction,
  classifyXid,
  dcgmErrorId,
  dcgmErrorName,
  dcgmNvsentinelAction,
  refineWithEvidence,
  xidMapping,
} from '../../src/domain/xid-classification.js';
import type {
  DcgmErrorName,
  GpuQueryEvidence,
  HealthEvidence,
  NvsentinelAction,
  TriageEvidence,
} from '../../src/domain/xid-classification.js';
import { parseDcgmiDiag, parseDcgmiHealth } from '../../src/gpu/dcgmi.js';

const fixture = (path: string): string =>
  readFileSync(fileURLToPath(new URL(`../fixtures/gpu/${path}`, import.meta.url)), 'utf8');

const xidCsv = fixture('xid/NVSentinel_gpu-health-monitor_xiderrorsmapping.csv')
  .trim()
  .split('\n')
  .map((line) => line.split(','));
const dcgmCsv = fixture('xid/NVSentinel_gpu-health-monitor_dcgmerrorsmapping.csv')
  .trim()
  .split('\n')
  .map((line) => line.split(','));

describe('XID table', () => {
  it('has every row of the NVSentinel XID mapping, with the same mnemonic, action and FATAL flag', () => {
    assert.equal(xidCsv.length, 162);
    for (const [xid, mnemonic, action, fatal] of xidCsv) {
      const row = xidMapping(Number(xid));
      assert.ok(row, `XID ${xid} missing`);
      assert.equal(row.mnemonic, (mnemonic ?? '').trim(), `XID ${xid} mnemonic`);
      const expectedAction = (action ?? '').startsWith('Follow guidance') ? 'FOLLOW_OTHER_XID' : action;
      assert.equal(row.action, expectedAction, `XID ${xid} action`);
      assert.equal(row.fatal, fatal === 'FATAL', `XID ${xid} fatal`);
    }
    assert.deepEqual(
      KNOWN_XIDS,
      xidCsv.map(([xid]) => Number(xid)),
    );
  });

  it('classifies every row through the action table, except the documented deviations', () => {
    for (const xid of KNOWN_XIDS) {
      const row = xidMapping(xid);
      assert.ok(row);
      const deviation = FLEETMEDIC_XID_DEVIATIONS[xid];
      const result = classifyXid(xid);
      if (deviation !== undefined) {
        assert.equal(result.class, deviation.class);
        assert.equal(result.source, 'fleetmedic');
      } else {
        assert.equal(result.class, NVSENTINEL_ACTION_CLASS[row.action], `XID ${xid}`);
        assert.equal(result.source, 'nvsentinel');
      }
      assert.match(result.reason, new RegExp(`^XID ${xid}\\b`));
    }
  });

  it('quarantines every FATAL XID except 109 (application-level, documented)', () => {
    const notQuarantined = KNOWN_XIDS.filter(
      (xid) => xidMapping(xid)?.fatal && !requiresQuarantine(classifyXid(xid).class),
    );
    assert.deepEqual(notQuarantined, [109]);
  });

  it('sends every fatal REPORT_ISSUE XID to needs-operator', () => {
    const reportIssue = KNOWN_XIDS.filter((xid) => xidMapping(xid)?.action === 'UNEXPECTED_ERR_REPORT_ISSUE');
    assert.equal(reportIssue.length, 63);
    for (const xid of reportIssue) assert.equal(classifyXid(xid).class, 'needs-operator', `XID ${xid}`);
  });

  const cases: [number, RemediationClass, string][] = [
    // Application-level XIDs (NVIDIA device plugin's default skip list).
    [13, 'restart-app', 'RESTART_APP'],
    [31, 'restart-app', 'RESTART_APP'],
    [43, 'restart-app', 'deviation from IGNORE'],
    [45, 'restart-app', 'WORKFLOW_XID_45'],
    [68, 'restart-app', 'RESTART_APP'],
    [109, 'restart-app', 'deviation from RESET_GPU'],
    // Fell off the bus.
    [79, 'reboot-node', 'RESTART_BM'],
    // ECC and GPU resets.
    [48, 'reset-gpu', 'WORKFLOW_XID_48'],
    [95, 'reset-gpu', 'RESET_GPU'],
    [140, 'reset-gpu', 'RESET_GPU'],
    [62, 'reset-gpu', 'RESET_GPU'],
    [64, 'reset-gpu', 'RESET_GPU'],
    [119, 'reset-gpu', 'RESET_GPU'],
    [120, 'reset-gpu', 'RESET_GPU'],
    [46, 'reset-gpu', 'RESET_GPU'],
    [136, 'reset-gpu', 'RESET_GPU'],
    [162, 'reset-gpu', 'RESET_GPU, no mnemonic'],
    // Ignored.
    [14, 'ignore', 'IGNORE'],
    [63, 'ignore', 'IGNORE'],
    [92, 'ignore', 'IGNORE'],
    [121, 'ignore', 'IGNORE'],
    // Operator.
    [1, 'needs-operator', 'UNEXPECTED_ERR_REPORT_ISSUE'],
    [58, 'needs-operator', 'UNEXPECTED_ERR_REPORT_ISSUE'],
    [54, 'needs-operator', 'CHECK_MECHANICALS'],
    [74, 'needs-operator', 'WORKFLOW_NVLINK_ERR'],
    [144, 'needs-operator', 'WORKFLOW_NVLINK5_ERR'],
    [150, 'needs-operator', 'WORKFLOW_NVLINK5_ERR'],
    [78, 'needs-operator', 'UPDATE_SWFW'],
    [154, 'needs-operator', 'follow another XID'],
    // Reboots.
    [151, 'reboot-node', 'RESTART_VM'],
    [160, 'reboot-node', 'RESTART_BM'],
    // Others.
    [94, 'restart-app', 'contained error'],
    [159, 'restart-app', 'CHECK_UVM'],
  ];
  for (const [xid, cls, why] of cases) {
    it(`XID ${xid} -> ${cls} (${why})`, () => assert.equal(classifyXid(xid).class, cls));
  }

  const unmapped: number[] = [0, -1, 163, 200, 999, 1.5, Number.NaN, Number.POSITIVE_INFINITY];
  for (const xid of unmapped) {
    it(`XID ${String(xid)} is unmapped -> needs-operator`, () => {
      const result = classifyXid(xid);
      assert.equal(result.class, 'needs-operator');
      assert.equal(result.source, 'unmapped');
    });
  }
});

describe('XID overrides', () => {
  const cases: [number, Record<number, RemediationClass>, RemediationClass, string][] = [
    [109, { 109: 'reset-gpu' }, 'reset-gpu', 'override'],
    [79, { 79: 'needs-operator' }, 'needs-operator', 'override'],
    [48, { 48: 'replace-hardware' }, 'replace-hardware', 'override'],
    [13, { 13: 'ignore' }, 'ignore', 'override'],
    [200, { 200: 'reset-gpu' }, 'reset-gpu', 'override'],
    [43, { 79: 'ignore' }, 'restart-app', 'fleetmedic'],
    [79, {}, 'reboot-node', 'nvsentinel'],
  ];
  for (const [xid, overrides, cls, source] of cases) {
    it(`XID ${xid} with ${JSON.stringify(overrides)} -> ${cls} (${source})`, () => {
      const result = classifyXid(xid, overrides);
      assert.equal(result.class, cls);
      assert.equal(result.source, source);
    });
  }

  it('ignores an override that is not a remediation class', () => {
    const overrides = { 79: 'reboot' } as unknown as Record<number, RemediationClass>;
    assert.equal(classifyXid(79, overrides).class, 'reboot-node');
    assert.equal(classifyXid(79, overrides).source, 'nvsentinel');
  });
});

describe('NVSentinel actions', () => {
  const cases: [string, RemediationClass][] = [
    ['NONE', 'ignore'],
    ['IGNORE', 'ignore'],
    ['ignore ', 'ignore'],
    ['RESTART_APP', 'restart-app'],
    ['APPLICATION_RESTART', 'restart-app'],
    ['RESET_GPU', 'reset-gpu'],
    ['COMPONENT_RESET', 'reset-gpu'],
    ['NODE_REBOOT', 'reboot-node'],
    ['RESTART_BM', 'reboot-node'],
    ['RESTART_VM', 'reboot-node'],
    ['REPORT_ISSUE', 'needs-operator'],
    ['CONTACT_SUPPORT', 'needs-operator'],
    ['CHECK_THERMALS', 'needs-operator'],
    ['CHECK_FM_CONFIG', 'needs-operator'],
    ['RUN_DCGMEUD', 'needs-operator'],
    ['UNKNOWN', 'needs-operator'],
    ['RUN_FIELDDIAG', 'replace-hardware'],
    ['REPLACE_VM', 'replace-hardware'],
    ['SOMETHING_NEW', 'needs-operator'],
    ['', 'needs-operator'],
  ];
  for (const [action, cls] of cases) {
    it(`${JSON.stringify(action)} -> ${cls}`, () => assert.equal(classifyNvsentinelAction(action), cls));
  }
});

describe('DCGM error codes', () => {
  it('has every row of the NVSentinel DCGM mapping with the same action', () => {
    assert.equal(dcgmCsv.length, 121);
    for (const [name, action] of dcgmCsv) {
      const known = dcgmErrorName(name ?? '');
      assert.equal(known, name, `${name} unknown`);
      assert.equal(dcgmNvsentinelAction(known as DcgmErrorName), action, `${name} action`);
    }
  });

  it('classifies every CSV row through the action table, except the documented classes', () => {
    for (const [name, action] of dcgmCsv) {
      const own = FLEETMEDIC_DCGM_CLASSES[name as DcgmErrorName];
      const expected = own?.class ?? NVSENTINEL_ACTION_CLASS[action as NvsentinelAction];
      assert.equal(classifyDcgm(name ?? '').class, expected, `${name}`);
    }
  });

  it('maps every numeric id back to a name with the same id', () => {
    for (const name of KNOWN_DCGM_ERRORS) {
      const id = dcgmErrorId(name);
      if (id === undefined) continue;
      const back = dcgmErrorName(id);
      assert.ok(back !== undefined, `${name}`);
      assert.equal(dcgmErrorId(back), id);
    }
  });

  const names: [string | number, DcgmErrorName | undefined][] = [
    ['DCGM_FR_VOLATILE_DBE_DETECTED', 'DCGM_FR_VOLATILE_DBE_DETECTED'],
    ['volatile_dbe_detected', 'DCGM_FR_VOLATILE_DBE_DETECTED'],
    [' dcgm_fr_pending_row_remap ', 'DCGM_FR_PENDING_ROW_REMAP'],
    [4, 'DCGM_FR_VOLATILE_DBE_DETECTED'],
    ['4', 'DCGM_FR_VOLATILE_DBE_DETECTED'],
    [0, 'DCGM_FR_OK'],
    ['DCGM_FR_OK', 'DCGM_FR_OK'],
    [10, 'DCGM_FR_CLOCKS_EVENT_THERMAL'],
    [12, 'DCGM_FR_CLOCKS_EVENT_POWER'],
    [43, 'DCGM_FR_CLOCKS_EVENT_VIOLATION'],
    [23, 'DCGM_FR_DENYLISTED_DRIVER'],
    ['DCGM_FR_BLACKLISTED_DRIVER', 'DCGM_FR_DENYLISTED_DRIVER'],
    ['DCGM_FR_CLOCK_THROTTLE_THERMAL', 'DCGM_FR_CLOCK_THROTTLE_THERMAL'],
    [29, 'DCGM_FR_PERSISTENCE_MODE'],
    [80, 'DCGM_FR_ROW_REMAP_FAILURE'],
    [101, 'DCGM_FR_XID_ERROR'],
    [117, 'DCGM_FR_TEST_SKIPPED'],
    [120, 'DCGM_FR_FALLEN_OFF_BUS'],
    [132, 'DCGM_FR_UNCORRECTABLE_ROW_REMAP_LIMIT'],
    [133, undefined],
    [999, undefined],
    [-1, undefined],
    [1.5, undefined],
    ['DCGM_FR_NOT_A_CODE', undefined],
    ['', undefined],
  ];
  for (const [input, want] of names) {
    it(`dcgmErrorName(${JSON.stringify(input)}) is ${String(want)}`, () =>
      assert.equal(dcgmErrorName(input), want));
  }

  it('gives the moving sentinel no id', () => assert.equal(dcgmErrorId('DCGM_FR_ERROR_SENTINEL'), undefined));

  const classes: [string | number, RemediationClass, string][] = [
    ['DCGM_FR_VOLATILE_DBE_DETECTED', 'reset-gpu', 'nvsentinel'],
    ['DCGM_FR_PENDING_ROW_REMAP', 'reset-gpu', 'nvsentinel'],
    ['DCGM_FR_CORRUPT_INFOROM', 'reset-gpu', 'nvsentinel'],
    ['DCGM_FR_ROW_REMAP_FAILURE', 'replace-hardware', 'nvsentinel'],
    ['DCGM_FR_FAULTY_MEMORY', 'replace-hardware', 'nvsentinel'],
    [80, 'replace-hardware', 'nvsentinel'],
    ['DCGM_FR_NVLINK_DOWN', 'reboot-node', 'nvsentinel'],
    ['DCGM_FR_UNCONTAINED_ERROR', 'reboot-node', 'nvsentinel'],
    ['DCGM_FR_PCI_REPLAY_RATE', 'needs-operator', 'nvsentinel'],
    ['DCGM_FR_PERSISTENCE_MODE', 'needs-operator', 'nvsentinel'],
    [29, 'needs-operator', 'nvsentinel'],
    ['DCGM_FR_CLOCKS_EVENT_THERMAL', 'needs-operator', 'nvsentinel'],
    ['DCGM_FR_CLOCK_THROTTLE_THERMAL', 'ignore', 'nvsentinel'],
    ['DCGM_FR_NVSWITCH_NVLINK_DOWN', 'needs-operator', 'nvsentinel'],
    ['DCGM_FR_VOLATILE_SBE_DETECTED', 'ignore', 'nvsentinel'],
    ['DCGM_FR_UNCORRECTABLE_ROW_REMAP', 'ignore', 'nvsentinel'],
    ['DCGM_FR_TEST_SKIPPED', 'ignore', 'nvsentinel'],
    ['DCGM_FR_ERROR_SENTINEL', 'ignore', 'nvsentinel'],
    ['DCGM_FR_OK', 'ignore', 'fleetmedic'],
    [0, 'ignore', 'fleetmedic'],
    ['DCGM_FR_XID_ERROR', 'ignore', 'fleetmedic'],
    ['DCGM_FR_FALLEN_OFF_BUS', 'reboot-node', 'fleetmedic'],
    ['DCGM_FR_GPU_RECOVERY_RESET', 'reset-gpu', 'fleetmedic'],
    ['DCGM_FR_GPU_RECOVERY_DRAIN_RESET', 'reset-gpu', 'fleetmedic'],
    ['DCGM_FR_GPU_RECOVERY_REBOOT', 'reboot-node', 'fleetmedic'],
    ['DCGM_FR_GPU_RECOVERY_DRAIN_P2P', 'needs-operator', 'fleetmedic'],
    ['DCGM_FR_CONTAINED_ERROR', 'restart-app', 'fleetmedic'],
    ['DCGM_FR_UNCORRECTABLE_ROW_REMAP_LIMIT', 'replace-hardware', 'fleetmedic'],
    ['DCGM_FR_SRAM_THRESHOLD', 'needs-operator', 'unmapped'],
    ['DCGM_FR_NCCL_ERROR', 'needs-operator', 'unmapped'],
    ['DCGM_FR_NOT_A_CODE', 'needs-operator', 'unmapped'],
    [999, 'needs-operator', 'unmapped'],
  ];
  for (const [code, cls, source] of classes) {
    it(`${String(code)} -> ${cls} (${source})`, () => {
      const result = classifyDcgm(code);
      assert.equal(result.class, cls);
      assert.equal(result.source, source);
    });
  }

  it('applies overrides by name, whatever form the code came in', () => {
    const overrides = {
      DCGM_FR_CLOCKS_EVENT_THERMAL: 'ignore',
      DCGM_FR_SRAM_THRESHOLD: 'replace-hardware',
    } as const;
    assert.equal(classifyDcgm('DCGM_FR_CLOCKS_EVENT_THERMAL', overrides).class, 'ignore');
    assert.equal(classifyDcgm(10, overrides).class, 'ignore');
    assert.equal(classifyDcgm('clocks_event_thermal', overrides).source, 'override');
    assert.equal(classifyDcgm(118, overrides).class, 'replace-hardware');
    assert.equal(classifyDcgm('DCGM_FR_PCI_REPLAY_RATE', overrides).class, 'needs-operator');
  });
});

describe('refineWithEvidence', () => {
  const gpuRow = (fields: Record<string, string | number | boolean | null>): GpuQueryEvidence => ({
    index: 0,
    uuid: 'GPU-0',
    'ecc.errors.uncorrected.volatile.total': 0,
    'remapped_rows.pending': false,
    'remapped_rows.failure': false,
    gpu_recovery_action: 'None',
    ...fields,
  });
  const healthy: HealthEvidence = { kind: 'report', overall: 'Healthy', incidents: [] };
  const failure = (code: DcgmErrorName, extra: { xid?: number } = {}): HealthEvidence => ({
    kind: 'report',
    overall: 'Failure',
    incidents: [
      {
        entity: 'GPU 0',
        system: 'Memory system',
        health: 'Failure',
        message: 'm',
        errors: [{ code, gpu: 0, ...extra }],
      },
    ],
  });
  const warning = (code: DcgmErrorName): HealthEvidence => ({
    kind: 'report',
    overall: 'Warning',
    incidents: [
      {
        entity: 'GPU 0',
        system: 'Thermal system',
        health: 'Warning',
        message: 'm',
        errors: [{ code, gpu: 0 }],
      },
    ],
  });

  const cases: [string, RemediationClass, TriageEvidence, RemediationClass][] = [
    ['no evidence keeps the alert class', 'reset-gpu', {}, 'reset-gpu'],
    ['Healthy never lowers reset-gpu', 'reset-gpu', { health: healthy }, 'reset-gpu'],
    ['Healthy never lowers reboot-node', 'reboot-node', { health: healthy }, 'reboot-node'],
    ['Healthy never lowers needs-operator', 'needs-operator', { health: healthy }, 'needs-operator'],
    ['Healthy never lowers replace-hardware', 'replace-hardware', { health: healthy }, 'replace-hardware'],
    [
      'no watches changes nothing',
      'reboot-node',
      { health: { kind: 'no-watches', message: 'x' } },
      'reboot-node',
    ],
    [
      'XID 48 with remapped_rows.failure -> replace-hardware',
      'reset-gpu',
      { gpus: [gpuRow({ 'remapped_rows.failure': true })] },
      'replace-hardware',
    ],
    [
      'remapped_rows.failure as text Yes',
      'reset-gpu',
      { gpus: [gpuRow({ 'remapped_rows.failure': 'Yes' })] },
      'replace-hardware',
    ],
    [
      'remapped_rows.pending -> at least reset-gpu',
      'restart-app',
      { gpus: [gpuRow({ 'remapped_rows.pending': true })] },
      'reset-gpu',
    ],
    [
      'remapped_rows.pending keeps reboot-node',
      'reboot-node',
      { gpus: [gpuRow({ 'remapped_rows.pending': true })] },
      'reboot-node',
    ],
    [
      'retired_pages.pending -> reset-gpu',
      'ignore',
      { gpus: [gpuRow({ 'retired_pages.pending': true })] },
      'reset-gpu',
    ],
    [
      'uncorrected ECC -> reset-gpu',
      'restart-app',
      { gpus: [gpuRow({ 'ecc.errors.uncorrected.volatile.total': 3 })] },
      'reset-gpu',
    ],
    [
      'uncorrected ECC as text',
      'ignore',
      { gpus: [gpuRow({ 'ecc.errors.uncorrected.volatile.total': '2' })] },
      'reset-gpu',
    ],
    [
      'clean rows keep restart-app',
      'restart-app',
      { gpus: [gpuRow({}), gpuRow({ index: 1 })] },
      'restart-app',
    ],
    [
      'null values are no evidence',
      'restart-app',
      { gpus: [gpuRow({ 'remapped_rows.failure': null, 'remapped_rows.pending': null })] },
      'restart-app',
    ],
    [
      'recovery action Reset -> reset-gpu',
      'restart-app',
      { gpus: [gpuRow({ gpu_recovery_action: 'Reset' })] },
      'reset-gpu',
    ],
    [
      'recovery action Drain and Reset -> reset-gpu',
      'ignore',
      { gpus: [gpuRow({ gpu_recovery_action: 'Drain and Reset' })] },
      'reset-gpu',
    ],
    [
      'recovery action Reboot -> reboot-node',
      'reset-gpu',
      { gpus: [gpuRow({ gpu_recovery_action: 'Node Reboot' })] },
      'reboot-node',
    ],
    [
      'recovery action Drain P2P -> needs-operator',
      'reset-gpu',
      { gpus: [gpuRow({ gpu_recovery_action: 'Drain P2P' })] },
      'needs-operator',
    ],
    [
      'unknown recovery action -> needs-operator',
      'reset-gpu',
      { gpus: [gpuRow({ gpu_recovery_action: 'Mystery' })] },
      'needs-operator',
    ],
    [
      'recovery action None keeps the class',
      'restart-app',
      { gpus: [gpuRow({ gpu_recovery_action: 'None' })] },
      'restart-app',
    ],
    [
      'the worst GPU wins',
      'reset-gpu',
      { gpus: [gpuRow({}), gpuRow({ index: 1, 'remapped_rows.failure': true })] },
      'replace-hardware',
    ],
    [
      'health Failure DBE -> reset-gpu',
      'restart-app',
      { health: failure('DCGM_FR_VOLATILE_DBE_DETECTED') },
      'reset-gpu',
    ],
    [
      'health Failure row remap failure -> replace-hardware',
      'reset-gpu',
      { health: failure('DCGM_FR_ROW_REMAP_FAILURE') },
      'replace-hardware',
    ],
    [
      'health Failure NVLink down -> reboot-node',
      'reset-gpu',
      { health: failure('DCGM_FR_NVLINK_DOWN') },
      'reboot-node',
    ],
    [
      'health Failure fallen off the bus -> reboot-node',
      'ignore',
      { health: failure('DCGM_FR_FALLEN_OFF_BUS') },
      'reboot-node',
    ],
    [
      'health Failure XID 79 in the message -> reboot-node',
      'restart-app',
      { health: failure('DCGM_FR_XID_ERROR', { xid: 79 }) },
      'reboot-node',
    ],
    [
      'health Failure XID 48 in the message -> reset-gpu',
      'ignore',
      { health: failure('DCGM_FR_XID_ERROR', { xid: 48 }) },
      'reset-gpu',
    ],
    [
      'health Failure never lowers replace-hardware',
      'replace-hardware',
      { health: failure('DCGM_FR_VOLATILE_DBE_DETECTED') },
      'replace-hardware',
    ],
    [
      'health Failure with an ignore code keeps needs-operator',
      'needs-operator',
      { health: failure('DCGM_FR_VOLATILE_SBE_DETECTED') },
      'needs-operator',
    ],
    [
      'health Warning pending row remap -> reset-gpu',
      'restart-app',
      { health: warning('DCGM_FR_PENDING_ROW_REMAP') },
      'reset-gpu',
    ],
    [
      'health Warning thermal does not quarantine for an operator',
      'restart-app',
      { health: warning('DCGM_FR_CLOCKS_EVENT_THERMAL') },
      'restart-app',
    ],
    [
      'health Warning PCIe replays does not escalate past reset-gpu',
      'reset-gpu',
      { health: warning('DCGM_FR_PCI_REPLAY_RATE') },
      'reset-gpu',
    ],
    [
      'an unreachable GPU -> reboot-node',
      'reset-gpu',
      { unreachableGpus: ['Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error'] },
      'reboot-node',
    ],
    [
      'fewer GPUs than expected -> reboot-node',
      'reset-gpu',
      { gpus: [gpuRow({})], expectedGpuCount: 8 },
      'reboot-node',
    ],
    [
      'all GPUs present keeps the class',
      'reset-gpu',
      { gpus: [gpuRow({})], expectedGpuCount: 1 },
      'reset-gpu',
    ],
    [
      'diag passed never lowers',
      'reboot-node',
      { diag: { passed: true, runtimeError: null, errors: [] } },
      'reboot-node',
    ],
    [
      'diag not run changes nothing',
      'reset-gpu',
      { diag: { passed: false, runtimeError: 'busy', errors: [] } },
      'reset-gpu',
    ],
    [
      'diag failed without a code -> needs-operator',
      'reset-gpu',
      { diag: { passed: false, runtimeError: null, errors: [] } },
      'needs-operator',
    ],
    [
      'diag failed with faulty memory -> replace-hardware',
      'reset-gpu',
      {
        diag: {
          passed: false,
          runtimeError: null,
          errors: [
            { test: 'memory', code: 52, name: 'DCGM_FR_FAULTY_MEMORY', message: 'x', gpu: 0, status: 'Fail' },
          ],
        },
      },
      'replace-hardware',
    ],
    [
      'diag warnings of a passing result do not count',
      'restart-app',
      {
        diag: {
          passed: false,
          runtimeError: null,
          errors: [
            {
              test: 'pcie',
              code: 98,
              name: 'DCGM_FR_PCIE_H_REPLAY_VIOLATION',
              message: 'x',
              gpu: 0,
              status: 'Warn',
            },
            {
              test: 'software',
              code: 85,
              name: 'DCGM_FR_PENDING_ROW_REMAP',
              message: 'y',
              gpu: 0,
              status: 'Fail',
            },
          ],
        },
      },
      'reset-gpu',
    ],
  ];
  for (const [name, alert, evidence, want] of cases) {
    it(`${name}: ${alert} -> ${want}`, () => {
      const result = refineWithEvidence(alert, evidence);
      assert.equal(result.class, want);
      assert.equal(result.escalated, want !== alert);
      assert.match(result.reasons[0] ?? '', new RegExp(`^alert: ${alert}`));
    });
  }

  it('health Failure with an unrecognised message -> needs-operator, with the message in the reasons', () => {
    const evidence: TriageEvidence = {
      health: {
        kind: 'report',
        overall: 'Failure',
        incidents: [
          { entity: 'GPU 3', system: 'Driver', health: 'Failure', message: 'Something new', errors: [] },
        ],
      },
    };
    const result = refineWithEvidence('reset-gpu', evidence);
    assert.equal(result.class, 'needs-operator');
    assert.ok(result.reasons.some((r) => r.includes('Something new') && r.includes('GPU 3')));
  });

  it('health Warning with an unrecognised message changes nothing', () => {
    const evidence: TriageEvidence = {
      health: {
        kind: 'report',
        overall: 'Warning',
        incidents: [{ entity: 'GPU 0', system: 'Power system', health: 'Warning', message: '?', errors: [] }],
      },
    };
    assert.equal(refineWithEvidence('restart-app', evidence).class, 'restart-app');
  });

  it('applies XID and DCGM overrides to codes found in evidence', () => {
    assert.equal(
      refineWithEvidence(
        'ignore',
        { health: failure('DCGM_FR_XID_ERROR', { xid: 79 }) },
        { xidOverrides: { 79: 'needs-operator' } },
      ).class,
      'needs-operator',
    );
    assert.equal(
      refineWithEvidence(
        'ignore',
        { health: failure('DCGM_FR_VOLATILE_DBE_DETECTED') },
        {
          dcgmOverrides: { DCGM_FR_VOLATILE_DBE_DETECTED: 'replace-hardware' },
        },
      ).class,
      'replace-hardware',
    );
  });

  it('explains every step: the Healthy note and the escalation both appear', () => {
    const result = refineWithEvidence('reset-gpu', {
      health: healthy,
      gpus: [gpuRow({ 'remapped_rows.failure': true })],
    });
    assert.equal(result.class, 'replace-hardware');
    assert.equal(result.reasons.length, 3);
    assert.match(result.reasons[1] ?? '', /Healthy.*never lowers/);
    assert.match(result.reasons[2] ?? '', /remapped_rows\.failure=Yes.*-> replace-hardware/);
  });

  it('refines with the parsed fixtures: the DBE incident escalates, the healthy report does not lower', () => {
    const incident = parseDcgmiHealth(
      fixture('dcgmi/SYNTHETIC_dcgmi_health_check_json_with_incident.json'),
      0,
    );
    assert.equal(refineWithEvidence('restart-app', { health: incident }).class, 'reset-gpu');
    const ok = parseDcgmiHealth(fixture('dcgmi/vc_DCGMIHealthCheckResults.json'), 0);
    assert.equal(refineWithEvidence('reboot-node', { health: ok }).class, 'reboot-node');
    const diag = parseDcgmiDiag(fixture('dcgmi/dcgm4_diag_r1_GB10_fail.json'), 226);
    // Persistence mode disabled is a configuration problem: NVSentinel REPORT_ISSUE.
    assert.equal(refineWithEvidence('reset-gpu', { diag }).class, 'needs-operator');
  });
});
