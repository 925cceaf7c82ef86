// ESLint flat config: typescript-eslint's recommended type-checked rules, no
// import cycles, and the house's boundaries (docs/architecture.md#layers):
// telemetry/ never imports runner-proxy/ or lab/, the runner-proxy never
// imports lab/, and nothing shipped imports tools/ or test/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

const boundary = (files, patterns) => ({
  files,
  rules: {
    'no-restricted-imports': [
      'error',
      { patterns: patterns.map(([group, message]) => ({ group: [group], message })) },
    ],
  },
});

const NOT_SHIPPED = [
  ['**/tools/**', 'tools/ is build tooling and never ships'],
  ['**/test/**', 'test code never ships'],
];

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', '.tap/', 'node_modules/', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { 'import-x': importX },
    settings: {
      // Without the parser and extension settings import-x cannot read a .ts
      // dependency, builds no import graph, and no-cycle silently finds nothing.
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      'import-x/no-cycle': 'error',
      // Log parsing matches ANSI and section-marker control bytes on purpose.
      'no-control-regex': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  boundary(['src/**/*.ts'], NOT_SHIPPED),
  boundary(['src/telemetry/**/*.ts'], [
    ['**/runner-proxy/**', 'telemetry/ is below the runner-proxy: it must not import it'],
    ['**/lab/**', 'the product must not depend on simulators (lab/)'],
    ...NOT_SHIPPED,
  ]),
  boundary(['src/runner-proxy/**/*.ts'], [['**/lab/**', 'the product must not depend on simulators (lab/)'], ...NOT_SHIPPED]),
  {
    // tap owns the promises its t.test() calls return, and test callbacks are
    // async by convention; tests also poke at decoded JSON on purpose.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
);
