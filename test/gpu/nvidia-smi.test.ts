import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FleetmedicError } from '../../src/errors.js';
import {
  DEFAULT_HEALTH_QUERY_FIELDS,
  parseListGpus,
  parseQueryGpu,
  queryGpuFieldKind,
} from '../../src/gpu/nvidia-smi.js';
import type { QueryGpuFieldKind } from '../../src/gpu/nvidia-smi.js';

const fixture = (name: string): string =>
  readFileSync(fileURLToPath(new URL(`../fixtures/gpu/nvidia-smi/${name}`, import.meta.url)), 'utf8');

const CAPTURES = ['capture_linux_h100-80gb-hbm3_590.48.01.txt', 'capture_linux_h100-mig_590.48.01.txt'];
const UUID0 = 'GPU-00000000-0000-0000-0000-000000000000';

/** The raw output sections of a capture, keyed by the command that produced them, in order. */
function captureSections(text: string): { command: string; output: string }[] {
  const sections: { command: string; output: string }[] = [];
  const parts = text.split(/^#{80}\n/m);
  for (let i = 0; i + 1 < parts.length; i++) {
    const command = /^# \$ (nvidia-smi.*?)\s*$/m.exec(parts[i] ?? '')?.[1];
    if (command !== undefined) sections.push({ command, output: parts[i + 1] ?? '' });
  }
  return sections;
}

function assertParseError(fn: () => unknown, what: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FleetmedicError, String(err));
    assert.equal(err.code, 'PARSE_ERROR');
    assert.equal(err.permanent, true);
    assert.match(err.message, /^nvidia-smi /);
    assert.match(err.message, what);
    return true;
  });
}

const DERIVED_FIELDS = [
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

const DERIVED_ROW = {
  index: 0,
  uuid: UUID0,
  name: 'NVIDIA H100 80GB HBM3',
  'pci.bus_id': '00000000:00:09.0',
  'ecc.errors.uncorrected.volatile.total': 0,
  'retired_pages.pending': null,
  'remapped_rows.pending': false,
  'remapped_rows.failure': false,
  'temperature.gpu': 59,
  'clocks_event_reasons.active': '0x0000000000000000',
  'driver_model.current': null,
};

describe('parseQueryGpu', () => {
  it('reads DERIVED_query_gpu_noheader_nounits_h100.csv', () => {
    const result = parseQueryGpu(fixture('DERIVED_query_gpu_noheader_nounits_h100.csv'), DERIVED_FIELDS);
    assert.equal(result.header, false);
    assert.deepEqual(result.rows, [DERIVED_ROW]);
    assert.deepEqual(result.unreachable, []);
  });

  it('reads DERIVED_query_gpu_with_header_h100.csv', () => {
    const result = parseQueryGpu(fixture('DERIVED_query_gpu_with_header_h100.csv'), DERIVED_FIELDS);
    assert.equal(result.header, true);
    assert.deepEqual(result.rows, [DERIVED_ROW]);
  });

  for (const capture of CAPTURES) {
    const queries = captureSections(fixture(capture)).filter((s) => s.command.includes('--query-'));
    it(`${capture}: has --query-gpu sections to read`, () => {
      assert.equal(queries.filter((s) => s.command.includes('--query-gpu=')).length, 2);
    });
    for (const [n, { command, output }] of queries.entries()) {
      const fields = /--query-[a-z-]+=(\S+)/.exec(command)?.[1]?.split(',') ?? [];
      it(`${capture}: reads section ${n} (${command.slice(11, 40)}..., ${fields.length} fields, header and units)`, () => {
        const result = parseQueryGpu(output, fields);
        assert.equal(result.header, true);
        for (const row of result.rows) assert.equal(Object.keys(row).length, fields.length);
        if (command.includes('--query-gpu=')) {
          assert.equal(result.rows.length, 1);
          const row = result.rows[0] ?? {};
          assert.equal(row['index'], 0);
          assert.equal(row['uuid'], UUID0);
          assert.equal(row['name'], 'NVIDIA H100 80GB HBM3');
          assert.equal(row['memory.total'], 81559);
          assert.equal(typeof row['power.draw'], 'number');
          assert.equal(row['driver_model.current'], null);
          assert.equal(row['gpu_recovery_action'], 'None');
          // Hopper replaced page retirement with row remapping.
          assert.equal(row['retired_pages.pending'], null);
          assert.equal(row['ecc.errors.uncorrected.volatile.total'], 0);
          if (capture.includes('mig')) {
            // In MIG mode the driver cannot report row remapping: N/A, not "No".
            assert.equal(row['remapped_rows.failure'], null);
            assert.equal(row['mig.mode.current'], 'Enabled');
          } else {
            assert.equal(row['remapped_rows.failure'], false);
            assert.equal(row['remapped_rows.pending'], false);
          }
        }
      });
    }

    it(`${capture}: every default health query field is in --help-query-gpu`, () => {
      const help = captureSections(fixture(capture)).find((s) => s.command === 'nvidia-smi --help-query-gpu');
      assert.ok(help !== undefined);
      for (const field of DEFAULT_HEALTH_QUERY_FIELDS) {
        assert.match(help.output, new RegExp(`^"${field.replace(/\./g, '\\.')}"`, 'm'), field);
      }
    });
  }

  it('types the default health fields', () => {
    const kinds = Object.fromEntries(DEFAULT_HEALTH_QUERY_FIELDS.map((f) => [f, queryGpuFieldKind(f)]));
    assert.deepEqual(kinds, {
      index: 'number',
      uuid: 'string',
      name: 'string',
      'pci.bus_id': 'string',
      'ecc.errors.uncorrected.volatile.total': 'number',
      'remapped_rows.pending': 'boolean',
      'remapped_rows.failure': 'boolean',
      'temperature.gpu': 'number',
      'clocks_event_reasons.active': 'string',
      gpu_recovery_action: 'string',
    });
  });

  const kinds: [string, QueryGpuFieldKind][] = [
    ['retired_pages.pending', 'boolean'],
    ['memory.used', 'number'],
    ['power.draw', 'number'],
    ['utilization.gpu', 'number'],
    ['clocks.current.sm', 'number'],
    ['fan.speed', 'number'],
    ['remapped_rows.uncorrectable', 'number'],
    ['retired_pages.double_bit.count', 'number'],
    ['pstate', 'string'],
    ['driver_version', 'string'],
    ['compute_mode', 'string'],
    ['ecc.mode.current', 'string'],
  ];
  for (const [field, kind] of kinds) {
    it(`types ${field} as ${kind}`, () => assert.equal(queryGpuFieldKind(field), kind));
  }

  const values: [string, string, string | number | boolean | null][] = [
    ['temperature.gpu', '59', 59],
    ['power.draw', '631.95', 631.95],
    ['power.draw', '631.95 W', 631.95],
    ['memory.used', '59 MiB', 59],
    ['utilization.gpu', '100 %', 100],
    ['remapped_rows.failure', 'Yes', true],
    ['remapped_rows.failure', 'No', false],
    ['remapped_rows.failure', '[N/A]', null],
    ['remapped_rows.pending', '[Unknown Error]', null],
    ['temperature.gpu', '[Not Supported]', null],
    ['temperature.gpu', 'N/A', null],
    ['name', '', null],
    ['gpu_recovery_action', 'Reset', 'Reset'],
    ['clocks_event_reasons.active', '0x0000000000000001', '0x0000000000000001'],
  ];
  for (const [field, raw, want] of values) {
    it(`reads ${field} ${JSON.stringify(raw)} as ${JSON.stringify(want)}`, () => {
      const result = parseQueryGpu(`0, ${raw}\n`, ['index', field]);
      assert.deepEqual(result.rows[0], { index: 0, [field]: want });
    });
  }

  it('reads several GPUs and CRLF line ends', () => {
    const result = parseQueryGpu('0, Yes\r\n1, No\r\n', ['index', 'remapped_rows.pending']);
    assert.deepEqual(
      result.rows.map((r) => r['remapped_rows.pending']),
      [true, false],
    );
  });

  it('"No devices were found" gives no rows', () => {
    assert.deepEqual(parseQueryGpu('No devices were found\n', ['index']).rows, []);
  });

  it('reports GPUs it cannot open and keeps the others', () => {
    const stdout = '0, 41\nUnable to determine the device handle for GPU0000:3B:00.0: Unknown Error\n2, 40\n';
    const result = parseQueryGpu(stdout, ['index', 'temperature.gpu']);
    assert.deepEqual(
      result.rows.map((r) => r['index']),
      [0, 2],
    );
    assert.deepEqual(result.unreachable, [
      'Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error',
    ]);
  });

  const bad: [string, string, readonly string[], RegExp][] = [
    ['empty output', '', DEFAULT_HEALTH_QUERY_FIELDS, /empty/],
    ['blank lines only', '\n \n', DEFAULT_HEALTH_QUERY_FIELDS, /empty/],
    ['garbage', 'Segmentation fault', DEFAULT_HEALTH_QUERY_FIELDS, /line 1 has 1 values, expected 10/],
    ['too few columns', '0, GPU-0, H100', DEFAULT_HEALTH_QUERY_FIELDS, /line 1 has 3 values, expected 10/],
    ['too many columns', '0, 1, 2', ['index', 'temperature.gpu'], /line 1 has 3 values, expected 2/],
    ['a word for a number', 'zero, 41', ['index', 'temperature.gpu'], /index should be a number, got "zero"/],
    [
      'a number for Yes/No',
      '0, 1',
      ['index', 'remapped_rows.failure'],
      /remapped_rows\.failure should be Yes or No/,
    ],
    ['the wrong header', 'uuid, index\n0, GPU-0', ['index', 'uuid'], /index should be a number, got "uuid"/],
    ['no fields requested', '0\n', [], /no fields/],
    [
      'a driver error',
      'Failed to initialize NVML: Driver/library version mismatch',
      ['index'],
      /should be a number/,
    ],
  ];
  for (const [name, stdout, fields, what] of bad) {
    it(`rejects ${name} with PARSE_ERROR`, () => assertParseError(() => parseQueryGpu(stdout, fields), what));
  }
});

describe('parseListGpus', () => {
  // The fixture holds two outputs, separated by a comment line: a plain H100 and one in MIG mode.
  const [plain = '', mig = ''] = fixture('nvidia-smi_L_h100.txt').split(/^#.*\n/m);

  it('reads the plain part of nvidia-smi_L_h100.txt', () => {
    assert.deepEqual(parseListGpus(plain), {
      gpus: [{ index: 0, name: 'NVIDIA H100 80GB HBM3', uuid: UUID0, mig: [] }],
      unreachable: [],
    });
  });

  it('reads the MIG part of nvidia-smi_L_h100.txt', () => {
    const result = parseListGpus(mig);
    assert.equal(result.gpus.length, 1);
    assert.deepEqual(result.gpus[0]?.mig, [
      { profile: '3g.40gb', deviceIndex: 0, uuid: 'MIG-00000000-0000-0000-0000-000000000000' },
      { profile: '2g.20gb', deviceIndex: 1, uuid: 'MIG-00000001-0000-0000-0000-000000000001' },
      { profile: '1g.10gb', deviceIndex: 2, uuid: 'MIG-00000002-0000-0000-0000-000000000002' },
      { profile: '1g.10gb', deviceIndex: 3, uuid: 'MIG-00000003-0000-0000-0000-000000000003' },
    ]);
  });

  for (const capture of CAPTURES) {
    it(`${capture}: reads the -L section`, () => {
      const section = captureSections(fixture(capture)).find((s) => s.command === 'nvidia-smi -L');
      assert.ok(section !== undefined);
      const result = parseListGpus(section.output);
      assert.equal(result.gpus.length, 1);
      assert.equal(result.gpus[0]?.uuid, UUID0);
      assert.equal(result.gpus[0]?.mig.length, capture.includes('mig') ? 4 : 0);
    });
  }

  it('reads older MIG lines and several GPUs', () => {
    const stdout = [
      'GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5a3e)',
      '  MIG 1g.5gb Device 0: (UUID: MIG-GPU-5a3e/7/0)',
      'GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-77b1)',
      '',
    ].join('\n');
    const result = parseListGpus(stdout);
    assert.deepEqual(
      result.gpus.map((g) => [g.index, g.uuid, g.mig.map((m) => m.uuid)]),
      [
        [0, 'GPU-5a3e', ['MIG-GPU-5a3e/7/0']],
        [1, 'GPU-77b1', []],
      ],
    );
  });

  it('reports GPUs it cannot open', () => {
    const stdout =
      'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-a)\nUnable to determine the device handle for GPU1: 0000:34:00.0: Unknown Error\n';
    const result = parseListGpus(stdout);
    assert.equal(result.gpus.length, 1);
    assert.equal(result.unreachable.length, 1);
  });

  it('"No devices were found" gives no GPUs', () =>
    assert.deepEqual(parseListGpus('No devices were found\n').gpus, []));

  const bad: [string, string, RegExp][] = [
    ['empty output', '', /empty/],
    ['blank output', '\n\n', /empty/],
    [
      'garbage',
      'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.',
      /line 1 is not a GPU/,
    ],
    [
      'a MIG line before any GPU',
      '  MIG 1g.10gb     Device  0: (UUID: MIG-0)\n',
      /MIG device before any GPU/,
    ],
    ['a GPU line without a UUID', 'GPU 0: NVIDIA H100 80GB HBM3\n', /line 1 is not a GPU/],
    ['a truncated line', 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0000\n', /line 1 is not a GPU/],
  ];
  for (const [name, stdout, what] of bad) {
    it(`rejects ${name} with PARSE_ERROR`, () => assertParseError(() => parseListGpus(stdout), what));
  }
});
