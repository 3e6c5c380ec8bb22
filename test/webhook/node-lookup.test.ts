import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CachedNodeLookup } from '../../src/webhook/node-lookup.js';
import { FakeNodes, node } from './helpers.js';

describe('cached node lookup', () => {
  it('reads a node once per TTL, however many alerts ask at once', async () => {
    let now = 0;
    const inner = new FakeNodes();
    const cached = new CachedNodeLookup(inner, { ttlMs: 1000, refreshAhead: 1, now: () => now });
    const results = await Promise.all(Array.from({ length: 50 }, () => cached.get('gpu-node-1')));
    assert.ok(results.every((r) => r?.name === 'gpu-node-1'));
    assert.equal(inner.reads, 1, 'concurrent reads were not coalesced');
    now = 999;
    await cached.get('gpu-node-1');
    assert.equal(inner.reads, 1);
    now = 1000;
    await cached.get('gpu-node-1');
    assert.equal(inner.reads, 2, 'an expired entry was not re-read');
  });

  it('refreshes ahead in the background, never serving facts older than the TTL', async () => {
    let now = 0;
    const inner = new FakeNodes();
    const cached = new CachedNodeLookup(inner, { ttlMs: 1000, now: () => now, random: () => 0 });
    await cached.get('gpu-node-1');
    now = 499;
    await cached.get('gpu-node-1');
    assert.equal(inner.reads, 1, 'refreshed before the refresh point');
    // Past the refresh point: answered from the cache at once (the opt-out is not there yet), one
    // background read for all the requests that ask meanwhile.
    inner.nodes.set('gpu-node-1', node('gpu-node-1', {}, { 'fleetmedic.io/opt-out': 'true' }));
    now = 500;
    const stale = await Promise.all(Array.from({ length: 20 }, () => cached.get('gpu-node-1')));
    assert.ok(stale.every((f) => f?.annotations['fleetmedic.io/opt-out'] === undefined));
    assert.equal(inner.reads, 2, 'background reads were not coalesced');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await cached.get('gpu-node-1'))?.annotations['fleetmedic.io/opt-out'], 'true');
    assert.equal(inner.reads, 2);

    // A failed background read leaves the entry until it expires; then the request waits and fails.
    inner.nodes.set('gpu-node-1', new Error('apiserver down'));
    now = 1000;
    assert.equal((await cached.get('gpu-node-1'))?.name, 'gpu-node-1');
    await new Promise((resolve) => setImmediate(resolve));
    now = 1500;
    await assert.rejects(cached.get('gpu-node-1'), /apiserver down/);
  });

  it('remembers "not found" for a shorter time', async () => {
    let now = 0;
    const inner = new FakeNodes();
    const cached = new CachedNodeLookup(inner, { ttlMs: 10_000, notFoundTtlMs: 100, now: () => now });
    assert.equal(await cached.get('new-node'), null);
    inner.nodes.set('new-node', node('new-node'));
    now = 50;
    assert.equal(await cached.get('new-node'), null);
    now = 100;
    assert.equal((await cached.get('new-node'))?.name, 'new-node');
  });

  it('does not cache failures (the next alert asks again)', async () => {
    const inner = new FakeNodes(new Map([['n', new Error('apiserver down')]]));
    const cached = new CachedNodeLookup(inner);
    await assert.rejects(cached.get('n'), /apiserver down/);
    inner.nodes.set('n', node('n'));
    assert.equal((await cached.get('n'))?.name, 'n');
  });

  it('stays bounded', async () => {
    const inner = new FakeNodes();
    const cached = new CachedNodeLookup(inner, { maxEntries: 2 });
    for (const n of ['gpu-node-1', 'gpu-node-2', 'gpu-node-3']) await cached.get(n);
    const before = inner.reads;
    await cached.get('gpu-node-1');
    assert.equal(inner.reads, before + 1, 'the oldest entry was kept beyond the bound');
  });
});
