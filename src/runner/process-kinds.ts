import type { V1Container, V1Pod } from '@kubernetes/client-node';
import path from 'node:path';
import { z } from 'zod';
import { FLEETMEDIC_BIN } from '../cli/bin-path.js';
import { FleetmedicError } from '../errors.js';
import type { InferenceArtifacts } from '../toolchain/inference.js';

/**
 * The processes fleetmedic's process runner can run for a pod: a fixed list, chosen by the pod's
 * `fleetmedic.io/process` label. A pod never names a command or a file; the few settings a kind
 * takes come from annotations checked here.
 */
export const PROCESS_KINDS = ['standin', 'llama-server', 'gateway'] as const;
export type ProcessKindName = (typeof PROCESS_KINDS)[number];

/** Model a `llama-server` pod serves: the tiny generated model (fast) or SmolLM2 (coherent text). */
export const MODEL_ANNOTATION = 'fleetmedic.io/model';
/**
 * Checkpoint store of a `llama-server` pod with a `ready` port: the name of a directory under the
 * runner's checkpoint root (`<state-dir>/checkpoints/<name>`), never a path, from which the replica
 * restores its model and slot before it turns Ready (src/runner/replica.ts).
 */
export const CHECKPOINT_STORE_ANNOTATION = 'fleetmedic.io/checkpoint-store';
/**
 * The Deployment a `gateway` pod routes to, in the pod's namespace: a name, never an address (the
 * gateway watches its Ready pods through the runner's kubeconfig).
 */
export const GATEWAY_UPSTREAM_ANNOTATION = 'fleetmedic.io/gateway-upstream';
/** Service time of a `standin` pod, in milliseconds. */
export const STANDIN_SERVICE_MS_ANNOTATION = 'fleetmedic.io/standin-service-ms';

/** What to run for a pod. */
export interface ProcessCommand {
  readonly file: string;
  readonly args: readonly string[];
  /** A short description for logs (`llama-server tiny on 127.128.0.5:8080`). */
  readonly describe: string;
}

export interface ProcessContext {
  readonly pod: V1Pod;
  readonly container: V1Container;
  readonly podIP: string;
  readonly port: number;
  /** A directory of the pod's own (llama-server's slot files), removed with the pod. */
  readonly podDir: string;
  /** Where the checkpoint stores named by {@link CHECKPOINT_STORE_ANNOTATION} are. */
  readonly checkpointRoot: string;
  /** The inference toolchain, when built; a `llama-server` pod waits for it otherwise. */
  readonly inference: InferenceArtifacts | undefined;
  /** The runner's kubeconfig file, which a `gateway` pod watches its upstream with. */
  readonly kubeconfig?: string | undefined;
}

/** A pod the runner cannot serve, and why (it stays not Ready, with the reason in its status). */
export class ProcessSpecError extends FleetmedicError {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super('PROCESS_SPEC', message, { permanent: true });
  }
}

const annotationsSchema = z.object({
  [MODEL_ANNOTATION]: z.enum(['tiny', 'smollm2']).default('tiny'),
  [CHECKPOINT_STORE_ANNOTATION]: z
    .string()
    .regex(
      /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
      'a store name (lowercase letters, digits and dashes), not a path',
    )
    .optional(),
  [STANDIN_SERVICE_MS_ANNOTATION]: z.coerce.number().int().min(0).max(60_000).default(20),
  [GATEWAY_UPSTREAM_ANNOTATION]: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "a Deployment name in the pod's namespace")
    .optional(),
});

function annotations(pod: V1Pod): z.infer<typeof annotationsSchema> {
  const parsed = annotationsSchema.safeParse(pod.metadata?.annotations ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ProcessSpecError(
      `pod ${pod.metadata?.namespace}/${pod.metadata?.name}: annotation ${String(issue.path[0])}: ${issue.message}`,
      'InvalidAnnotation',
    );
  }
  return parsed.data;
}

/** The kind a pod's label names, or a {@link ProcessSpecError}. */
export function processKindOf(pod: V1Pod, label: string): ProcessKindName {
  const value = pod.metadata?.labels?.[label] ?? '';
  if ((PROCESS_KINDS as readonly string[]).includes(value)) return value as ProcessKindName;
  throw new ProcessSpecError(
    `pod ${pod.metadata?.namespace}/${pod.metadata?.name}: ${label}=${JSON.stringify(value)} is not a process ` +
      `the runner knows (${PROCESS_KINDS.join(', ')})`,
    'UnknownProcess',
  );
}

/** The container the runner serves (the first) and its port (the one named `http`, else the first). */
export function servedContainer(pod: V1Pod): { container: V1Container; port: number } {
  const container = pod.spec?.containers[0];
  const ports = container?.ports ?? [];
  const port = (ports.find((p) => p.name === 'http') ?? ports[0])?.containerPort;
  if (!container || !port) {
    throw new ProcessSpecError(
      `pod ${pod.metadata?.namespace}/${pod.metadata?.name} has no container port: the runner needs one to bind`,
      'NoContainerPort',
    );
  }
  return { container, port };
}

/** The command of a pod of kind `kind`. */
export function processCommand(kind: ProcessKindName, ctx: ProcessContext): ProcessCommand {
  const notes = annotations(ctx.pod);
  if (kind === 'standin') {
    const serviceMs = notes[STANDIN_SERVICE_MS_ANNOTATION];
    const args = [
      FLEETMEDIC_BIN,
      'gateway',
      'standin',
      ...['--host', ctx.podIP, '--port', String(ctx.port), '--service-ms', String(serviceMs)],
      ...['--model', ctx.pod.metadata?.labels?.app ?? 'standin'],
    ];
    return {
      file: process.execPath,
      args,
      describe: `stand-in on ${ctx.podIP}:${ctx.port} (${serviceMs} ms)`,
    };
  }
  if (kind === 'gateway') return gatewayCommand(ctx, notes[GATEWAY_UPSTREAM_ANNOTATION]);
  if (!ctx.inference) {
    throw new ProcessSpecError(
      'llama-server or the inference models are not built; run `npm run toolchain:inference`',
      'InferenceToolchainMissing',
    );
  }
  const model = notes[MODEL_ANNOTATION];
  const modelFile = model === 'tiny' ? ctx.inference.tinyModel : ctx.inference.smollm2;
  const readyPort = ctx.container.ports?.find((p) => p.name === 'ready')?.containerPort;
  const store = notes[CHECKPOINT_STORE_ANNOTATION];
  if (readyPort !== undefined) {
    // The replica wrapper: restore model and slot, then serve readiness on the `ready` port.
    return {
      file: process.execPath,
      args: [
        FLEETMEDIC_BIN,
        'replica',
        ...['--llama-server', ctx.inference.llamaServer, '--model', modelFile],
        ...['--host', ctx.podIP, '--port', String(ctx.port), '--ready-port', String(readyPort)],
        ...['--slot-dir', ctx.podDir, '--ctx-size', '2048', '--parallel', '2'],
        ...(store ? ['--store', path.join(ctx.checkpointRoot, store)] : []),
      ],
      describe: `llama.cpp replica ${store ? `restoring from store ${store}` : model} on ${ctx.podIP}:${ctx.port} (ready on ${readyPort})`,
    };
  }
  if (store) {
    throw new ProcessSpecError(
      `pod ${ctx.pod.metadata?.namespace}/${ctx.pod.metadata?.name}: ${CHECKPOINT_STORE_ANNOTATION} needs a container ` +
        "port named 'ready' (the replica turns Ready there once model and slot are restored)",
      'NoReadyPort',
    );
  }
  return {
    file: ctx.inference.llamaServer,
    args: [
      ...['--model', modelFile, '--host', ctx.podIP, '--port', String(ctx.port)],
      ...['--threads', '1', '--threads-batch', '1', '--ctx-size', '2048', '--parallel', '2'],
      ...['--no-warmup', '--slot-save-path', ctx.podDir],
    ],
    describe: `llama-server ${model} on ${ctx.podIP}:${ctx.port}`,
  };
}

/**
 * `fleetmedic gateway serve` for a `gateway` pod: on the pod's IP and port, in front of the Ready pods
 * of the Deployment its annotation names, watched with the runner's kubeconfig; on SIGTERM (after the
 * pod's preStop sleep) it drains its client connections (at most 8 s, within the drill's 12 s grace
 * period) before it stops.
 */
function gatewayCommand(ctx: ProcessContext, upstream: string | undefined): ProcessCommand {
  const pod = `${ctx.pod.metadata?.namespace}/${ctx.pod.metadata?.name}`;
  if (!upstream) {
    throw new ProcessSpecError(
      `pod ${pod}: a gateway pod needs the annotation ${GATEWAY_UPSTREAM_ANNOTATION} (the Deployment it routes to)`,
      'NoGatewayUpstream',
    );
  }
  if (!ctx.kubeconfig) {
    throw new ProcessSpecError(
      `pod ${pod}: the runner has no kubeconfig file to give the gateway (start it with --kubeconfig or from \`fleetmedic up\`)`,
      'NoKubeconfig',
    );
  }
  const namespace = ctx.pod.metadata?.namespace ?? 'default';
  return {
    file: process.execPath,
    args: [
      FLEETMEDIC_BIN,
      ...['--kubeconfig', ctx.kubeconfig],
      'gateway',
      'serve',
      ...['--host', ctx.podIP, '--port', String(ctx.port)],
      ...['--deployment', `${namespace}/${upstream}`, '--health-interval', '500'],
      // Its clients reach it through the stack's Service, pinned to the pod: they close idle
      // connections themselves after ~2 s (the hint less undici's 2 s), well within the drain.
      ...['--keep-alive-timeout', '4000', '--drain-seconds', '8'],
    ],
    describe: `gateway on ${ctx.podIP}:${ctx.port} in front of ${namespace}/${upstream}`,
  };
}
