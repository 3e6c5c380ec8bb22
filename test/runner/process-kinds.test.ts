import type { V1Pod } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROCESS_LABEL } from '../../src/k8s/labels.js';
import {
  CHECKPOINT_STORE_ANNOTATION,
  GATEWAY_UPSTREAM_ANNOTATION,
  MODEL_ANNOTATION,
  ProcessSpecError,
  STANDIN_SERVICE_MS_ANNOTATION,
  processCommand,
  processKindOf,
  servedContainer,
} from '../../src/runner/process-kinds.js';

function pod(
  labels: Record<string, string>,
  annotations: Record<string, string> = {},
  ports = [8080],
): V1Pod {
  return {
    metadata: { name: 'p', namespace: 'ns', labels, annotations },
    spec: {
      containers: [{ name: 'server', image: 'x', ports: ports.map((containerPort) => ({ containerPort })) }],
    },
  };
}

const inference = {
  llamaServer: '/cache/llama-server',
  smollm2: '/cache/smollm2.gguf',
  tinyModel: '/cache/tiny.gguf',
};

const base = {
  podIP: '127.128.0.5',
  port: 8080,
  podDir: '/state/runner/pods/u',
  checkpointRoot: '/state/checkpoints',
  inference,
};

describe('process kinds: what the runner runs for a pod', () => {
  it('takes the kind from the label and refuses one it does not know, naming the known ones', () => {
    assert.equal(processKindOf(pod({ [PROCESS_LABEL]: 'standin' }), PROCESS_LABEL), 'standin');
    assert.throws(
      () => processKindOf(pod({ [PROCESS_LABEL]: '/bin/sh' }), PROCESS_LABEL),
      (err: Error) =>
        err instanceof ProcessSpecError &&
        err.reason === 'UnknownProcess' &&
        err.message.includes('"/bin/sh"') &&
        err.message.includes('standin, llama-server, gateway'),
    );
  });

  it('binds the pod IP and the container port named http, else the first', () => {
    const named: V1Pod = pod({});
    named.spec!.containers[0]!.ports = [{ containerPort: 9000 }, { name: 'http', containerPort: 8080 }];
    assert.equal(servedContainer(named).port, 8080);
    assert.equal(servedContainer(pod({}, {}, [7000])).port, 7000);
    assert.throws(() => servedContainer(pod({}, {}, [])), /has no container port/);
  });

  it('builds the stand-in and llama-server commands from annotations it checks', () => {
    const standin = pod({ app: 'chat' }, { [STANDIN_SERVICE_MS_ANNOTATION]: '50' });
    const s = processCommand('standin', { ...base, pod: standin, container: standin.spec!.containers[0]! });
    assert.deepEqual(s.args.slice(1, 3), ['gateway', 'standin']);
    assert.ok(s.args.join(' ').includes('--host 127.128.0.5 --port 8080 --service-ms 50 --model chat'));

    const llama = pod({}, { [MODEL_ANNOTATION]: 'smollm2' });
    const l = processCommand('llama-server', { ...base, pod: llama, container: llama.spec!.containers[0]! });
    assert.equal(l.file, '/cache/llama-server');
    assert.ok(l.args.join(' ').includes('--model /cache/smollm2.gguf --host 127.128.0.5 --port 8080'));
    assert.ok(l.args.join(' ').includes('--slot-save-path /state/runner/pods/u'));

    const bad = pod({}, { [MODEL_ANNOTATION]: 'llama-70b' });
    assert.throws(
      () => processCommand('llama-server', { ...base, pod: bad, container: bad.spec!.containers[0]! }),
      (err: Error) => err instanceof ProcessSpecError && err.message.includes(MODEL_ANNOTATION),
    );
    assert.throws(
      () =>
        processCommand('llama-server', {
          ...base,
          inference: undefined,
          pod: llama,
          container: llama.spec!.containers[0]!,
        }),
      /npm run toolchain:inference/,
    );
  });

  it('runs a llama-server pod with a ready port as the replica wrapper, restoring from a named store', () => {
    const replica = pod({}, { [CHECKPOINT_STORE_ANNOTATION]: 'chat-ckpt' });
    replica.spec!.containers[0]!.ports = [
      { name: 'http', containerPort: 8080 },
      { name: 'ready', containerPort: 8081 },
    ];
    const r = processCommand('llama-server', {
      ...base,
      pod: replica,
      container: replica.spec!.containers[0]!,
    });
    assert.equal(r.file, process.execPath);
    const args = r.args.join(' ');
    assert.ok(args.includes('replica --llama-server /cache/llama-server --model /cache/tiny.gguf'), args);
    assert.ok(args.includes('--host 127.128.0.5 --port 8080 --ready-port 8081'), args);
    assert.ok(args.includes('--store /state/checkpoints/chat-ckpt'), args);

    // A store is a name under the checkpoint root, never a path.
    for (const name of ['../etc', '/var/lib/x', 'A']) {
      const evil = pod({}, { [CHECKPOINT_STORE_ANNOTATION]: name });
      evil.spec!.containers[0]!.ports = replica.spec!.containers[0]!.ports;
      assert.throws(
        () => processCommand('llama-server', { ...base, pod: evil, container: evil.spec!.containers[0]! }),
        (err: Error) => err instanceof ProcessSpecError && /not a path/.test(err.message),
        name,
      );
    }
    // A store without a ready port: the pod would turn Ready before its restore, so it is refused.
    const noReady = pod({}, { [CHECKPOINT_STORE_ANNOTATION]: 'chat-ckpt' });
    assert.throws(
      () =>
        processCommand('llama-server', { ...base, pod: noReady, container: noReady.spec!.containers[0]! }),
      (err: Error) => err instanceof ProcessSpecError && err.reason === 'NoReadyPort',
    );
  });

  it('runs a gateway pod as `fleetmedic gateway serve` in front of the Deployment its annotation names', () => {
    const gw = pod({ [PROCESS_LABEL]: 'gateway' }, { [GATEWAY_UPSTREAM_ANNOTATION]: 'chat' }, [8090]);
    const ctx = {
      ...base,
      port: 8090,
      pod: gw,
      container: gw.spec!.containers[0]!,
      kubeconfig: '/state/kube.yaml',
    };
    const g = processCommand('gateway', ctx);
    assert.equal(g.file, process.execPath);
    const args = g.args.slice(1).join(' ');
    assert.equal(
      args,
      '--kubeconfig /state/kube.yaml gateway serve --host 127.128.0.5 --port 8090 --deployment ns/chat ' +
        '--health-interval 500 --keep-alive-timeout 4000 --drain-seconds 8',
    );
    // No upstream, or an upstream that is not a Deployment name: refused, with the reason.
    const none = pod({}, {}, [8090]);
    assert.throws(
      () => processCommand('gateway', { ...ctx, pod: none, container: none.spec!.containers[0]! }),
      (err: Error) => err instanceof ProcessSpecError && err.reason === 'NoGatewayUpstream',
    );
    const evil = pod({}, { [GATEWAY_UPSTREAM_ANNOTATION]: 'http://10.0.0.1' }, [8090]);
    assert.throws(
      () => processCommand('gateway', { ...ctx, pod: evil, container: evil.spec!.containers[0]! }),
      (err: Error) => err instanceof ProcessSpecError && err.reason === 'InvalidAnnotation',
    );
    // A runner without a kubeconfig file cannot give the gateway its pod watch.
    assert.throws(
      () => processCommand('gateway', { ...ctx, kubeconfig: undefined }),
      (err: Error) => err instanceof ProcessSpecError && err.reason === 'NoKubeconfig',
    );
  });
});
