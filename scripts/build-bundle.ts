/**
 * `npm run build:bundle`: bundles the compiled workflows (`dist/workflows/index.js`, from `npm run
 * build`) into `dist/workflow-bundle.js`, the file the container image names in
 * FLEETMEDIC_WORKFLOW_BUNDLE. The bundle is made from the compiled code the image runs, so workflow
 * code and activities in the image come from the same build.
 *
 * Usage: node --import tsx scripts/build-bundle.ts [--out FILE]
 */
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const workflowsPath = path.join(root, 'dist', 'workflows', 'index.js');
const workflowInterceptorsPath = () => path.join(root, 'dist', 'workflows', 'interceptors.js');
const { values } = parseArgs({
  options: { out: { type: 'string', default: path.join(root, 'dist', 'workflow-bundle.js') } },
});
const out = path.resolve(values.out);

try {
  await fs.access(workflowsPath);
} catch {
  process.stderr.write(`build-bundle: ${workflowsPath} is missing: run \`npm run build\` first\n`);
  process.exit(1);
}
const started = Date.now();
const { code } = await bundleWorkflowCode({
  workflowsPath,
  workflowInterceptorModules: [workflowInterceptorsPath()],
  logger: new DefaultLogger('WARN'),
});
// Written beside and renamed, so a worker never loads a half-written bundle.
const tmp = `${out}.${process.pid}.tmp`;
await fs.mkdir(path.dirname(out), { recursive: true });
await fs.writeFile(tmp, code);
await fs.rename(tmp, out);
process.stderr.write(
  `build-bundle: ${path.relative(process.cwd(), out) || out} (${(code.length / 1024).toFixed(0)} KiB) ` +
    `in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
);
