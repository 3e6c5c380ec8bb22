import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { renderReferencePage, REFERENCE_PAGE } from '../../scripts/config-reference.js';
import { CONFIG_DOCS, envVarName } from '../../src/config/config.js';

describe('the configuration reference (docs/configuration.md)', () => {
  it('is what the configuration module generates (run `npm run docs:config` after changing it)', async () => {
    const page = await fs.readFile(REFERENCE_PAGE, 'utf8');
    assert.equal(page, await renderReferencePage(page));
  });

  it('names every FLEETMEDIC_ variable the sources read', async () => {
    const page = await fs.readFile(REFERENCE_PAGE, 'utf8');
    const sources = await Promise.all(
      (await fs.readdir('src', { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile() && e.name.endsWith('.ts'))
        .map((e) => fs.readFile(path.join(e.parentPath, e.name), 'utf8')),
    );
    // Names that are not variables: exported tables, and the tool pattern FLEETMEDIC_<TOOL>_BIN.
    const notVariables = new Set([
      'FLEETMEDIC_XID_DEVIATIONS',
      'FLEETMEDIC_DCGM_CLASSES',
      'FLEETMEDIC_WEBHOOK_',
    ]);
    const read = new Set(sources.flatMap((text) => text.match(/FLEETMEDIC_[A-Z0-9_]+/g) ?? []));
    const missing = [...read].filter(
      (v) => !notVariables.has(v) && !v.endsWith('_BIN') && !page.includes(`\`${v}\``),
    );
    assert.deepEqual(missing, [], 'read by the code but not in docs/configuration.md');
  });

  it('names every configuration variable', async () => {
    const page = await fs.readFile(REFERENCE_PAGE, 'utf8');
    for (const key of Object.keys(CONFIG_DOCS)) assert.match(page, new RegExp(`\`${envVarName(key)}\``));
  });
});
