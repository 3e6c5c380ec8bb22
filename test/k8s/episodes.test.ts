import fc from 'fast-check';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  EPISODE_RECORD_LIMITS,
  episodeKeyOf,
  episodeVerdict,
  formatEpisodeRecord,
  parseEpisodeKey,
  parseEpisodeRecord,
  recordEpisodes,
  type EpisodeEntry,
} from '../../src/k8s/episodes.js';

const T0 = '2026-11-27T10:00:00Z';
const NOW = '2026-12-01T00:00:00.000Z';

function entries(raw: string | undefined): EpisodeEntry[] {
  const r = parseEpisodeRecord(raw);
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.entries;
}

describe('parseEpisodeKey', () => {
  for (const [key, fingerprint, startsAt] of [
    ['a1b2c3@2026-11-27T10:00:00Z', 'a1b2c3', '2026-11-27T10:00:00Z'],
    ['a1b2c3@2026-11-27T10:00:00.123456789Z', 'a1b2c3', '2026-11-27T10:00:00.123456789Z'],
    ['a1b2c3@2026-11-27T11:00:00+01:00', 'a1b2c3', '2026-11-27T11:00:00+01:00'],
    ['user@example@2026-11-27T10:00:00Z', 'user@example', '2026-11-27T10:00:00Z'],
    ['a1b2c3@unknown-start', 'a1b2c3@unknown-start', null],
    ['evt-1234', 'evt-1234', null],
    ['evt@1', 'evt@1', null],
    ['@2026-11-27T10:00:00Z', '@2026-11-27T10:00:00Z', null],
  ] as const) {
    it(`${key} -> ${fingerprint} / ${startsAt}`, () => {
      assert.deepEqual(parseEpisodeKey(key), { fingerprint, startsAt });
    });
  }
});

describe('parseEpisodeRecord', () => {
  it('reads an absent or empty annotation as an empty record', () => {
    assert.deepEqual(parseEpisodeRecord(undefined), { ok: true, entries: [] });
    assert.deepEqual(parseEpisodeRecord(''), { ok: true, entries: [] });
  });

  it('reads back what formatEpisodeRecord wrote', () => {
    const e: EpisodeEntry[] = [
      { fingerprint: 'a', startsAt: T0, handledAt: NOW },
      { fingerprint: 'evt-1', startsAt: null, handledAt: NOW },
    ];
    assert.deepEqual(parseEpisodeRecord(formatEpisodeRecord(e)), { ok: true, entries: e });
  });

  // Fails closed: each of these used to read as "no episodes", so every re-sent alert quarantined again.
  for (const [name, raw, error] of [
    ['not JSON', '{not json', /^not JSON/],
    ['a string', '"a@2026-11-27T10:00:00Z"', /record/],
    ['an unknown version', '{"version":3,"episodes":[]}', /^version: /],
    ['a record without its episodes', '{"version":2}', /^episodes: /],
    [
      'an entry without handledAt',
      '{"version":2,"episodes":[{"fingerprint":"a"}]}',
      /episodes\[0\]\.handledAt/,
    ],
    [
      'an entry whose startsAt is no time',
      '{"version":2,"episodes":[{"fingerprint":"a","startsAt":"yesterday","handledAt":"2026-11-27T10:00:00Z"}]}',
      /episodes\[0\]\.startsAt: must be an RFC 3339 time/,
    ],
    [
      'an entry with an unknown field',
      '{"version":2,"episodes":[{"fingerprint":"a","handledAt":"2026-11-27T10:00:00Z","x":1}]}',
      /episodes\[0\]/,
    ],
    [
      'an opaque fingerprint that reads as a timed key',
      '{"version":2,"episodes":[{"fingerprint":"a@2026-11-27T10:00:00Z","handledAt":"2026-11-27T10:00:00Z"}]}',
      /round-trip/,
    ],
    [
      'a first-format entry without a key',
      '[{"handledAt":"2026-11-27T10:00:00Z"}]',
      /^first format: \[0\]\.key/,
    ],
    ['a first-format entry with a bad time', '[{"key":"a@x","handledAt":"soon"}]', /\[0\]\.handledAt/],
    ['a first-format list of strings', '["a@2026-11-27T10:00:00Z"]', /^first format: \[0\]/],
  ] as const) {
    it(`refuses ${name}, saying where`, () => {
      const r = parseEpisodeRecord(raw);
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.error, error);
    });
  }

  it('migrates the first format: one entry per fingerprint, the newest episode kept', () => {
    const legacy = JSON.stringify([
      { key: 'a@2026-11-27T10:00:00Z', handledAt: '2026-11-27T11:00:00.000Z' },
      { key: 'a@2026-11-28T10:00:00Z', handledAt: '2026-11-28T11:00:00.000Z' },
      { key: 'a@2026-11-26T10:00:00Z', handledAt: '2026-11-29T11:00:00.000Z' },
      { key: 'b@unknown-start', handledAt: '2026-11-27T12:00:00.000Z' },
    ]);
    assert.deepEqual(entries(legacy), [
      { fingerprint: 'b@unknown-start', startsAt: null, handledAt: '2026-11-27T12:00:00.000Z' },
      { fingerprint: 'a', startsAt: '2026-11-28T10:00:00Z', handledAt: '2026-11-28T11:00:00.000Z' },
    ]);
    assert.equal(episodeVerdict(entries(legacy), 'a@2026-11-27T10:00:00Z'), 'handled');
    assert.equal(episodeVerdict(entries(legacy), 'b@unknown-start'), 'handled');
  });
});

describe('episodeVerdict', () => {
  const record: EpisodeEntry[] = [
    { fingerprint: 'a', startsAt: '2026-11-27T10:00:00.000000500Z', handledAt: '2020-01-01T00:00:00Z' },
    { fingerprint: 'evt-1', startsAt: null, handledAt: NOW },
  ];
  for (const [key, verdict, why] of [
    ['a@2026-11-27T10:00:00.000000500Z', 'handled', 'the same episode, however long ago it was handled'],
    ['a@2026-11-27T10:00:00.0000005Z', 'handled', 'the same time, written otherwise'],
    ['a@2026-11-27T11:00:00+01:00', 'handled', 'an earlier episode (offset time)'],
    ['a@2026-11-27T10:00:00.000000501Z', 'new', 'a later episode, a nanosecond later'],
    ['a@2026-11-28T10:00:00Z', 'new', 'a later episode'],
    ['b@2026-11-27T10:00:00Z', 'new', 'another fingerprint'],
    ['evt-1', 'handled', 'the same opaque key'],
    ['evt-2', 'new', 'another opaque key'],
    ['a', 'new', "an opaque key equal to a timed entry's fingerprint"],
    ['evt-1@2026-11-27T10:00:00Z', 'new', "a timed key whose fingerprint is an opaque entry's key"],
  ] as const) {
    it(`${key} -> ${verdict} (${why})`, () => assert.equal(episodeVerdict(record, key), verdict));
  }

  it('says new on an empty record', () => assert.equal(episodeVerdict([], 'a@' + T0), 'new'));
});

describe('recordEpisodes', () => {
  it('keeps one entry per fingerprint: a later episode replaces, an earlier one changes nothing', () => {
    let r = recordEpisodes([], ['a@2026-11-27T10:00:00Z'], '2026-11-27T11:00:00.000Z');
    r = recordEpisodes(r, ['a@2026-11-28T10:00:00Z'], '2026-11-28T11:00:00.000Z');
    assert.deepEqual(r, [
      { fingerprint: 'a', startsAt: '2026-11-28T10:00:00Z', handledAt: '2026-11-28T11:00:00.000Z' },
    ]);
    assert.deepEqual(recordEpisodes(r, ['a@2026-11-26T10:00:00Z'], NOW), r);
  });

  it('refuses a time that would not read back', () => {
    assert.throws(() => recordEpisodes([], ['a'], 'now'), RangeError);
  });

  it(`drops the oldest handled first beyond ${EPISODE_RECORD_LIMITS.entries} entries`, () => {
    const old = Array.from({ length: EPISODE_RECORD_LIMITS.entries }, (_, i) => ({
      fingerprint: `fp${i}`,
      startsAt: T0,
      // fp0 handled last: the bound drops fp1, the oldest, not the first in the list.
      handledAt: new Date(Date.parse('2026-11-01T00:00:00Z') + (i === 0 ? 10 ** 9 : i * 1000)).toISOString(),
    }));
    const r = recordEpisodes(old, ['new@' + T0], NOW);
    assert.equal(r.length, EPISODE_RECORD_LIMITS.entries);
    assert.ok(r.some((e) => e.fingerprint === 'fp0'));
    assert.ok(!r.some((e) => e.fingerprint === 'fp1'));
    assert.equal(episodeVerdict(r, 'new@' + T0), 'handled');
  });

  it(`keeps the record within ${EPISODE_RECORD_LIMITS.bytes} bytes, long keys and all`, () => {
    const keys = Array.from({ length: 40 }, (_, i) => `${String(i).padStart(3, '0')}${'x'.repeat(1000)}`);
    const r = recordEpisodes([], keys, NOW);
    assert.ok(new TextEncoder().encode(formatEpisodeRecord(r)).length <= EPISODE_RECORD_LIMITS.bytes);
    assert.ok(r.length >= 10);
    assert.equal(episodeVerdict(r, keys.at(-1)!), 'handled');
  });
});

describe('episode record properties', () => {
  const fingerprint = fc.constantFrom('a', 'b', 'c', 'd', 'evt', 'x@y', 'long'.repeat(40));
  const time = fc
    .integer({ min: Date.parse('2026-01-01T00:00:00Z'), max: Date.parse('2027-01-01T00:00:00Z') })
    .map((ms) => new Date(ms).toISOString());
  const key = fc.oneof(
    fc.tuple(fingerprint, time).map(([f, t]) => `${f}@${t}`),
    fingerprint,
    // Many short fingerprints reach the entry bound, long strings the byte bound.
    fc.tuple(fc.nat(200), time).map(([n, t]) => `n${n}@${t}`),
    fc.nat(200).map((n) => `evt-${n}`),
    fc.string({ minLength: 1, maxLength: 300 }),
  );
  /** Rounds of recording, each a batch of keys at its own time, in order. */
  const rounds = fc.array(fc.tuple(fc.array(key, { maxLength: 16, size: 'max' }), time), {
    minLength: 1,
    maxLength: 20,
    size: 'max',
  });

  function replay(batches: [string[], string][]): EpisodeEntry[] {
    let r: EpisodeEntry[] = [];
    for (const [keys, at] of batches) {
      // Through the annotation each time, as the activity does.
      r = entries(formatEpisodeRecord(recordEpisodes(r, keys, at)));
    }
    return r;
  }

  it('stays bounded, in entries and bytes', () => {
    fc.assert(
      fc.property(rounds, (batches) => {
        const r = replay(batches);
        assert.ok(r.length <= EPISODE_RECORD_LIMITS.entries);
        assert.ok(new TextEncoder().encode(formatEpisodeRecord(r)).length <= EPISODE_RECORD_LIMITS.bytes);
      }),
    );
  });

  it('holds one entry per fingerprint (an opaque key and a timed one apart)', () => {
    fc.assert(
      fc.property(rounds, (batches) => {
        const ids = replay(batches).map(
          (e) => `${e.startsAt === null ? 'opaque' : 'timed'}:${e.fingerprint}`,
        );
        assert.equal(new Set(ids).size, ids.length);
      }),
    );
  });

  it('reads every recorded key as handled afterwards, unless the bound dropped its entry', () => {
    fc.assert(
      fc.property(rounds, (batches) => {
        const source = (k: string) => {
          const { fingerprint, startsAt } = parseEpisodeKey(k);
          return `${startsAt === null ? 'opaque' : 'timed'}:${fingerprint}`;
        };
        /** Keys recorded so far, by source, while their entry stayed on the record. */
        const recorded = new Map<string, string[]>();
        let r: EpisodeEntry[] = [];
        for (const [keys, at] of batches) {
          r = entries(formatEpisodeRecord(recordEpisodes(r, keys, at)));
          for (const k of keys) recorded.set(source(k), [...(recorded.get(source(k)) ?? []), k]);
          const present = new Set(r.map((e) => source(episodeKeyOf(e))));
          for (const s of [...recorded.keys()]) if (!present.has(s)) recorded.delete(s);
          for (const k of [...recorded.values()].flat()) assert.equal(episodeVerdict(r, k), 'handled', k);
        }
      }),
    );
  });

  it('loses nothing while the record is within its bounds', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fingerprint, time).map(([f, t]) => `${f}@${t}`),
          { maxLength: 30 },
        ),
        time,
        (keys, at) => {
          const r = recordEpisodes([], keys, at);
          for (const k of keys) assert.equal(episodeVerdict(r, k), 'handled', k);
        },
      ),
    );
  });

  it('keys round-trip through their entries', () => {
    fc.assert(
      fc.property(key, (k) => {
        const parsed = parseEpisodeKey(k);
        assert.equal(episodeKeyOf(parsed), k);
      }),
    );
  });
});
