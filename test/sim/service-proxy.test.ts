import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { Agent, request } from 'undici';
import type { Endpoint, ReplicaDiscovery } from '../../src/gateway/discovery.js';
import { startServiceProxy, type RunningServiceProxy } from '../../src/sim/service-proxy.js';
import { gatewayOver, standins } from '../gateway/helpers.js';

/** The pods of a Service, set by the test (a pod watch in the product). */
class Pods implements ReplicaDiscovery {
  private publish: ((endpoints: readonly Endpoint[]) => void) | undefined;
  constructor(private list: Endpoint[]) {}
  start(onChange: (endpoints: readonly Endpoint[]) => void): Promise<void> {
    this.publish = onChange;
    onChange(this.list);
    return Promise.resolve();
  }
  set(list: Endpoint[]): void {
    this.list = list;
    this.publish?.(list);
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
}

async function proxyOver(pods: Pods): Promise<RunningServiceProxy> {
  return startServiceProxy({ namespace: 'ns', deployment: 'gw', targetPort: 8090, discovery: pods });
}

const body = JSON.stringify({ model: 'standin', messages: [{ role: 'user', content: 'hi' }] });

async function chat(url: string, dispatcher: Agent): Promise<number> {
  const res = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    dispatcher,
  });
  await res.body.text();
  return res.statusCode;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('the embedded stack Service (a kube-proxy of the simulation) and the gateway drain', () => {
  it('sends new connections round robin over the listed pods; an open connection stays with its pod', async () => {
    const replicas = await standins(1);
    const [a, b] = [await gatewayOver(replicas), await gatewayOver(replicas)];
    const pods = new Pods([
      { id: 'a', url: a.url },
      { id: 'b', url: b.url },
    ]);
    const svc = await proxyOver(pods);
    try {
      for (let i = 0; i < 4; i++) {
        const fresh = new Agent({ connections: 1 });
        assert.equal(await chat(svc.url, fresh), 200);
        await fresh.close();
      }
      assert.deepEqual(Object.fromEntries(svc.connections()), { a: 2, b: 2 });

      // A kept-alive connection to one pod, then that pod leaves the rotation (terminating): the
      // connection stays with it, as conntrack keeps it, and new connections go to the other only.
      const kept = new Agent({ connections: 1 });
      assert.equal(await chat(svc.url, kept), 200);
      const held = svc.connections().get('a') === 3 ? 'a' : 'b';
      const other = held === 'a' ? { id: 'b', url: b.url } : { id: 'a', url: a.url };
      pods.set([other]);
      const before = Object.fromEntries(svc.connections());
      assert.equal(await chat(svc.url, kept), 200);
      assert.deepEqual(Object.fromEntries(svc.connections()), before, 'the open connection moved');
      const fresh = new Agent({ connections: 1 });
      assert.equal(await chat(svc.url, fresh), 200);
      assert.equal(svc.connections().get(other.id), (before[other.id] ?? 0) + 1);
      await Promise.all([kept.close(), fresh.close()]);
    } finally {
      await svc.close();
    }
  });

  it('skips a pod that refuses the connection, and resets the client when no pod is left', async () => {
    const replicas = await standins(1);
    const gw = await gatewayOver(replicas);
    const pods = new Pods([
      { id: 'gone', url: `http://127.0.0.1:${await closedPort()}` },
      { id: 'up', url: gw.url },
    ]);
    const svc = await proxyOver(pods);
    try {
      for (let i = 0; i < 3; i++) {
        const fresh = new Agent({ connections: 1 });
        assert.equal(await chat(svc.url, fresh), 200, 'a refused pod failed a request');
        await fresh.close();
      }
      assert.equal(svc.connections().get('gone'), undefined);
      pods.set([]);
      const fresh = new Agent({ connections: 1 });
      await assert.rejects(chat(svc.url, fresh), /other side closed|ECONNRESET|socket/i);
      await fresh.close();
    } finally {
      await svc.close();
    }
  });

  it('a draining gateway answers /healthz 503 with Connection: close, and stops once its clients left', async () => {
    const replicas = await standins(1);
    const gw = await gatewayOver(replicas);
    const agent = new Agent({ connections: 1, keepAliveTimeout: 60_000 });
    try {
      assert.equal(await chat(gw.url, agent), 200);
      // The agent holds an idle keep-alive connection: the drain waits for it.
      let drained = false;
      const draining = gw.drain(30_000).then(() => (drained = true));
      const res = await request(`${gw.url}/healthz`, { dispatcher: agent });
      assert.equal(res.statusCode, 503);
      assert.equal(res.headers.connection, 'close');
      assert.deepEqual(((await res.body.json()) as { draining?: boolean }).draining, true);
      await draining;
      assert.ok(drained);
      // Closed: nothing listens any more.
      await assert.rejects(chat(gw.url, new Agent({ connections: 1 })), /ECONNREFUSED/);
    } finally {
      await agent.close();
    }
  });

  it('through a gateway pod going away (out of the rotation, then its drain), no request fails', async () => {
    const replicas = await standins(2);
    const [a, b] = [await gatewayOver(replicas), await gatewayOver(replicas)];
    const pods = new Pods([
      { id: 'a', url: a.url },
      { id: 'b', url: b.url },
    ]);
    const svc = await proxyOver(pods);
    const agent = new Agent({ connections: 4, keepAliveTimeout: 60_000 });
    const statuses: (number | string)[] = [];
    let stop = false;
    const clients = Array.from({ length: 4 }, async () => {
      while (!stop) {
        statuses.push(await chat(svc.url, agent).catch((err: Error) => err.message));
      }
    });
    try {
      while (statuses.length < 40) await new Promise((r) => setTimeout(r, 10));
      const opened = svc.connections().get('b') ?? 0;
      assert.ok((svc.connections().get('a') ?? 0) > 0, 'no client connection reached a');
      // a is terminating: out of the Service's rotation, then SIGTERM's drain.
      pods.set([{ id: 'b', url: b.url }]);
      await a.drain(30_000);
      const after = statuses.length;
      while (statuses.length < after + 40) await new Promise((r) => setTimeout(r, 10));
      stop = true;
      await Promise.all(clients);
      const failed = statuses.filter((s) => s !== 200);
      assert.deepEqual(failed, [], `${failed.length} of ${statuses.length} requests failed`);
      assert.ok((svc.connections().get('b') ?? 0) > opened, "a's clients did not reconnect to b");
    } finally {
      stop = true;
      await Promise.all(clients);
      await agent.close();
      await svc.close();
    }
  });

  it("a drain ends with no idle connection to cut when the clients' keep-alive is shorter than it", async () => {
    const replicas = await standins(1);
    // A burst opens several connections; most then sit idle in the client's pool.
    const burst = async (gw: { url: string }, agent: Agent) => {
      const statuses = await Promise.all(Array.from({ length: 8 }, () => chat(gw.url, agent)));
      assert.deepEqual(new Set(statuses), new Set([200]));
    };
    const short = await gatewayOver(replicas, { keepAliveMs: 3_000 });
    const patient = new Agent({ connections: 8 });
    try {
      await burst(short, patient);
      // The clients' pool follows the Keep-Alive hint (3 s, less undici's 2 s margin).
      assert.deepEqual(await short.drain(8_000), { openAtLimit: 0 });
    } finally {
      await patient.close();
    }
    // The 65 s default (for an ingress in front, which closes first): the same idle connections
    // are still open when a short drain ends, and the close cuts them.
    const long = await gatewayOver(replicas);
    const agent = new Agent({ connections: 8 });
    try {
      await burst(long, agent);
      const { openAtLimit } = await long.drain(500);
      assert.ok(openAtLimit > 0, 'no idle connection was left to cut');
    } finally {
      await agent.close();
    }
  });
});
