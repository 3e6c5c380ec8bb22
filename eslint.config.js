// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['describe', 'it', 'test', 'suite', 'before', 'after'],
            },
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node builtins, no timers, no randomness,
    // and activities only as types (they run in the worker, not in the workflow). Date.now() is allowed:
    // the sandbox pins it to the workflow task's time, so it replays identically.
    // src/domain too: the workflow bundle pulls in its pure decisions (classification, budget, the
    // remediation machine), so they obey the same determinism rules.
    files: ['src/workflows/**/*.ts', 'src/domain/**/*.ts', 'test/fixtures/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code must not use Node builtins.' })),
          patterns: [
            {
              group: ['**/activities/**', '../activities', '../activities/*'],
              allowTypeImports: true,
              message: 'Workflows import activities as types only (use proxyActivities).',
            },
          ],
        },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'Use uuid4() or a value from an activity.' },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: 'Use sleep() from @temporalio/workflow.' },
        { name: 'setInterval', message: 'Use sleep() in a loop.' },
        { name: 'process', message: 'No process access in workflows.' },
      ],
    },
  },
  {
    // Workflow code stays in the workflow bundle: everything else (clients, webhook, CLI, activities,
    // workers) reaches workflows through their messages in src/contracts, and names them by type.
    files: ['src/**/*.ts'],
    ignores: ['src/workflows/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/workflows/**', '../workflows', '../../workflows'],
              allowTypeImports: true,
              message: 'Import workflow messages from src/contracts; name workflows by their type.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      parserOptions: { projectService: false },
      globals: { URL: 'readonly', process: 'readonly', console: 'readonly' },
    },
  },
);
