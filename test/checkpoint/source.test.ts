import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { NonLoopbackAddressError } from '../../src/errors.js';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import { findNewestCheckpoint, requestAdminCheckpoint } from '../../src/checkpoint/source.js';
import { tempDir } from './helpers.js';

describe('findNewestCheckpoint', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  async function file(name: string, mtimeSec: number): Promise<void> {
    await fs.writeFile(path.join(dir, name), name);
    await fs.utimes(path.join(dir, name), mtimeSec, mtimeSec);
  }

  it('picks the newest *.pt file, skipping dot files, other suffixes and directories', async () => {
    await file('a.pt', 1000);
    await file('b.pt', 3000);
    await file('.tmp.pt', 9000);
    await file('c.txt', 9000);
    await fs.mkdir(path.join(dir, 'd.pt'));
    const found = await findNewestCheckpoint(dir, { now: new Date(10_000_000) });
    assert.equal(found.path, path.join(dir, 'b.pt'));
    assert.equal(found.kind, 'newest-file');
    assert.equal(found.size, 4);
    const other = await findNewestCheckpoint(dir, { suffix: '.txt', now: new Date(10_000_000) });
    assert.equal(other.path, path.join(dir, 'c.txt'));
  });

  it('retries later when the newest file may still be being written', async () => {
    await file('model.pt', 1000);
    await assert.rejects(
      findNewestCheckpoint(dir, { now: new Date(1_000_000 + 2000), settleMs: 5000 }),
      (err) =>
        err instanceof CheckpointError && !err.permanent && /may still be being written/.test(err.message),
    );
    await findNewestCheckpoint(dir, { now: new Date(1_000_000 + 2000), settleMs: 1000 });
  });

  it('a missing directory or no checkpoint at all is permanent', async () => {
    await assert.rejects(
      findNewestCheckpoint(path.join(dir, 'nope'), { now: new Date() }),
      (err) => err instanceof CheckpointError && err.permanent && /does not exist/.test(err.message),
    );
    await assert.rejects(
      findNewestCheckpoint(dir, { now: new Date() }),
      (err) => err instanceof CheckpointError && err.permanent && /no \*\.pt checkpoint/.test(err.message),
    );
  });
});

describe('requestAdminCheckpoint', () => {
  let server: http.Server;
  let base: string;
  let answer: { status: number; body: string; delayMs?: number } = { status: 200, body: '{}' };
  const requests: Array<{ method?: string; body: string }> = [];
  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        requests.push({ method: req.method, body });
        setTimeout(
          () => res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body),
          answer.delayMs ?? 0,
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/checkpoint`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('POSTs and returns the path (and sha256) the model server wrote', async () => {
    answer = {
      status: 200,
      body: JSON.stringify({ path: '/ckpt/model.pt', sha256: 'AB'.repeat(32), size: 10 }),
    };
    const result = await requestAdminCheckpoint(base, { simulated: true, reason: 'test' });
    assert.deepEqual(result, { path: '/ckpt/model.pt', sha256: 'ab'.repeat(32), size: 10 });
    assert.equal(requests.at(-1)?.method, 'POST');
    assert.deepEqual(JSON.parse(requests.at(-1)?.body ?? ''), { reason: 'test' });
  });

  const cases: Array<[string, { status: number; body: string }, boolean, RegExp]> = [
    ['a 500 retries', { status: 500, body: 'busy' }, false, /answered 500: busy/],
    ['a 429 retries', { status: 429, body: 'slow down' }, false, /answered 429/],
    ['a 404 is permanent', { status: 404, body: 'no such endpoint' }, true, /answered 404/],
    ['a body without a path is permanent', { status: 200, body: '{"ok":true}' }, true, /expected \{"path"/],
    ['a relative path is permanent', { status: 200, body: '{"path":"model.pt"}' }, true, /expected \{"path"/],
  ];
  for (const [label, reply, permanent, message] of cases) {
    it(label, async () => {
      answer = reply;
      await assert.rejects(requestAdminCheckpoint(base, { simulated: true }), (err) => {
        assert.ok(err instanceof CheckpointError, String(err));
        assert.equal(err.code, 'ADMIN_ENDPOINT');
        assert.equal(err.permanent, permanent);
        assert.match(err.message, message);
        return true;
      });
    });
  }

  it('times out (retryably) when the model server takes too long', async () => {
    answer = { status: 200, body: '{"path":"/x.pt"}', delayMs: 500 };
    await assert.rejects(
      requestAdminCheckpoint(base, { simulated: true, timeoutMs: 50 }),
      (err) => err instanceof CheckpointError && !err.permanent && /timed out after 50 ms/.test(err.message),
    );
  });

  it('refuses non-loopback addresses and hostnames in simulated mode, without dialling', async () => {
    let dialled = false;
    const fetch = (() => {
      dialled = true;
      throw new Error('must not dial');
    }) as typeof globalThis.fetch;
    for (const url of [
      'http://10.0.0.5:8000/admin/checkpoint',
      'http://localhost:8000/x',
      'http://192.0.2.1/x',
    ]) {
      await assert.rejects(requestAdminCheckpoint(url, { simulated: true, fetch }), NonLoopbackAddressError);
    }
    assert.equal(dialled, false);
    await assert.rejects(requestAdminCheckpoint('ftp://127.0.0.1/x', { simulated: true }), /must be http/);
  });
});
