#!/usr/bin/env node
// A stand-in for the `go` command, for toolchain tests: it "builds" each binary as a shell script that
// prints the version line given in FAKE_GO_VERSIONS (JSON: tool name -> line), and logs every call.
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
fs.appendFileSync(process.env.FAKE_GO_LOG, JSON.stringify(args) + '\n');
const versions = JSON.parse(process.env.FAKE_GO_VERSIONS);

function writeBinary(file, name) {
  fs.writeFileSync(file, `#!/bin/sh\necho '${versions[name]}'\n`, { mode: 0o755 });
}
function toolName(pkg) {
  const parts = pkg.replace(/@.*$/, '').split('/');
  return parts.at(-1) === 'v3' ? 'etcd' : parts.at(-1);
}

const [cmd, sub] = args;
if (cmd === 'env' && sub === 'GOVERSION') {
  console.log('go1.26.8');
} else if (cmd === 'install') {
  const pkg = args.at(-1);
  writeBinary(path.join(process.env.GOBIN, toolName(pkg)), toolName(pkg));
} else if (cmd === 'mod' && sub === 'download' && args.at(-1).startsWith('sigs.k8s.io/kwok@')) {
  // The kwok module's default stage files (their content only needs to be a Stage here).
  const dir = path.join(process.cwd(), 'fake-kwok-module');
  const stages = {
    'node/fast': ['node-initialize'],
    'node/heartbeat-with-lease': ['node-heartbeat-with-lease'],
    'pod/fast': ['pod-ready', 'pod-complete', 'pod-delete'],
  };
  for (const [sub, names] of Object.entries(stages)) {
    fs.mkdirSync(path.join(dir, 'kustomize/stage', sub), { recursive: true });
    for (const name of names) {
      const kind = sub.startsWith('pod') ? 'Pod' : 'Node';
      fs.writeFileSync(
        path.join(dir, 'kustomize/stage', sub, `${name}.yaml`),
        `apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: ${name}\nspec:\n  resourceRef:\n    apiGroup: v1\n    kind: ${kind}\n  next:\n    delete: true\n`,
      );
    }
  }
  console.log(JSON.stringify({ Dir: dir }));
} else if (cmd === 'mod' && sub === 'download') {
  const gomod = path.join(process.cwd(), 'upstream.mod');
  fs.writeFileSync(gomod, 'module k8s.io/kubernetes\n\ngo 1.25.0\n\nrequire (\n\tk8s.io/api v0.0.0\n)\n');
  console.log(JSON.stringify({ GoMod: gomod }));
} else if (cmd === 'mod' && sub === 'tidy') {
  // nothing to resolve
} else if (cmd === 'build') {
  const out = args[args.indexOf('-o') + 1];
  const pkgs = args.slice(args.indexOf('-o') + 2);
  for (const pkg of pkgs) {
    writeBinary(out.endsWith(path.sep) ? path.join(out, toolName(pkg)) : out, toolName(pkg));
  }
} else {
  console.error(`fake go: unsupported ${args.join(' ')}`);
  process.exit(2);
}
