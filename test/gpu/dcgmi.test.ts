import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FleetmedicError, hasErrorCode } from '../../src/errors.js';
import type { DcgmErrorName } from '../../src/domain/xid-classification.js';
import {
  DCGMI_EXIT,
  formatHealthMessage,
  parseDcgmiDiag,
  parseDcgmiHealth,
  recogniseHealthErrors,
} from '../../src/gpu/dcgmi.js';

const fixture = (name: string): string =>
  readFileSync(fileURLToPath(new URL(`../fixtures/gpu/dcgmi/${name}`, import.meta.url)), 'utf8');

const HEALTHY = fixture('vc_DCGMIHealthCheckResults.json');
const INCIDENT = fixture('SYNTHETIC_dcgmi_health_check_json_with_incident.json');
const DIAG3 = fixture('vc_DCGMIDiag_r2_results_dcgm3x.json');
const DIAG4 = fixture('dcgm4_diag_r1_GB10_fail.json');

/** Asserts a permanent PARSE_ERROR whose message names the tool. */
function assertParseError(fn: () => unknown, tool: RegExp, what?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FleetmedicError, String(err));
    assert.equal(err.code, 'PARSE_ERROR');
    assert.equal(err.permanent, true);
    assert.match(err.message, tool);
    if (what !== undefined) assert.match(err.message, what);
    return true;
  });
}

describe('parseDcgmiHealth', () => {
  it('reads the healthy fixture (vc_DCGMIHealthCheckResults.json)', () => {
    const result = parseDcgmiHealth(HEALTHY, 0);
    assert.deepEqual(result, { kind: 'report', overall: 'Healthy', entities: [], incidents: [] });
  });

  it('reads the incident fixture (SYNTHETIC_dcgmi_health_check_json_with_incident.json): exit 0 with Failure', () => {
    const result = parseDcgmiHealth(INCIDENT, 0);
    assert.equal(result.kind, 'report');
    if (result.kind !== 'report') return;
    assert.equal(result.overall, 'Failure');
    assert.deepEqual(result.entities, [{ entityGroup: 'GPU', entityId: '0', health: 'Failure' }]);
    assert.equal(result.incidents.length, 1);
    const incident = result.incidents[0];
    assert.equal(incident?.entity, 'GPU 0');
    assert.equal(incident?.system, 'Memory system');
    assert.equal(incident?.health, 'Failure');
    assert.equal(incident?.message, 'Detected 1 volatile double-bit ECC error(s) in GPU 0.');
    assert.deepEqual(incident?.errors, [{ code: 'DCGM_FR_VOLATILE_DBE_DETECTED', gpu: 0 }]);
  });

  it('skips a banner before the JSON, even one with a brace in it', () => {
    const result = parseDcgmiHealth(`Health Monitor Report\nSome banner { not json\n${INCIDENT}`, 0);
    assert.equal(result.kind, 'report');
    if (result.kind === 'report') assert.equal(result.overall, 'Failure');
  });

  it('skips a plain banner line', () => {
    assert.equal(parseDcgmiHealth(`dcgmi 4.2.3\n${HEALTHY}`, 0).kind, 'report');
  });

  const noWatches: [string, string][] = [
    ['the real message', 'Error: Health watches not enabled. Please enable watches. \n'],
    ['no output', ''],
  ];
  for (const [name, stdout] of noWatches) {
    it(`exit 253 (${name}) -> no-watches, telling the caller to run dcgmi health -s a`, () => {
      const result = parseDcgmiHealth(stdout, DCGMI_EXIT.GENERIC_ERROR);
      assert.equal(result.kind, 'no-watches');
      if (result.kind === 'no-watches') assert.match(result.message, /dcgmi health -s a/);
    });
  }

  it('exit 253 for a failed check is a transient DCGMI_FAILED, not "no watches"', () => {
    assert.throws(
      () => parseDcgmiHealth('Error: Unable to check health watches. Return: Generic error\n', 253),
      (err: unknown) => err instanceof FleetmedicError && err.code === 'DCGMI_FAILED' && !err.permanent,
    );
  });

  it('exit 235 -> DCGM_UNREACHABLE, transient', () => {
    assert.throws(
      () =>
        parseDcgmiHealth('Error: unable to establish a connection to the specified host: localhost\n', 235),
      (err: unknown) => err instanceof FleetmedicError && err.code === 'DCGM_UNREACHABLE' && !err.permanent,
    );
  });

  it('another exit code -> DCGMI_FAILED naming the code', () => {
    assert.throws(
      () => parseDcgmiHealth(HEALTHY, 1),
      (err: unknown) => hasErrorCode(err, 'DCGMI_FAILED') && /exit code 1/.test((err as Error).message),
    );
  });

  const bad: [string, string, RegExp][] = [
    ['empty output', '', /empty/],
    ['garbage', 'segmentation fault', /no JSON object/],
    ['truncated JSON', INCIDENT.slice(0, INCIDENT.length / 2), /invalid or truncated/],
    [
      'truncated after the first brace',
      '{"body" : {"Overall Health" : {"value" : "Healthy"}',
      /invalid or truncated/,
    ],
    ['a JSON array', '[{"body": {}}]', /Overall Health/],
    ['a JSON string', '"{}"', /no "body"/],
    ['no body', '{"header": ["Health Monitor Report"]}', /no "body"/],
    ['no overall health', '{"body": {}}', /Overall Health/],
    ['an unknown verdict', '{"body": {"Overall Health": {"value": "Great"}}}', /Overall Health/],
    [
      'an entity group without children',
      '{"body": {"Overall Health": {"value": "Failure"}, "GPU": {"0": {}}}}',
      /entity group "GPU" has no "children"/,
    ],
    [
      'an entity without a verdict',
      '{"body": {"Overall Health": {"value": "Failure"}, "GPU": {"children": {"0": {}}}}}',
      /GPU 0 has no valid "value"/,
    ],
    [
      'a system without a verdict',
      '{"body": {"Overall Health": {"value": "Failure"}, "GPU": {"children": {"0": {"value": "Failure", "children": {"Errors": {"children": {"Memory system": {"overflow": ["x"]}}}}}}}}}',
      /"Memory system" has no valid "value"/,
    ],
    [
      'overflow that is not a list of strings',
      '{"body": {"Overall Health": {"value": "Failure"}, "GPU": {"children": {"0": {"value": "Failure", "children": {"Errors": {"children": {"PCIe system": {"overflow": [1], "value": "Failure"}}}}}}}}}',
      /"overflow" that is not a string list/,
    ],
  ];
  for (const [name, stdout, what] of bad) {
    it(`rejects ${name} with PARSE_ERROR`, () =>
      assertParseError(() => parseDcgmiHealth(stdout, 0), /^dcgmi health:/, what));
  }

  it('rejoins overflow lines and finds every incident of a system', () => {
    const json = {
      body: {
        'Overall Health': { value: 'Failure' },
        GPU: {
          children: {
            '3': {
              children: {
                Errors: {
                  children: {
                    'Memory system': {
                      // DCGM wraps at 54 characters and joins the incidents of a system with ", ".
                      overflow: [
                        'Detected 2 volatile double-bit ECC error(s) in GPU 3,',
                        'GPU 3 had uncorrectable memory errors and row',
                        'remapping failed',
                      ],
                      value: 'Failure',
                    },
                  },
                },
              },
              value: 'Failure',
            },
          },
        },
      },
      header: ['Health Monitor Report'],
    };
    const result = parseDcgmiHealth(JSON.stringify(json), 0);
    assert.ok(result.kind === 'report');
    assert.deepEqual(result.incidents[0]?.errors, [
      { code: 'DCGM_FR_VOLATILE_DBE_DETECTED', gpu: 3 },
      { code: 'DCGM_FR_ROW_REMAP_FAILURE', gpu: 3 },
    ]);
  });
});

describe('recogniseHealthErrors', () => {
  const cases: [string, { code: DcgmErrorName; gpu: number | null; xid?: number }[]][] = [
    [
      'Detected 1 volatile double-bit ECC error(s) in GPU 0.',
      [{ code: 'DCGM_FR_VOLATILE_DBE_DETECTED', gpu: 0 }],
    ],
    ['Detected XID 79 for GPU 5', [{ code: 'DCGM_FR_XID_ERROR', gpu: 5, xid: 79 }]],
    [
      'Detected XID 48 for GPU 1 (triggered by XID 48: Double Bit ECC Error)',
      [{ code: 'DCGM_FR_XID_ERROR', gpu: 1, xid: 48 }],
    ],
    ['GPU 2 has fallen off the bus', [{ code: 'DCGM_FR_FALLEN_OFF_BUS', gpu: 2 }]],
    [
      'Detected clock throttling due to thermal violation in GPU 3.',
      [{ code: 'DCGM_FR_CLOCKS_EVENT_THERMAL', gpu: 3 }],
    ],
    [
      'Detected clocks event due to power violation in GPU 4.',
      [{ code: 'DCGM_FR_CLOCKS_EVENT_POWER', gpu: 4 }],
    ],
    ['A corrupt InfoROM has been detected in GPU 7.', [{ code: 'DCGM_FR_CORRUPT_INFOROM', gpu: 7 }]],
    ["GPU 1's NvLink link 4 is currently down", [{ code: 'DCGM_FR_NVLINK_DOWN', gpu: 1 }]],
    ['Detected fatal errors on NvSwitch 2 link 11', [{ code: 'DCGM_FR_NVSWITCH_FATAL_ERROR', gpu: null }]],
    ['GPU had an uncontained error (XID 95)', [{ code: 'DCGM_FR_UNCONTAINED_ERROR', gpu: null }]],
    [
      'Detected more than 8 PCIe replays per minute for GPU 6 : 12',
      [{ code: 'DCGM_FR_PCI_REPLAY_RATE', gpu: 6 }],
    ],
    ['Detected 14 PCIe replay errors for GPU 2', [{ code: 'DCGM_FR_FIELD_VIOLATION', gpu: 2 }]],
    [
      'Detected XID 13 for GPU 0, Detected 3 volatile double-bit ECC error(s) in GPU 0',
      [
        { code: 'DCGM_FR_XID_ERROR', gpu: 0, xid: 13 },
        { code: 'DCGM_FR_VOLATILE_DBE_DETECTED', gpu: 0 },
      ],
    ],
    ['Something DCGM added in a later release', []],
    ['', []],
  ];
  for (const [text, want] of cases) {
    it(`recognises ${JSON.stringify(text)}`, () => assert.deepEqual(recogniseHealthErrors(text), want));
  }

  const templated: DcgmErrorName[] = [
    'DCGM_FR_XID_ERROR',
    'DCGM_FR_VOLATILE_DBE_DETECTED',
    'DCGM_FR_VOLATILE_SBE_DETECTED',
    'DCGM_FR_PENDING_PAGE_RETIREMENTS',
    'DCGM_FR_RETIRED_PAGES_LIMIT',
    'DCGM_FR_RETIRED_PAGES_DBE_LIMIT',
    'DCGM_FR_CORRUPT_INFOROM',
    'DCGM_FR_CLOCKS_EVENT_THERMAL',
    'DCGM_FR_CLOCKS_EVENT_POWER',
    'DCGM_FR_POWER_UNREADABLE',
    'DCGM_FR_NVLINK_ERROR_THRESHOLD',
    'DCGM_FR_NVLINK_ERROR_CRITICAL',
    'DCGM_FR_NVLINK_DOWN',
    'DCGM_FR_NVLINK_CRC_ERROR_THRESHOLD',
    'DCGM_FR_PCI_REPLAY_RATE',
    'DCGM_FR_ROW_REMAP_FAILURE',
    'DCGM_FR_PENDING_ROW_REMAP',
    'DCGM_FR_UNCORRECTABLE_ROW_REMAP',
    'DCGM_FR_UNCORRECTABLE_ROW_REMAP_LIMIT',
    'DCGM_FR_FAULTY_MEMORY',
    'DCGM_FR_FALLEN_OFF_BUS',
    'DCGM_FR_GPU_RECOVERY_RESET',
    'DCGM_FR_GPU_RECOVERY_REBOOT',
    'DCGM_FR_GPU_RECOVERY_DRAIN_P2P',
    'DCGM_FR_GPU_RECOVERY_DRAIN_RESET',
    'DCGM_FR_NVLINK_SYMBOL_BER_THRESHOLD',
    'DCGM_FR_NVLINK_EFFECTIVE_BER_THRESHOLD',
    'DCGM_FR_FABRIC_PROBE_STATE',
    'DCGM_FR_FIELD_THRESHOLD_DBL',
    'DCGM_FR_FIELD_VIOLATION',
  ];
  for (const code of templated) {
    it(`formats and recognises ${code} on GPU 6`, () => {
      const message = formatHealthMessage(code, 6, 48);
      assert.ok(message !== undefined);
      const found = recogniseHealthErrors(message);
      assert.equal(found.length, 1, JSON.stringify(found));
      assert.equal(found[0]?.code, code);
      assert.equal(found[0]?.gpu, 6);
    });
  }

  it('has no template for codes without a health message', () =>
    assert.equal(formatHealthMessage('DCGM_FR_PERSISTENCE_MODE', 0), undefined));
});

describe('parseDcgmiDiag', () => {
  it('reads the DCGM 3.x fixture (vc_DCGMIDiag_r2_results_dcgm3x.json)', () => {
    const result = parseDcgmiDiag(DIAG3, 0);
    assert.equal(result.shape, '3');
    assert.equal(result.passed, true);
    assert.equal(result.runtimeError, null);
    assert.equal(result.dcgmVersion, null);
    assert.deepEqual(result.errors, []);
    assert.deepEqual(
      result.tests.map((t) => `${t.category}/${t.name}:${t.status}`),
      [
        'Deployment/Denylist:Pass',
        'Deployment/NVML Library:Pass',
        'Deployment/CUDA Main Library:Pass',
        'Deployment/Permissions and OS Blocks:Pass',
        'Deployment/Persistence Mode:Pass',
        'Deployment/Environment Variables:Pass',
        'Deployment/Page Retirement/Row Remap:Pass',
        'Deployment/Graphics Processes:Pass',
        'Deployment/Inforom:Pass',
        'Integration/PCIe:Pass',
        'Hardware/GPU Memory:Pass',
      ],
    );
    const memory = result.tests.find((t) => t.name === 'GPU Memory');
    assert.deepEqual(memory?.results[0]?.gpuIds, [0]);
    assert.match(memory?.results[0]?.info[0] ?? '', /Allocated 15206918958 bytes/);
  });

  it('reads the DCGM 4.x fixture (dcgm4_diag_r1_GB10_fail.json, exit 226)', () => {
    const result = parseDcgmiDiag(DIAG4, DCGMI_EXIT.DIAG_FAILED);
    assert.equal(result.shape, '4');
    assert.equal(result.passed, false);
    assert.equal(result.dcgmVersion, '4.2.3');
    assert.equal(result.driverVersion, '580.82.09');
    assert.equal(result.tests.length, 1);
    const software = result.tests[0];
    assert.equal(software?.name, 'software');
    assert.equal(software?.status, 'Fail');
    assert.match(software?.info[0] ?? '', /SRAM Threshold/);
    assert.deepEqual(software?.results[0]?.entity, { group: 'GPU', id: 0 });
    assert.equal(result.errors.length, 1);
    assert.deepEqual(
      { ...result.errors[0], message: undefined },
      {
        test: 'software',
        code: 29,
        name: 'DCGM_FR_PERSISTENCE_MODE',
        message: undefined,
        gpu: 0,
        status: 'Fail',
      },
    );
    assert.match(result.errors[0]?.message ?? '', /Persistence mode for GPU 0 is disabled/);
  });

  it('trusts the exit code: a 226 fails the run even if every status says Pass', () => {
    assert.equal(parseDcgmiDiag(DIAG3, DCGMI_EXIT.DIAG_FAILED).passed, false);
    assert.equal(parseDcgmiDiag(DIAG3, DCGMI_EXIT.DIAG_ISOLATE).passed, false);
  });

  it('fails closed: a run where every test was skipped or not run is not a pass', () => {
    for (const status of ['Skip', 'Not Run']) {
      const skipped = DIAG3.replace(/"Pass"/g, JSON.stringify(status));
      assert.ok(skipped !== DIAG3);
      const result = parseDcgmiDiag(skipped, 0);
      assert.equal(result.passed, false, status);
      assert.match(result.runtimeError ?? '', /no diagnostic test ran \(11 listed, all skipped or not run\)/);
    }
  });

  it('fails closed: a report that lists no test is not a pass', () => {
    const stdout = JSON.stringify({ 'DCGM GPU Diagnostic': { test_categories: [] } });
    const result = parseDcgmiDiag(stdout, 0);
    assert.equal(result.passed, false);
    assert.match(result.runtimeError ?? '', /no diagnostic test ran \(0 listed/);
  });

  it('a run with one test that ran and others skipped still passes', () => {
    let first = true;
    const mostlySkipped = DIAG3.replace(/"Pass"/g, () => {
      const keep = first;
      first = false;
      return keep ? '"Pass"' : '"Skip"';
    });
    assert.equal(parseDcgmiDiag(mostlySkipped, 0).passed, true);
  });

  it('skips a banner line before the JSON', () => {
    const result = parseDcgmiDiag(`Successfully ran diagnostic for group.\n${DIAG4}`, 226);
    assert.equal(result.shape, '4');
  });

  it('reports a runtime_error (the diagnostic did not run) as not passed', () => {
    const stdout = JSON.stringify({
      'DCGM Diagnostic': {
        runtime_error: 'Diagnostic could not be run while GPUs are in use',
        version: '4.2.3',
      },
    });
    const result = parseDcgmiDiag(stdout, DCGMI_EXIT.IN_USE);
    assert.equal(result.passed, false);
    assert.equal(result.runtimeError, 'Diagnostic could not be run while GPUs are in use');
    assert.equal(result.dcgmVersion, '4.2.3');
    assert.deepEqual(result.tests, []);
  });

  it('reads the DCGM 3.x level-one "warnings" spelling and gpu_id', () => {
    const stdout = JSON.stringify({
      'DCGM GPU Diagnostic': {
        test_categories: [
          {
            category: 'Deployment',
            tests: [
              {
                name: 'Page Retirement/Row Remap',
                results: [
                  {
                    gpu_id: 1,
                    status: 'Fail',
                    warnings: [
                      {
                        warnings: 'GPU 1 had uncorrectable memory errors and row remapping failed.',
                        error_id: 80,
                      },
                    ],
                  },
                ],
              },
            ],
          },
        ],
      },
      version: '3.3.9',
    });
    const result = parseDcgmiDiag(stdout, 226);
    assert.equal(result.dcgmVersion, '3.3.9');
    assert.deepEqual(
      result.errors.map((e) => [e.name, e.gpu, e.status]),
      [['DCGM_FR_ROW_REMAP_FAILURE', 1, 'Fail']],
    );
  });

  it('exit 235 -> DCGM_UNREACHABLE', () => {
    assert.throws(
      () => parseDcgmiDiag('Error: Unable to connect to host engine.\n', DCGMI_EXIT.HOST_ENGINE_UNREACHABLE),
      (err: unknown) => hasErrorCode(err, 'DCGM_UNREACHABLE'),
    );
  });

  it('a failure exit without JSON -> DCGMI_FAILED, transient', () => {
    assert.throws(
      () => parseDcgmiDiag('Error: A diagnostic is already running.\n', DCGMI_EXIT.DIAG_ALREADY_RUNNING),
      (err: unknown) => err instanceof FleetmedicError && err.code === 'DCGMI_FAILED' && !err.permanent,
    );
  });

  const bad: [string, string, RegExp][] = [
    ['empty output', '', /empty/],
    ['garbage', 'Illegal instruction (core dumped)', /no JSON object/],
    ['truncated JSON', DIAG4.slice(0, 600), /invalid or truncated/],
    ['truncated 3.x JSON', DIAG3.slice(0, DIAG3.length - 40), /invalid or truncated/],
    ['an object without a diagnostic', '{"metadata": {"version": "4.2.3"}}', /neither a "DCGM Diagnostic"/],
    ['no test categories', '{"DCGM Diagnostic": {}}', /no "test_categories"/],
    [
      'a category without tests',
      '{"DCGM Diagnostic": {"test_categories": [{"category": "Deployment"}]}}',
      /category 0/,
    ],
    [
      'a test without a name',
      '{"DCGM Diagnostic": {"test_categories": [{"category": "Deployment", "tests": [{"results": []}]}]}}',
      /no "name"/,
    ],
    [
      'an unknown status',
      '{"DCGM Diagnostic": {"test_categories": [{"category": "Hardware", "tests": [{"name": "memory", "results": [{"status": "Maybe"}]}]}]}}',
      /no valid "status" \(got "Maybe"\)/,
    ],
    [
      'warnings that are not a list',
      '{"DCGM Diagnostic": {"test_categories": [{"category": "Hardware", "tests": [{"name": "memory", "results": [{"status": "Fail", "warnings": "x"}]}]}]}}',
      /"warnings" of test "memory"/,
    ],
    [
      'a warning without text',
      '{"DCGM Diagnostic": {"test_categories": [{"category": "Hardware", "tests": [{"name": "memory", "results": [{"status": "Fail", "warnings": [{"error_id": 52}]}]}]}]}}',
      /a warning of test "memory" \(Hardware\) has no text/,
    ],
  ];
  for (const [name, stdout, what] of bad) {
    it(`rejects ${name} with PARSE_ERROR`, () =>
      assertParseError(() => parseDcgmiDiag(stdout, 0), /^dcgmi diag:/, what));
  }
});
