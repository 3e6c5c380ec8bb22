/**
 * The gateway in front of real llama.cpp servers (the inference toolchain: `npm run
 * toolchain:inference`; skipped with the reason printed when it is absent). Everything binds
 * 127.0.0.1; each server runs one thread.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseGatewayConfig } from '../../src/gateway/config.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { sseData } from '../gateway/helpers.js';
import { inferenceOrSkip, postJson, startLlamaServer, tempDir, type LlamaServer } from './llama-server.js';

const { artifacts, skip } = await inferenceOrSkip();

async function gatewayOver(servers: LlamaServer[], continuation = false): Promise<RunningGateway> {
  return startGateway(
    parseGatewayConfig({
      port: 0,
      replicas: servers.map((s) => s.url),
      continuation,
      health: { intervalMs: 200 },
      timeouts: { ttfbMs: 10_000, streamIdleMs: 5_000, requestMs: 20_000 },
    }),
  );
}

/** The sum of the gateway's Prometheus series that start with `prefix` (0 when none). */
async function metric(gw: RunningGateway, prefix: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(prefix))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

const hello = { messages: [{ role: 'user', content: 'Say hello.' }] };

describe('the gateway in front of 3 llama-servers (tiny model)', { skip, timeout: 60_000 }, () => {
  let servers: LlamaServer[] = [];
  let gw: RunningGateway;
  let slotDir: string;

  before(async () => {
    slotDir = await tempDir('fleetmedic-slots-');
    servers = await Promise.all(
      [0, 1, 2].map(() =>
        startLlamaServer({ binary: artifacts!.llamaServer, model: artifacts!.tinyModel, slotDir }),
      ),
    );
    gw = await gatewayOver(servers);
  });
  after(async () => {
    await gw?.close();
  });

  it('answers chat completions, buffered and streamed, from a replica it names', async () => {
    const { status, headers, json } = await postJson(`${gw.url}/v1/chat/completions`, {
      ...hello,
      max_tokens: 8,
      temperature: 0,
    });
    assert.equal(status, 200, JSON.stringify(json));
    assert.ok(servers.some((s) => s.url === headers.get('x-fleetmedic-replica')));
    assert.equal(headers.get('x-fleetmedic-attempts'), '1');
    const choice = (json.choices as { message: { content: unknown }; finish_reason: string }[])[0]!;
    assert.equal(typeof choice.message.content, 'string');
    assert.equal(choice.finish_reason, 'length');

    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...hello, max_tokens: 8, stream: true }),
    });
    assert.equal(res.status, 200);
    const events = sseData(await res.text());
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { id: string });
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
  });

  it('fails no client request when a replica is SIGKILLed under 20 requests/s for 5 s', async () => {
    const victim = servers[1]!;
    const results: Promise<{ status: number; replica: string | null; error?: string }>[] = [];
    const started = Date.now();
    let killed = false;
    for (let i = 0; i < 100; i++) {
      // Open loop: request i leaves at i * 50 ms whatever the earlier ones are doing.
      await new Promise((r) => setTimeout(r, Math.max(0, started + i * 50 - Date.now())));
      if (!killed && Date.now() - started >= 2_000) {
        killed = true;
        void victim.kill();
      }
      results.push(
        postJson(`${gw.url}/v1/chat/completions`, { ...hello, max_tokens: 4 }).then(
          (r) => ({ status: r.status, replica: r.headers.get('x-fleetmedic-replica') }),
          (err: Error) => ({ status: 0, replica: null, error: err.message }),
        ),
      );
    }
    const done = await Promise.all(results);
    const failed = done.filter((r) => r.status !== 200);
    assert.deepEqual(failed, [], `${failed.length} of ${done.length} requests failed`);
    assert.ok(
      done.slice(0, 30).some((r) => r.replica === victim.url),
      'the victim served requests before it was killed',
    );
    assert.ok(
      done.slice(-40).every((r) => r.replica !== victim.url),
      'the victim served nothing in the last 2 s',
    );
    // By a failed request or by a health check, whichever noticed first.
    const ejected = `fleetmedic_gateway_ejections_total{replica="${victim.url}"`;
    assert.ok((await metric(gw, ejected)) >= 1, `${ejected}} >= 1`);
  });

  it("saves slot 0's KV cache and restores it into a freshly started server", async () => {
    const live = servers[0]!;
    const prompt = 'The quick brown fox jumps over the lazy dog. '.repeat(12);
    const first = await postJson(`${live.url}/completion`, {
      prompt,
      n_predict: 2,
      id_slot: 0,
      cache_prompt: true,
    });
    assert.equal(first.status, 200, JSON.stringify(first.json));
    const saved = await postJson(`${live.url}/slots/0?action=save`, { filename: 'slot0.bin' });
    assert.equal(saved.status, 200, JSON.stringify(saved.json));
    assert.ok((saved.json.n_saved as number) > 100, JSON.stringify(saved.json));
    const bad = await postJson(`${live.url}/slots/0?action=save`, { filename: '../escape.bin' });
    assert.equal(bad.status, 400);

    const fresh = await startLlamaServer({
      binary: artifacts!.llamaServer,
      model: artifacts!.tinyModel,
      slotDir,
    });
    const restored = await postJson(`${fresh.url}/slots/0?action=restore`, { filename: 'slot0.bin' });
    assert.equal(restored.status, 200, JSON.stringify(restored.json));
    assert.equal(restored.json.n_restored, saved.json.n_saved);
    const again = await postJson(`${fresh.url}/completion`, {
      prompt,
      n_predict: 2,
      id_slot: 0,
      cache_prompt: true,
    });
    assert.equal(again.status, 200);
    const timings = again.json.timings as { cache_n: number; prompt_n: number };
    // Everything but the last prompt token comes from the restored cache.
    assert.ok(timings.cache_n >= (saved.json.n_saved as number) - 2, JSON.stringify(timings));
    await fresh.kill();
  });
});

describe(
  'a stream continued on another llama-server when its replica dies (SmolLM2, temperature 0)',
  {
    skip,
    timeout: 60_000,
  },
  () => {
    let servers: LlamaServer[] = [];
    let gw: RunningGateway;

    before(async () => {
      servers = await Promise.all(
        [0, 1].map(() => startLlamaServer({ binary: artifacts!.llamaServer, model: artifacts!.smollm2 })),
      );
      gw = await gatewayOver(servers, true);
    });
    after(async () => {
      await gw?.close();
    });

    const request = {
      messages: [{ role: 'user', content: 'Write a short story about a robot who learns to paint.' }],
      temperature: 0,
      max_tokens: 48,
      stream: true,
    };

    /** The content deltas, ids and finish reasons of a chat completion stream. */
    function parse(events: string[]) {
      const chunks = events
        .filter((e) => e !== '[DONE]')
        .map(
          (e) =>
            JSON.parse(e) as {
              id: string;
              error?: unknown;
              choices: { delta: { content?: string }; finish_reason: string | null }[];
            },
        );
      return {
        text: chunks.map((c) => c.choices?.[0]?.delta.content ?? '').join(''),
        ids: new Set(chunks.map((c) => c.id)),
        finishes: chunks.map((c) => c.choices?.[0]?.finish_reason).filter((f) => f != null),
        errors: chunks.filter((c) => c.error !== undefined),
        done: events.at(-1) === '[DONE]',
      };
    }

    it('sends the client the prefix it had plus the continuation: one id, one finish_reason', async () => {
      const direct = await fetch(`${servers[0]!.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(request),
      });
      const reference = parse(sseData(await direct.text()));
      assert.equal(reference.finishes.length, 1);

      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(request),
      });
      assert.equal(res.status, 200);
      const victim = servers.find((s) => s.url === res.headers.get('x-fleetmedic-replica'));
      assert.ok(victim, `answered by ${res.headers.get('x-fleetmedic-replica')}`);
      const decoder = new TextDecoder();
      let body = '';
      let killedAfter = '';
      for await (const piece of res.body as AsyncIterable<Uint8Array>) {
        body += decoder.decode(piece, { stream: true });
        if (!killedAfter && sseData(body).length >= 6) {
          killedAfter = parse(sseData(body)).text;
          await victim.kill();
        }
      }
      const got = parse(sseData(body));
      assert.ok(killedAfter.length > 0, 'the replica was killed after the client had text');
      assert.deepEqual(got.errors, []);
      assert.ok(got.text.startsWith(killedAfter));
      assert.equal(got.text, reference.text);
      assert.equal(got.ids.size, 1);
      assert.deepEqual(got.finishes, reference.finishes);
      assert.ok(got.done);
      assert.equal(await metric(gw, 'fleetmedic_gateway_stream_breaks_total{result="continued"} '), 1);
    });
  },
);
