import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hasErrorCode } from '../../src/errors.js';
import { refineWithEvidence } from '../../src/domain/xid-classification.js';
import type { DcgmErrorName } from '../../src/domain/xid-classification.js';
import { DCGMI_EXIT, parseDcgmiDiag, parseDcgmiHealth } from '../../src/gpu/dcgmi.js';
import {
  DEFAULT_HEALTH_QUERY_FIELDS,
  NVIDIA_SMI_EXIT,
  parseListGpus,
  parseQueryGpu,
} from '../../src/gpu/nvidia-smi.js';
import {
  renderDcgmiDiag,
  renderDcgmiHealth,
  renderListGpus,
  renderQueryGpu,
  simulatedHealthIncidents,
} from '../../src/gpu/render.js';
import type { SimulatedGpu, SimulatedGpuState } from '../../src/gpu/render.js';

const fixture = (name: string): string =>
  readFileSync(fileURLToPath(new URL(`../fixtures/gpu/${name}`, import.meta.url)), 'utf8');

const H100 = 'NVIDIA H100 80GB HBM3';
const gpu = (index: number, faults: Partial<SimulatedGpu> = {}): SimulatedGpu => ({
  index,
  uuid: `GPU-0000000${index}-1111-2222-3333-444444444444`,
  name: H100,
  busId: `00000000:${(0x18 + index * 0x11).toString(16).toUpperCase()}:00.0`,
  ...faults,
});
const node = (...gpus: SimulatedGpu[]): SimulatedGpuState => ({ gpus });

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every key path in a JSON document, with array indices replaced by `[]`. */
function keyPaths(value: Json, prefix = ''): Set<string> {
  const paths = new Set<string>();
  if (Array.isArray(value)) {
    for (const v of value) for (const p of keyPaths(v, `${prefix}[]`)) paths.add(p);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      paths.add(`${prefix}.${k}`);
      for (const p of keyPaths(v, `${prefix}.${k}`)) paths.add(p);
    }
  }
  return paths;
}

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
}

/** The subset of JSON Schema the DCGM diag schema uses: type, properties, required, items. */
function validate(schema: Schema, value: Json, path = '$'): string[] {
  const errors: string[] = [];
  const typeOk: Record<string, (v: Json) => boolean> = {
    object: (v) => v !== null && typeof v === 'object' && !Array.isArray(v),
    array: Array.isArray,
    string: (v) => typeof v === 'string',
    integer: (v) => Number.isInteger(v),
  };
  if (schema.type !== undefined && !(typeOk[schema.type]?.(value) ?? true))
    return [`${path}: not ${schema.type}`];
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const key of schema.required ?? []) if (!(key in value)) errors.push(`${path}: missing ${key}`);
    for (const [key, sub] of Object.entries(schema.properties ?? {})) {
      const v = value[key];
      if (v !== undefined) errors.push(...validate(sub, v, `${path}.${key}`));
    }
  }
  if (Array.isArray(value) && schema.items !== undefined) {
    value.forEach((v, i) => errors.push(...validate(schema.items as Schema, v, `${path}[${i}]`)));
  }
  return errors;
}

describe('renderDcgmiHealth', () => {
  it('renders a healthy node exactly like vc_DCGMIHealthCheckResults.json', () => {
    const out = renderDcgmiHealth(node(gpu(0), gpu(1)));
    assert.equal(out.exitCode, 0);
    assert.deepEqual(JSON.parse(out.stdout), JSON.parse(fixture('dcgmi/vc_DCGMIHealthCheckResults.json')));
  });

  it('renders one DBE like SYNTHETIC_dcgmi_health_check_json_with_incident.json, exit 0 despite Failure', () => {
    const out = renderDcgmiHealth(node(gpu(0, { eccUncorrected: 1 })));
    assert.equal(out.exitCode, 0);
    assert.deepEqual(
      JSON.parse(out.stdout),
      JSON.parse(fixture('dcgmi/SYNTHETIC_dcgmi_health_check_json_with_incident.json')),
    );
  });

  it('prints jsoncpp\'s styled layout: tabs, " : ", containers on their own line', () => {
    const out = renderDcgmiHealth(node(gpu(0)));
    assert.equal(
      out.stdout,
      '{\n\t"body" :\n\t{\n\t\t"Overall Health" :\n\t\t{\n\t\t\t"value" : "Healthy"\n\t\t}\n\t},\n' +
        '\t"header" :\n\t[\n\t\t"Health Monitor Report"\n\t]\n}\n',
    );
  });

  it('wraps long messages into overflow lines of at most 54 characters', () => {
    const out = renderDcgmiHealth(node(gpu(0, { remappedRowsFailure: true, eccUncorrected: 12 })));
    const parsed = parseDcgmiHealth(out.stdout, out.exitCode);
    assert.ok(parsed.kind === 'report');
    const lines = parsed.incidents[0]?.lines ?? [];
    assert.ok(lines.length > 1);
    for (const line of lines) assert.ok(line.length <= 54, line);
  });

  it('exit 253 without watches, and the parser says so', () => {
    const out = renderDcgmiHealth({ ...node(gpu(0, { xid: 79 })), healthWatchesSet: false });
    assert.equal(out.exitCode, DCGMI_EXIT.GENERIC_ERROR);
    assert.equal(parseDcgmiHealth(out.stdout, out.exitCode).kind, 'no-watches');
  });

  it('exit 235 when the host engine is unreachable, and the parser says so', () => {
    const out = renderDcgmiHealth({ ...node(gpu(0)), hostEngineReachable: false });
    assert.equal(out.exitCode, DCGMI_EXIT.HOST_ENGINE_UNREACHABLE);
    assert.throws(
      () => parseDcgmiHealth(out.stdout, out.exitCode),
      (err) => hasErrorCode(err, 'DCGM_UNREACHABLE'),
    );
  });

  // Round trips: render -> parse gives back the faults of the state.
  const roundTrips: [string, SimulatedGpuState, string, [number, string, DcgmErrorName[]][]][] = [
    ['healthy', node(gpu(0), gpu(1)), 'Healthy', []],
    ['XID 13 (DCGM does not watch it)', node(gpu(0, { xid: 13 })), 'Healthy', []],
    [
      'XID 31 (a memory warning)',
      node(gpu(0, { xid: 31 })),
      'Warning',
      [[0, 'Warning', ['DCGM_FR_XID_ERROR']]],
    ],
    ['XID 48', node(gpu(0), gpu(1, { xid: 48 })), 'Failure', [[1, 'Failure', ['DCGM_FR_XID_ERROR']]]],
    ['XID 79', node(gpu(0, { xid: 79 })), 'Failure', [[0, 'Failure', ['DCGM_FR_FALLEN_OFF_BUS']]]],
    ['XID 95', node(gpu(0, { xid: 95 })), 'Failure', [[0, 'Failure', ['DCGM_FR_UNCONTAINED_ERROR']]]],
    ['XID 64', node(gpu(0, { xid: 64 })), 'Failure', [[0, 'Failure', ['DCGM_FR_ROW_REMAP_FAILURE']]]],
    [
      'pending remap',
      node(gpu(2, { remappedRowsPending: true })),
      'Warning',
      [[2, 'Warning', ['DCGM_FR_PENDING_ROW_REMAP']]],
    ],
    [
      'DBE with a failed remap on one GPU',
      node(gpu(0, { eccUncorrected: 3, remappedRowsFailure: true })),
      'Failure',
      [[0, 'Failure', ['DCGM_FR_VOLATILE_DBE_DETECTED', 'DCGM_FR_ROW_REMAP_FAILURE']]],
    ],
    [
      'faults on two GPUs',
      node(gpu(0, { xid: 48, eccUncorrected: 1 }), gpu(1), gpu(3, { xid: 119 })),
      'Failure',
      [
        [0, 'Failure', ['DCGM_FR_XID_ERROR', 'DCGM_FR_VOLATILE_DBE_DETECTED']],
        [3, 'Failure', ['DCGM_FR_XID_ERROR']],
      ],
    ],
    [
      'an injected NVLink failure',
      {
        gpus: [gpu(0)],
        healthFailures: [{ gpuIndex: 0, code: 'DCGM_FR_NVLINK_DOWN', system: 'NVLINK system' }],
      },
      'Failure',
      [[0, 'Failure', ['DCGM_FR_NVLINK_DOWN']]],
    ],
    [
      'an injected thermal warning',
      {
        gpus: [gpu(0)],
        healthFailures: [
          { gpuIndex: 0, code: 'DCGM_FR_CLOCKS_EVENT_THERMAL', health: 'Warning', system: 'Thermal system' },
        ],
      },
      'Warning',
      [[0, 'Warning', ['DCGM_FR_CLOCKS_EVENT_THERMAL']]],
    ],
  ];
  for (const [name, state, overall, want] of roundTrips) {
    it(`round trip: ${name}`, () => {
      const out = renderDcgmiHealth(state);
      assert.equal(out.exitCode, 0);
      const parsed = parseDcgmiHealth(out.stdout, out.exitCode);
      assert.ok(parsed.kind === 'report');
      assert.equal(parsed.overall, overall);
      const got = parsed.incidents.map((i): [number, string, DcgmErrorName[]] => [
        Number(i.entityId),
        i.health,
        i.errors.map((e) => e.code),
      ]);
      // Several systems of one GPU are separate incidents; merge them per GPU for the comparison.
      const merged = new Map<number, [number, string, DcgmErrorName[]]>();
      for (const [g, h, codes] of got) {
        const prev = merged.get(g);
        merged.set(
          g,
          prev === undefined
            ? [g, h, codes]
            : [g, prev[1] === 'Failure' ? 'Failure' : h, [...prev[2], ...codes]],
        );
      }
      assert.deepEqual([...merged.values()], want);
      for (const incident of parsed.incidents) {
        for (const error of incident.errors) assert.equal(error.gpu, Number(incident.entityId));
      }
    });
  }

  it('lists the incidents it renders', () => {
    const incidents = simulatedHealthIncidents(
      node(gpu(0, { xid: 48 }), gpu(1, { remappedRowsPending: true })),
    );
    assert.deepEqual(
      incidents.map((i) => [i.gpuIndex, i.code, i.health]),
      [
        [0, 'DCGM_FR_XID_ERROR', 'Failure'],
        [1, 'DCGM_FR_PENDING_ROW_REMAP', 'Warning'],
      ],
    );
  });
});

describe('renderDcgmiDiag', () => {
  const schema = JSON.parse(fixture('dcgmi/DCGM_testing_python3_dcgm_diag_schema.json')) as Schema;
  const gb10 = JSON.parse(fixture('dcgmi/dcgm4_diag_r1_GB10_fail.json')) as Json;
  const vc3 = JSON.parse(fixture('dcgmi/vc_DCGMIDiag_r2_results_dcgm3x.json')) as Json;

  it('the DCGM 4 fixture satisfies the DCGM diag schema (the validator works)', () => {
    assert.deepEqual(validate(schema, gb10), []);
    assert.notDeepEqual(validate(schema, vc3), []);
  });

  for (const level of [1, 2, 3, 4] as const) {
    it(`DCGM 4 shape, level ${level}: satisfies the schema, passes on a healthy node`, () => {
      const out = renderDcgmiDiag(node(gpu(0), gpu(1)), level, '4');
      assert.equal(out.exitCode, 0);
      const json = JSON.parse(out.stdout) as Json;
      assert.deepEqual(validate(schema, json), []);
      const parsed = parseDcgmiDiag(out.stdout, out.exitCode);
      assert.equal(parsed.shape, '4');
      assert.equal(parsed.passed, true);
      assert.equal(parsed.tests.length, [1, 3, 7, 9][level - 1]);
    });

    it(`DCGM 3 shape, level ${level}: passes on a healthy node`, () => {
      const out = renderDcgmiDiag(node(gpu(0)), level, '3');
      assert.equal(out.exitCode, 0);
      const parsed = parseDcgmiDiag(out.stdout, out.exitCode);
      assert.equal(parsed.shape, '3');
      assert.equal(parsed.passed, true);
    });
  }

  it('DCGM 4 shape uses the same keys as dcgm4_diag_r1_GB10_fail.json', () => {
    const out = renderDcgmiDiag(node(gpu(0, { remappedRowsPending: true })), 1, '4');
    assert.equal(out.exitCode, DCGMI_EXIT.DIAG_FAILED);
    const rendered = keyPaths(JSON.parse(out.stdout) as Json);
    const real = keyPaths(gb10);
    // The fixture also carries info lines and a serial number the simulation has no use for.
    const optional = new Set([
      '."DCGM Diagnostic".test_categories[].tests[].test_summary.info',
      '.entity_groups[].entities[].serial_num',
    ]);
    for (const path of real) {
      if (!path.includes('info')) assert.ok(rendered.has(path) || optional.has(path), `missing ${path}`);
    }
    for (const path of rendered) assert.ok(real.has(path), `unexpected ${path}`);
  });

  it('DCGM 3 shape at level 2 has the tests and keys of vc_DCGMIDiag_r2_results_dcgm3x.json', () => {
    const out = renderDcgmiDiag(node(gpu(0)), 2, '3');
    const rendered = JSON.parse(out.stdout) as Json;
    const names = (doc: Json): string[] =>
      parseDcgmiDiag(JSON.stringify(doc), 0).tests.map((t) => `${t.category}/${t.name}`);
    assert.deepEqual(names(rendered), names(vc3));
    for (const path of keyPaths(rendered)) assert.ok(keyPaths(vc3).has(path), `unexpected ${path}`);
  });

  const failures: [string, SimulatedGpuState, 1 | 2 | 3 | 4, [number, DcgmErrorName][]][] = [
    ['pending remap', node(gpu(0, { remappedRowsPending: true })), 1, [[0, 'DCGM_FR_PENDING_ROW_REMAP']]],
    [
      'failed remap at level 2 also fails the memory test',
      node(gpu(0), gpu(1, { remappedRowsFailure: true })),
      2,
      [
        [1, 'DCGM_FR_ROW_REMAP_FAILURE'],
        [1, 'DCGM_FR_FAULTY_MEMORY'],
      ],
    ],
    ['XID 79', node(gpu(0, { xid: 79 })), 1, [[0, 'DCGM_FR_FALLEN_OFF_BUS']]],
    [
      'XID 48 with a DBE',
      node(gpu(0, { xid: 48, eccUncorrected: 1 })),
      1,
      [
        [0, 'DCGM_FR_XID_ERROR'],
        [0, 'DCGM_FR_VOLATILE_DBE_DETECTED'],
      ],
    ],
    [
      'an injected failure',
      { gpus: [gpu(0), gpu(1)], healthFailures: [{ gpuIndex: 1, code: 'DCGM_FR_NVLINK_DOWN' }] },
      1,
      [[1, 'DCGM_FR_NVLINK_DOWN']],
    ],
  ];
  for (const shape of ['3', '4'] as const) {
    for (const [name, state, level, want] of failures) {
      it(`DCGM ${shape} round trip: ${name}`, () => {
        const out = renderDcgmiDiag(state, level, shape);
        assert.equal(out.exitCode, DCGMI_EXIT.DIAG_FAILED);
        const parsed = parseDcgmiDiag(out.stdout, out.exitCode);
        assert.equal(parsed.passed, false);
        const got = parsed.errors
          .filter((e) => e.status === 'Fail')
          .map((e): [number, DcgmErrorName] => [e.gpu ?? -1, e.name ?? 'DCGM_FR_UNKNOWN']);
        assert.deepEqual(
          got.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1])),
          [...want].sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1])),
        );
      });
    }
  }

  it('refuses to run while a GPU has processes: runtime_error, exit 222', () => {
    for (const shape of ['3', '4'] as const) {
      const out = renderDcgmiDiag(node(gpu(0), gpu(1, { processes: 2 })), 3, shape);
      assert.equal(out.exitCode, DCGMI_EXIT.IN_USE);
      const parsed = parseDcgmiDiag(out.stdout, out.exitCode);
      assert.equal(parsed.passed, false);
      assert.match(parsed.runtimeError ?? '', /GPU 1 \(2 process\(es\)\)/);
    }
  });

  it('exit 235 when the host engine is unreachable', () => {
    const out = renderDcgmiDiag({ ...node(gpu(0)), hostEngineReachable: false }, 1, '4');
    assert.equal(out.exitCode, 235);
    assert.throws(
      () => parseDcgmiDiag(out.stdout, out.exitCode),
      (err) => hasErrorCode(err, 'DCGM_UNREACHABLE'),
    );
  });
});

describe('renderQueryGpu', () => {
  const fields = DEFAULT_HEALTH_QUERY_FIELDS;

  it('renders the format of DERIVED_query_gpu_noheader_nounits_h100.csv', () => {
    const derivedFields = [
      'index',
      'uuid',
      'name',
      'pci.bus_id',
      'ecc.errors.uncorrected.volatile.total',
      'retired_pages.pending',
      'remapped_rows.pending',
      'remapped_rows.failure',
      'temperature.gpu',
      'clocks_event_reasons.active',
      'driver_model.current',
    ];
    const state = node({
      index: 0,
      uuid: 'GPU-00000000-0000-0000-0000-000000000000',
      name: H100,
      busId: '00000000:00:09.0',
      temperatureC: 59,
      processes: 3,
    });
    const out = renderQueryGpu(state, derivedFields);
    assert.equal(out.stdout, fixture('nvidia-smi/DERIVED_query_gpu_noheader_nounits_h100.csv'));
    const withHeader = renderQueryGpu(state, derivedFields, { header: true });
    assert.equal(withHeader.stdout, fixture('nvidia-smi/DERIVED_query_gpu_with_header_h100.csv'));
  });

  const states: [string, SimulatedGpuState][] = [
    ['a healthy node', node(gpu(0), gpu(1), gpu(2), gpu(3))],
    ['pending remap and ECC', node(gpu(0, { remappedRowsPending: true, eccUncorrected: 4 }), gpu(1))],
    ['failed remap', node(gpu(0), gpu(1, { remappedRowsFailure: true, temperatureC: 71 }))],
    ['a recovery action', node(gpu(0, { recoveryAction: 'Reset' }))],
  ];
  for (const [name, state] of states) {
    for (const format of [{}, { header: true }, { header: true, units: true }]) {
      it(`round trip ${JSON.stringify(format)}: ${name}`, () => {
        const out = renderQueryGpu(state, fields, format);
        assert.equal(out.exitCode, 0);
        const parsed = parseQueryGpu(out.stdout, fields);
        assert.equal(parsed.header, format.header === true);
        assert.deepEqual(
          parsed.rows,
          state.gpus.map((g) => ({
            index: g.index,
            uuid: g.uuid,
            name: g.name,
            'pci.bus_id': g.busId,
            'ecc.errors.uncorrected.volatile.total': g.eccUncorrected ?? 0,
            'remapped_rows.pending': g.remappedRowsPending ?? false,
            'remapped_rows.failure': g.remappedRowsFailure ?? false,
            'temperature.gpu': g.temperatureC ?? 34,
            'clocks_event_reasons.active': '0x0000000000000001',
            gpu_recovery_action: g.recoveryAction ?? 'None',
          })),
        );
      });
    }
  }

  it('prints units only on numeric fields with a unit', () => {
    const out = renderQueryGpu(node(gpu(0)), ['index', 'memory.total', 'name'], {
      header: true,
      units: true,
    });
    assert.equal(out.stdout, `index, memory.total [MiB], name\n0, 81559 MiB, ${H100}\n`);
    assert.equal(
      parseQueryGpu(out.stdout, ['index', 'memory.total', 'name']).rows[0]?.['memory.total'],
      81559,
    );
  });

  it('prints [N/A] for fields the simulation does not model', () => {
    const out = renderQueryGpu(node(gpu(0)), ['index', 'retired_pages.pending', 'fan.speed']);
    assert.equal(out.stdout, '0, [N/A], [N/A]\n');
  });

  it('a GPU that fell off the bus is unreachable, exit 15, and triage escalates to reboot-node', () => {
    const state = node(gpu(0), gpu(1, { xid: 79 }));
    const out = renderQueryGpu(state, fields);
    assert.equal(out.exitCode, NVIDIA_SMI_EXIT.GPU_LOST);
    const parsed = parseQueryGpu(out.stdout, fields);
    assert.deepEqual(
      parsed.rows.map((r) => r['index']),
      [0],
    );
    assert.equal(parsed.unreachable.length, 1);
    const refined = refineWithEvidence('restart-app', {
      gpus: parsed.rows,
      unreachableGpus: parsed.unreachable,
      expectedGpuCount: 2,
    });
    assert.equal(refined.class, 'reboot-node');
  });

  it('no GPUs: "No devices were found", exit 6', () => {
    const out = renderQueryGpu(node(), fields);
    assert.equal(out.exitCode, NVIDIA_SMI_EXIT.NOT_FOUND);
    assert.deepEqual(parseQueryGpu(out.stdout, fields).rows, []);
  });
});

describe('renderListGpus', () => {
  it('renders nvidia-smi_L_h100.txt (plain and MIG)', () => {
    const [plain = '', mig = ''] = fixture('nvidia-smi/nvidia-smi_L_h100.txt').split(/^#.*\n/m);
    const uuid = 'GPU-00000000-0000-0000-0000-000000000000';
    const base = { index: 0, uuid, name: H100, busId: '00000000:00:09.0' };
    assert.equal(renderListGpus(node(base)).stdout, plain);
    const migDevices = ['3g.40gb', '2g.20gb', '1g.10gb', '1g.10gb'].map((profile, i) => ({
      profile,
      uuid: `MIG-0000000${i}-0000-0000-0000-00000000000${i}`,
    }));
    assert.equal(renderListGpus(node({ ...base, mig: migDevices })).stdout, mig);
  });

  const states: [string, SimulatedGpuState][] = [
    ['one GPU', node(gpu(0))],
    ['eight GPUs', node(...Array.from({ length: 8 }, (_, i) => gpu(i)))],
    ['MIG on one of two', node(gpu(0, { mig: [{ profile: '7g.80gb', uuid: 'MIG-a' }] }), gpu(1))],
  ];
  for (const [name, state] of states) {
    it(`round trip: ${name}`, () => {
      const out = renderListGpus(state);
      assert.equal(out.exitCode, 0);
      const parsed = parseListGpus(out.stdout);
      assert.deepEqual(
        parsed.gpus,
        state.gpus.map((g) => ({
          index: g.index,
          name: g.name,
          uuid: g.uuid,
          mig: (g.mig ?? []).map((m, i) => ({ profile: m.profile, deviceIndex: i, uuid: m.uuid })),
        })),
      );
    });
  }

  it('a GPU that fell off the bus is unreachable, exit 15', () => {
    const out = renderListGpus(node(gpu(0), gpu(1, { xid: 79 })));
    assert.equal(out.exitCode, NVIDIA_SMI_EXIT.GPU_LOST);
    const parsed = parseListGpus(out.stdout);
    assert.equal(parsed.gpus.length, 1);
    assert.match(parsed.unreachable[0] ?? '', /00000000:29:00\.0/);
  });
});

describe('simulated triage end to end', () => {
  const cases: [string, SimulatedGpu, string, string][] = [
    [
      'XID 48 with a failed remap',
      gpu(0, { xid: 48, remappedRowsFailure: true, eccUncorrected: 1 }),
      'reset-gpu',
      'replace-hardware',
    ],
    [
      'XID 48 with a pending remap',
      gpu(0, { xid: 48, remappedRowsPending: true, eccUncorrected: 1 }),
      'reset-gpu',
      'reset-gpu',
    ],
    ['XID 13 on a clean GPU', gpu(0, { xid: 13 }), 'restart-app', 'restart-app'],
    ['XID 79', gpu(0, { xid: 79 }), 'reboot-node', 'reboot-node'],
    [
      'XID 31 with a pending remap found on the node',
      gpu(0, { xid: 31, remappedRowsPending: true }),
      'restart-app',
      'reset-gpu',
    ],
  ];
  for (const [name, faulty, alert, want] of cases) {
    it(`${name}: ${alert} -> ${want}`, () => {
      const state = node(faulty, gpu(1));
      const health = renderDcgmiHealth(state);
      const query = renderQueryGpu(state, DEFAULT_HEALTH_QUERY_FIELDS);
      const rows = parseQueryGpu(query.stdout, DEFAULT_HEALTH_QUERY_FIELDS);
      const refined = refineWithEvidence(alert as 'reset-gpu', {
        health: parseDcgmiHealth(health.stdout, health.exitCode),
        gpus: rows.rows,
        unreachableGpus: rows.unreachable,
        expectedGpuCount: 2,
      });
      assert.equal(refined.class, want, refined.reasons.join('\n'));
    });
  }
});
