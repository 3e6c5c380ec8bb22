import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { loadConfig } from '../../src/config/config.js';
import {
  CHART_DIR,
  helm as runHelm,
  renderChart as renderObjects,
  type Rendered,
  type RenderOptions,
} from '../../src/inference/manifest.js';

/** The chart under test. */
export { CHART_DIR };
export const PRODUCTION_VALUES = path.join(CHART_DIR, 'values-production.yaml');

/** The toolchain's helm, isolated from $HOME and any kubeconfig (src/inference/manifest.ts). */
export function helm(args: readonly string[]): Promise<string> {
  return runHelm(args, loadConfig().cacheDir);
}

export type { Rendered };

/** `helm template`: every object the chart renders for these values. */
export function renderChart(options: Omit<RenderOptions, 'cacheDir'>): Promise<Rendered[]> {
  return renderObjects({ ...options, cacheDir: loadConfig().cacheDir });
}

/** The rendered object of `kind` whose name ends with `suffix`. */
export function find<T extends KubernetesObject = KubernetesObject>(
  objects: readonly KubernetesObject[],
  kind: string,
  suffix: string,
): T {
  const found = objects.filter((o) => o.kind === kind && o.metadata?.name?.endsWith(suffix));
  if (found.length !== 1) {
    throw new Error(
      `expected one ${kind} named *${suffix}, found ${found.map((o) => o.metadata?.name).join(', ')}`,
    );
  }
  return found[0] as T;
}

/** An API server's answer to a raw request. */
export interface KubeResponse {
  readonly status: number;
  readonly body: unknown;
  /** The Status message of a refusal. */
  readonly message: string;
}

/**
 * A raw request to the API server of `kc`, with its credentials. Raw, not client-node's typed
 * clients: those serialise through their models and drop fields they do not know, which would hide a
 * misspelt field in a template from the server's strict field validation.
 */
export async function kubeRequest(
  kc: KubeConfig,
  method: string,
  apiPath: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<KubeResponse> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const server = new URL(cluster.server);
  const options: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const transport = server.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = transport.request(
      {
        ...options,
        method,
        hostname: server.hostname,
        port: server.port,
        path: `${server.pathname.replace(/\/$/, '')}${apiPath}`,
        headers: {
          ...options.headers,
          accept: 'application/json',
          ...(payload !== undefined && { 'content-type': contentType }),
        },
        timeout: 30_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          const message = (parsed as { message?: string } | null)?.message ?? '';
          resolve({ status: res.statusCode ?? 0, body: parsed, message });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${apiPath} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
}

const discovery = new Map<string, Promise<ApiResource[]>>();

/** The REST path of an object (from the API server's discovery), without a name when `collection`. */
export async function objectPath(kc: KubeConfig, object: KubernetesObject): Promise<string> {
  const apiVersion = object.apiVersion ?? '';
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const key = `${kc.getCurrentCluster()?.server} ${base}`;
  if (!discovery.has(key)) {
    discovery.set(
      key,
      kubeRequest(kc, 'GET', base).then((r) => {
        if (r.status !== 200) throw new Error(`discovery of ${base}: HTTP ${r.status} ${r.message}`);
        return (r.body as { resources: ApiResource[] }).resources.filter((x) => !x.name.includes('/'));
      }),
    );
  }
  const resource = (await discovery.get(key)!).find((r) => r.kind === object.kind);
  if (!resource) throw new Error(`the API server does not serve ${object.kind} in ${apiVersion}`);
  const name = encodeURIComponent(object.metadata?.name ?? '');
  if (!resource.namespaced) return `${base}/${resource.name}/${name}`;
  const namespace = object.metadata?.namespace;
  if (!namespace) throw new Error(`${object.kind} ${name} has no namespace`);
  return `${base}/namespaces/${namespace}/${resource.name}/${name}`;
}

/**
 * Server-side apply of one object with strict field validation; `dryRun` runs every admission step
 * and persists nothing.
 */
export async function serverSideApply(
  kc: KubeConfig,
  object: KubernetesObject,
  options: { dryRun: boolean },
): Promise<KubeResponse> {
  const { source: _source, ...manifest } = object as Rendered;
  const query = new URLSearchParams({
    fieldManager: 'fleetmedic-chart-test',
    fieldValidation: 'Strict',
    force: 'true',
    ...(options.dryRun && { dryRun: 'All' }),
  });
  return kubeRequest(
    kc,
    'PATCH',
    `${await objectPath(kc, object)}?${query.toString()}`,
    manifest,
    'application/apply-patch+yaml',
  );
}

/** Deletes an object, ignoring one that is already gone. */
export async function deleteObject(kc: KubeConfig, object: KubernetesObject): Promise<void> {
  const res = await kubeRequest(kc, 'DELETE', await objectPath(kc, object));
  if (res.status >= 300 && res.status !== 404) {
    throw new Error(`deleting ${object.kind} ${object.metadata?.name}: HTTP ${res.status} ${res.message}`);
  }
}

/**
 * A short-lived token of a ServiceAccount (TokenRequest API), and a kubeconfig that uses it against
 * the same API server and CA as `admin`: the identity a pod with that ServiceAccount would have.
 */
export async function serviceAccountKubeConfig(
  admin: KubeConfig,
  namespace: string,
  serviceAccount: string,
): Promise<{ kc: KubeConfig; token: string }> {
  const res = await kubeRequest(
    admin,
    'POST',
    `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`,
    { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
  );
  if (res.status !== 201)
    throw new Error(`TokenRequest for ${namespace}/${serviceAccount}: HTTP ${res.status} ${res.message}`);
  const token = (res.body as { status: { token: string } }).status.token;
  const cluster = admin.getCurrentCluster()!;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ ...cluster, name: 'cluster' }],
    users: [{ name: `${namespace}:${serviceAccount}`, token }],
    contexts: [{ name: 'sa', cluster: 'cluster', user: `${namespace}:${serviceAccount}` }],
    currentContext: 'sa',
  });
  return { kc, token };
}

/** Asks the API server, as the identity of `kc`, whether it may do `verb` on a resource (SelfSubjectAccessReview). */
export async function canI(
  kc: KubeConfig,
  attributes: {
    verb: string;
    resource: string;
    group?: string;
    subresource?: string;
    namespace?: string;
    /** One object by name (a rule with resourceNames allows only those). */
    name?: string;
  },
): Promise<boolean> {
  const res = await kubeRequest(kc, 'POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SelfSubjectAccessReview',
    spec: { resourceAttributes: { group: '', ...attributes } },
  });
  if (res.status !== 201) throw new Error(`SelfSubjectAccessReview: HTTP ${res.status} ${res.message}`);
  return (res.body as { status: { allowed: boolean } }).status.allowed;
}
