import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CachedNodeLookup } from '../../src/webhook/node-lookup.js';
import { FakeNodes, node } from './helpers.js';

describe('cached node lookup', () => {
  it('reads a node once per TTL, however many alerts ask at once', async () => {
    let now = 0;
    const inner = new FakeNodes();
    const cached = new CachedNodeLookup(inner, { ttlMs: 1000, now: () => now });
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
