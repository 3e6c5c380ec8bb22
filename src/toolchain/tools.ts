/**
 * The binaries the embedded stack runs, pinned by version, and how each is built from its Go module.
 * Versions were chosen for these reasons:
 * - Temporal CLI v1.5.1 is the newest tag whose go.mod has no replace directive (embeds server 1.29.1).
 * - kwok v0.8.0 supports Kubernetes 1.33 to 1.36.
 * - Kubernetes v1.35.4 is the newest 1.35 patch; etcd 3.6.x is what 1.35 is tested with.
 * - helm v3.22.0 is the newest v3 tag; its go.mod has no replace directive, so `go install` builds it.
 * - The Temporal server v1.29.1 (the CLI's embedded version; no replace directive) runs only in the
 *   mutual-TLS tests: the CLI's dev server has no TLS flags. It shares most packages with the CLI's
 *   build, so it builds from Go's cache in a few minutes.
 */

export type ToolName =
  | 'temporal'
  | 'kwok'
  | 'kwokctl'
  | 'etcd'
  | 'kube-apiserver'
  | 'kube-controller-manager'
  | 'kube-scheduler'
  | 'kubectl'
  | 'helm'
  | 'temporal-server';

/**
 * The tools `fleetmedic up` runs; helm only renders and lints the chart, the Temporal server only
 * serves the mutual-TLS tests.
 */
export type StackToolName = Exclude<ToolName, 'helm' | 'temporal-server'>;

/** A Go build: `go install pkg@version`, or `go build` inside a generated wrapper module. */
export type GoBuild =
  | {
      kind: 'install';
      pkg: string;
      ldflags?: string[];
      /** The file `go install` writes, when it is not the tool's name (the last element of the path). */
      binary?: string;
    }
  | { kind: 'wrapper'; module: 'kubernetes' | 'etcd'; pkg: string; ldflags?: string[] };

export interface ToolSpec {
  readonly name: ToolName;
  readonly version: string;
  /** Environment variable that may name a prebuilt binary (used only if its version check passes). */
  readonly envVar: string;
  readonly versionArgs: readonly string[];
  /** Must match the output of the version command. */
  readonly versionPattern: RegExp;
  readonly build: GoBuild;
  /** False for a tool the embedded stack does not run (helm): `up` neither needs nor checks it. */
  readonly stack: boolean;
}

export const TEMPORAL_CLI_VERSION = '1.5.1';
export const KWOK_VERSION = '0.8.0';
export const KUBERNETES_VERSION = '1.35.4';
export const ETCD_VERSION = '3.6.16';
export const HELM_VERSION = '3.22.0';
export const TEMPORAL_SERVER_VERSION = '1.29.1';
/** The Kubernetes modules helm v3.22.0 is built with (its go.mod): its default capabilities and lint rules. */
const HELM_KUBE_MINOR = '37';

function escape(version: string): string {
  return version.replace(/\./g, '\\.');
}

const k8sMinor = KUBERNETES_VERSION.split('.')[1];

/** Link-time version stamps, so `kube-apiserver --version` says what it is (go build leaves v0.0.0). */
export const kubernetesLdflags = [
  ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap((pkg) => [
    `-X ${pkg}.gitVersion=v${KUBERNETES_VERSION}`,
    `-X ${pkg}.gitMajor=1`,
    `-X ${pkg}.gitMinor=${k8sMinor}`,
    `-X ${pkg}.gitTreeState=clean`,
  ]),
  '-s -w',
].flat();

function kube(name: ToolName, pkg: string, versionArgs: string[], pattern: RegExp): ToolSpec {
  return {
    name,
    version: KUBERNETES_VERSION,
    envVar: envVarFor(name),
    versionArgs,
    versionPattern: pattern,
    build: { kind: 'wrapper', module: 'kubernetes', pkg, ldflags: kubernetesLdflags },
    stack: true,
  };
}

/** `kube-apiserver` -> `FLEETMEDIC_KUBE_APISERVER_BIN`. */
export function envVarFor(name: ToolName): string {
  return `FLEETMEDIC_${name.replace(/-/g, '_').toUpperCase()}_BIN`;
}

const kubeVersion = new RegExp(`Kubernetes v${escape(KUBERNETES_VERSION)}\\b`);

/** Every tool of the embedded stack, in build order (cheapest and most needed first). */
export const TOOLS: readonly ToolSpec[] = [
  {
    name: 'temporal',
    version: TEMPORAL_CLI_VERSION,
    envVar: envVarFor('temporal'),
    versionArgs: ['--version'],
    versionPattern: new RegExp(`temporal version ${escape(TEMPORAL_CLI_VERSION)}\\b`),
    build: {
      kind: 'install',
      pkg: `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`,
      // As the CLI's release build does; without it `temporal --version` says 0.0.0-DEV.
      ldflags: [`-X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`, '-s -w'],
    },
    stack: true,
  },
  {
    name: 'kwokctl',
    version: KWOK_VERSION,
    envVar: envVarFor('kwokctl'),
    versionArgs: ['--version'],
    versionPattern: new RegExp(`v${escape(KWOK_VERSION)}\\b`),
    build: { kind: 'install', pkg: `sigs.k8s.io/kwok/cmd/kwokctl@v${KWOK_VERSION}` },
    stack: true,
  },
  {
    name: 'kwok',
    version: KWOK_VERSION,
    envVar: envVarFor('kwok'),
    versionArgs: ['--version'],
    versionPattern: new RegExp(`v${escape(KWOK_VERSION)}\\b`),
    build: { kind: 'install', pkg: `sigs.k8s.io/kwok/cmd/kwok@v${KWOK_VERSION}` },
    stack: true,
  },
  {
    name: 'etcd',
    version: ETCD_VERSION,
    envVar: envVarFor('etcd'),
    versionArgs: ['--version'],
    versionPattern: new RegExp(`etcd Version: ${escape(ETCD_VERSION)}\\b`),
    build: { kind: 'wrapper', module: 'etcd', pkg: 'go.etcd.io/etcd/server/v3' },
    stack: true,
  },
  kube('kube-apiserver', 'k8s.io/kubernetes/cmd/kube-apiserver', ['--version'], kubeVersion),
  kube(
    'kube-controller-manager',
    'k8s.io/kubernetes/cmd/kube-controller-manager',
    ['--version'],
    kubeVersion,
  ),
  kube('kube-scheduler', 'k8s.io/kubernetes/cmd/kube-scheduler', ['--version'], kubeVersion),
  kube(
    'kubectl',
    'k8s.io/kubernetes/cmd/kubectl',
    ['version', '--client'],
    new RegExp(`Client Version: v${escape(KUBERNETES_VERSION)}\\b`),
  ),
  {
    name: 'helm',
    version: HELM_VERSION,
    envVar: envVarFor('helm'),
    versionArgs: ['version', '--short'],
    versionPattern: new RegExp(`^v${escape(HELM_VERSION)}\\b`),
    build: {
      kind: 'install',
      pkg: `helm.sh/helm/v3/cmd/helm@v${HELM_VERSION}`,
      // As helm's Makefile does: without them `helm version` says v3.22 and the chart's default
      // Capabilities.KubeVersion (helm template, helm lint) is v1.20.0.
      ldflags: [
        `-X helm.sh/helm/v3/internal/version.version=v${HELM_VERSION}`,
        '-X helm.sh/helm/v3/internal/version.gitTreeState=clean',
        ...['pkg/lint/rules', 'pkg/chartutil'].flatMap((pkg) => [
          `-X helm.sh/helm/v3/${pkg}.k8sVersionMajor=1`,
          `-X helm.sh/helm/v3/${pkg}.k8sVersionMinor=${HELM_KUBE_MINOR}`,
        ]),
        '-s -w',
      ],
    },
    stack: false,
  },
  {
    name: 'temporal-server',
    version: TEMPORAL_SERVER_VERSION,
    envVar: envVarFor('temporal-server'),
    versionArgs: ['--version'],
    versionPattern: new RegExp(`^temporal version ${escape(TEMPORAL_SERVER_VERSION)}\\b`),
    build: {
      kind: 'install',
      pkg: `go.temporal.io/server/cmd/server@v${TEMPORAL_SERVER_VERSION}`,
      binary: 'server',
      ldflags: ['-s -w'],
    },
    stack: false,
  },
];

/** Looks up a tool's spec by name. */
export function toolSpec(name: ToolName): ToolSpec {
  const spec = TOOLS.find((t) => t.name === name);
  if (!spec) throw new Error(`unknown tool ${name}`);
  return spec;
}
