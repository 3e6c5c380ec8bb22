#!/usr/bin/env node
// Runs the compiled CLI when `npm run build` has produced it, else the TypeScript sources through tsx
// (a checkout used for development, or before the first build). On a Node.js older than the oldest
// supported one (22.19), it runs itself again with the supported Node that scripts/setup.sh
// installed (scripts/node.sh), or says how to get one.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  const script = fileURLToPath(new URL('../scripts/node.sh', import.meta.url));
  const found = existsSync(script)
    ? spawnSync('bash', [script, '--print-path'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    : undefined;
  const node = found?.status === 0 ? found.stdout.trim() : '';
  if (!node) {
    process.stderr.write(
      `fleetmedic needs Node.js 22.19 or later (22, 24 and 26 are supported); this is ${process.version}.\n` +
        'Run ./scripts/setup.sh (it installs Node 24 into ~/.cache/fleetmedic) or set FLEETMEDIC_NODE.\n',
    );
    process.exit(1);
  }
  const child = spawnSync(node, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(child.status ?? 1);
}

const compiled = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (existsSync(compiled)) {
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/main.ts', import.meta.url).href);
}
