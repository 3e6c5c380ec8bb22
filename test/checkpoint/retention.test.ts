import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackupCatalog, BackupRecord } from '../../src/checkpoint/catalog.js';
import type { BackupManifest } from '../../src/checkpoint/manifest.js';
import { planRetention, type RetentionPolicy } from '../../src/checkpoint/retention.js';
import type { StoredObject } from '../../src/checkpoint/storage.js';

const NOW = new Date('2025-06-01T12:00:00Z');
const HOUR = 3_600_000;
const minutesAgo = (m: number) => NOW.getTime() - m * 60_000;

function name(minute: number, attempt = ''): string {
  return `ckpt-20250601T11${String(minute).padStart(2, '0')}00Z-run${minute}${attempt}.pt`;
}

function object(objectName: string, modifiedMs: number, size = 100, partial = false): StoredObject {
  return { name: objectName, size, modifiedMs, partial };
}

function manifest(backup: string, minute: number, verified: boolean, size = 100): BackupManifest {
  return {
    schemaVersion: 1,
    name: backup,
    location: `/b/${backup}`,
    size,
    sha256: 'a'.repeat(64),
    createdAt: `2025-06-01T11:${String(minute).padStart(2, '0')}:00.000Z`,
    verifiedAt: `2025-06-01T11:${String(minute).padStart(2, '0')}:30.000Z`,
    verified,
    source: { kind: 'newest-file', path: '/ckpt/model.pt', size, mtimeMs: 1 },
    checks: { size: true, sha256: true, structure: verified, command: 'skipped' },
  };
}

/** A backup taken at 11:<minute>, with data and manifest. */
function backup(minute: number, verified = true, extra: Partial<BackupRecord> = {}): BackupRecord {
  const n = name(minute);
  const at = NOW.getTime() - (60 - minute) * 60_000;
  return {
    name: n,
    data: object(n, at),
    manifestObject: object(`${n}.manifest.json`, at, 500),
    manifest: manifest(n, minute, verified),
    ...extra,
  };
}

const policy: RetentionPolicy = { keep: 2, staleAfterMs: HOUR };

function plan(records: BackupRecord[], partials: StoredObject[] = [], p: RetentionPolicy = policy) {
  const catalog: BackupCatalog = { records, partials };
  const result = planRetention(catalog, p, NOW);
  return { ...result, removed: result.remove.map((r) => r.object) };
}

describe('planRetention', () => {
  it('keeps the newest K verified backups and removes older ones with their manifests', () => {
    const r = plan([backup(5), backup(10), backup(15), backup(20)]);
    assert.deepEqual(r.keep, [name(20), name(15)]);
    assert.deepEqual(
      r.removed.sort(),
      [name(5), `${name(5)}.manifest.json`, name(10), `${name(10)}.manifest.json`].sort(),
    );
  });

  it('never removes the only verified copy, however old', () => {
    const old: BackupRecord = { ...backup(1), data: object(name(1), minutesAgo(60 * 24 * 365)) };
    const r = plan([old, backup(30, false), backup(40, false)], [], { keep: 1, staleAfterMs: 1 });
    assert.deepEqual(r.keep, [name(1)]);
    assert.ok(!r.removed.includes(name(1)));
    assert.ok(!r.removed.includes(`${name(1)}.manifest.json`));
  });

  it('does not count rejected or unrestorable backups toward K', () => {
    const wrongSize: BackupRecord = { ...backup(50), data: object(name(50), minutesAgo(10), 99) };
    const r = plan([backup(5), backup(10), backup(40, false), wrongSize]);
    assert.deepEqual(r.keep, [name(10), name(5)]);
  });

  it('removes the data of rejected backups at once and keeps only the newest K rejection records', () => {
    const r = plan([backup(10, false), backup(20, false), backup(30, false)]);
    assert.deepEqual(r.keep, []);
    assert.ok(r.removed.includes(name(10)) && r.removed.includes(name(20)) && r.removed.includes(name(30)));
    assert.ok(r.removed.includes(`${name(10)}.manifest.json`));
    assert.ok(!r.removed.includes(`${name(30)}.manifest.json`));
    assert.ok(!r.removed.includes(`${name(20)}.manifest.json`));
  });

  const leftovers: Array<[string, number, boolean]> = [
    ['fresh (may belong to a run in progress)', 5, false],
    ['stale (left by a killed run)', 61, true],
  ];
  for (const [label, age, removed] of leftovers) {
    it(`treats a copy without a manifest that is ${label} accordingly`, () => {
      const orphan: BackupRecord = { name: name(59), data: object(name(59), minutesAgo(age)) };
      assert.equal(plan([backup(5), orphan]).removed.includes(name(59)), removed);
    });
    it(`treats a partial upload that is ${label} accordingly`, () => {
      const partial = object(`.${name(59)}.0123456789ab.partial`, minutesAgo(age), 10, true);
      assert.equal(plan([backup(5)], [partial]).removed.includes(partial.name), removed);
    });
  }

  it('never touches protected backups (the run in progress)', () => {
    const orphan: BackupRecord = { name: name(59), data: object(name(59), minutesAgo(600)) };
    const r = plan([backup(5), orphan, backup(7, false)], [], { ...policy, protect: [name(59), name(7)] });
    assert.deepEqual(r.removed, []);
  });

  it('counts the protected current backup toward K', () => {
    const r = plan([backup(5), backup(10), backup(15)], [], { ...policy, protect: [name(15)] });
    assert.deepEqual(r.keep, [name(15), name(10)]);
    assert.deepEqual(r.removed.sort(), [name(5), `${name(5)}.manifest.json`].sort());
  });

  it('keeps a protected backup even when K newer ones exist', () => {
    const r = plan([backup(5), backup(10), backup(15)], [], { ...policy, protect: [name(5)] });
    assert.deepEqual(r.keep, [name(15), name(10), name(5)]);
    assert.deepEqual(r.removed, []);
  });

  it('leaves a backup whose manifest cannot be read alone (fail safe)', () => {
    const unreadable: BackupRecord = {
      name: name(3),
      data: object(name(3), minutesAgo(600)),
      manifestObject: object(`${name(3)}.manifest.json`, minutesAgo(600)),
      manifestError: 'manifest is not JSON',
    };
    const r = plan([unreadable, backup(5), backup(10), backup(15)], [], { keep: 1, staleAfterMs: 1 });
    assert.ok(!r.removed.includes(name(3)));
    assert.deepEqual(r.leftAlone, [{ name: name(3), reason: 'manifest is not JSON' }]);
  });

  it('removes a verified manifest whose data is gone only once stale', () => {
    const dangling = (age: number): BackupRecord => {
      const { data: _data, ...rest } = backup(45);
      return { ...rest, manifestObject: object(`${name(45)}.manifest.json`, minutesAgo(age)) };
    };
    assert.deepEqual(plan([dangling(5)]).removed, []);
    assert.deepEqual(plan([dangling(120)]).removed, [`${name(45)}.manifest.json`]);
  });

  it('orders by creation time, then verification time, never by listing order', () => {
    const first = backup(30);
    const retry: BackupRecord = {
      ...backup(30),
      name: name(30, '-2'),
      manifest: { ...manifest(name(30, '-2'), 30, true), verifiedAt: '2025-06-01T11:45:00.000Z' },
    };
    for (const records of [
      [first, retry, backup(10)],
      [backup(10), retry, first],
    ]) {
      assert.deepEqual(plan(records, [], { keep: 1, staleAfterMs: HOUR }).keep, [name(30, '-2')]);
    }
  });

  for (const keep of [0, -1, 1.5, Number.NaN]) {
    it(`refuses keep=${keep}`, () => {
      assert.throws(() => plan([backup(5)], [], { keep, staleAfterMs: HOUR }), RangeError);
    });
  }
});
