import { z } from 'zod';
import { ConfigError, NonLoopbackAddressError } from '../errors.js';
import { assertLoopbackUrl, isLoopbackAddress } from '../k8s/loopback.js';

const ms = (fallback: number, min = 1) => z.number().int().min(min).default(fallback);

/** The gateway's settings; every field has a default, so `{}` plus replicas is a working gateway. */
export const gatewayConfigSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8090),
    /** Static replicas (base URLs); combined with `kube` when both are given. */
    replicas: z.array(z.url({ protocol: /^https?$/ })).default([]),
    /**
     * Watch the pods of one Deployment. The credentials are explicit, exactly one of: a kubeconfig
     * file, or the pod's ServiceAccount (`inCluster`); never ~/.kube/config.
     */
    kube: z
      .object({
        namespace: z.string().min(1),
        deployment: z.string().min(1),
        kubeconfig: z.string().min(1).optional(),
        inCluster: z.boolean().default(false),
        port: z.number().int().min(1).max(65535).default(8080),
      })
      .optional(),
    /** A fallback model service (an OpenAI-compatible base URL). */
    fallbackUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** Replaces `model` in requests sent to the fallback service. */
    fallbackModel: z.string().min(1).optional(),
    breaker: z
      .object({ failureThreshold: z.number().int().min(1).default(5), halfOpenAfterMs: ms(60_000) })
      .prefault({}),
    timeouts: z
      .object({
        /** Whole request, all attempts together. */
        requestMs: ms(300_000),
        /** Per attempt: until the first body byte (the first token of a stream). */
        ttfbMs: ms(60_000),
        /** Between two chunks of a stream (and two reads of any body). */
        streamIdleMs: ms(30_000),
        connectMs: ms(2_000),
      })
      .prefault({}),
    retry: z
      .object({
        /** Concurrent retries allowed, as a percentage of the requests in flight (Envoy: 20). */
        budgetPercent: z.number().min(0).max(100).default(20),
        /** Concurrent retries always allowed (Envoy: 3). */
        minConcurrent: z.number().int().min(0).default(3),
        /** Attempts per request, the first included. */
        maxAttempts: z.number().int().min(1).default(3),
      })
      .prefault({}),
    /** Requests in flight beyond which new ones are shed with 429. */
    maxConcurrent: z.number().int().min(1).default(1024),
    retryAfterSeconds: z.number().int().min(1).default(1),
    health: z
      .object({
        path: z.string().startsWith('/').default('/health'),
        intervalMs: ms(5_000, 10),
        /** Each interval is scaled by a random factor in [1 - jitter, 1 + jitter]. */
        jitter: z.number().min(0).max(1).default(0.2),
        timeoutMs: ms(2_000),
      })
      .prefault({}),
    oom: z
      .object({
        status: z.number().int().min(400).max(599).default(500),
        bodyPattern: z
          .string()
          .default('out of memory|failed to allocate|CUDA error: out of memory')
          .refine(validRegExp, 'not a valid regular expression'),
      })
      .prefault({}),
    connectionsPerReplica: z.number().int().min(1).default(128),
    /**
     * How long a client's idle keep-alive connection stays open (the `Keep-Alive: timeout` hint).
     * 65 s suits a proxy in front (an ingress, a load balancer) that closes first; clients that reach
     * the pods through a ClusterIP Service keep a connection pinned to its pod, and drain cleanly when
     * this is shorter than the drain: Node and undici clients then close idle ones themselves.
     */
    keepAliveMs: z.number().int().min(1_000).max(600_000).default(65_000),
    bodyLimitBytes: z
      .number()
      .int()
      .min(1024)
      .default(8 * 1024 * 1024),
    /** Continue a stream broken mid-way on another replica (llama.cpp's /apply-template + /completion). */
    continuation: z.boolean().default(false),
    /**
     * A simulated cluster: refuse replica and fallback addresses outside 127.0.0.0/8 and bind a
     * loopback `host` only. `false` on a real cluster.
     */
    loopbackOnly: z.boolean().default(true),
  })
  .strict();

function validRegExp(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}

/** The validated, frozen gateway settings. */
export type GatewayConfig = Readonly<z.output<typeof gatewayConfigSchema>>;
/** What callers pass: every field optional. */
export type GatewayConfigInput = z.input<typeof gatewayConfigSchema>;

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/**
 * Validates gateway settings and fills in defaults.
 *
 * @throws ConfigError naming each bad field, the value received and what was expected.
 * @throws NonLoopbackAddressError when `loopbackOnly` (a simulation) meets a host, replica or
 *   fallback address outside loopback.
 * @example parseGatewayConfig({ replicas: ['http://127.0.0.1:8081'] }).breaker.failureThreshold // 5
 */
export function parseGatewayConfig(input: unknown): GatewayConfig {
  const result = gatewayConfigSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const field = issue.path.join('.') || '(root)';
      const got = valueAt(input, issue.path);
      return `  ${field}: ${issue.message} (got ${got === undefined ? 'nothing' : JSON.stringify(got)})`;
    });
    throw new ConfigError(`invalid gateway configuration:\n${lines.join('\n')}`);
  }
  const config = result.data;
  if (config.replicas.length === 0 && !config.kube) {
    throw new ConfigError('invalid gateway configuration: no replicas: give replicas or kube (or both)');
  }
  if (config.kube && config.kube.inCluster === (config.kube.kubeconfig !== undefined)) {
    throw new ConfigError(
      "invalid gateway configuration: kube: exactly one of kubeconfig (a file) and inCluster (the pod's " +
        `ServiceAccount), got ${config.kube.inCluster ? 'both' : 'neither'}`,
    );
  }
  if (config.loopbackOnly) {
    if (!isLoopbackAddress(config.host)) {
      throw new NonLoopbackAddressError(
        config.host,
        `refusing to bind ${config.host}: the cluster is a fleetmedic simulation, which serves nothing ` +
          'beyond loopback (127.0.0.0/8, ::1); bind a loopback host, or say the cluster is real ' +
          '(--any-address, or FLEETMEDIC_IN_CLUSTER=true in a pod; loopbackOnly: false in the configuration)',
      );
    }
    for (const url of config.replicas) assertLoopbackUrl(url, `replica ${url}`);
    if (config.fallbackUrl) assertLoopbackUrl(config.fallbackUrl, 'the fallback service');
  }
  return Object.freeze(config);
}
