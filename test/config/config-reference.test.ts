import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { describe, it } from 'node:test';
import { renderReferencePage, REFERENCE_PAGE } from '../../scripts/config-reference.js';
import { CONFIG_DOCS, envVarName } from '../../src/config/config.js';

describe('the configuration reference (docs/configuration.md)', () => {
  it('is what the configuration module generates (run `npm run docs:config` after changing it)', async () => {
    const page = await fs.readFile(REFERENCE_PAGE, 'utf8');
    assert.equal(page, await renderReferencePage(page));
  });

  it('names every configuration variable', async () => {
    const page = await fs.readFile(REFERENCE_PAGE, 'utf8');
    for (const key of Object.keys(CONFIG_DOCS)) assert.match(page, new RegExp(`\`${envVarName(key)}\``));
  });
});
