// Lint, including the architecture's rooms: who may import whom (see docs/architecture.md).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const domainRooms = ['identity', 'policy', 'integrity', 'sanitizer'];
const noHttpOrLogger = [
  { group: ['node:http', 'node:https', 'http', 'https'], message: 'Domain rooms return decisions, never HTTP responses.' },
  { group: ['pino', '**/logger.js'], message: 'Domain rooms do not log; they return decisions with reasons.' },
  { group: ['**/cli/**'], message: 'Nothing imports cli/.' },
];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', '.bastion/', 'results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  ...domainRooms.map((room) => ({
    files: [`src/${room}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...noHttpOrLogger,
            ...domainRooms
              .filter((r) => r !== room)
              .map((r) => ({ group: [`../${r}/*`, `../${r}/**`], message: `${room}/ does not import ${r}/ (domain rooms are independent).` })),
            { group: ['../stages/*', '../pipeline/*', '../server.js', '../upstream/*', '../audit/*', '../stores/*', '!../stores/types.js', '!../audit/types.js'], message: 'Domain rooms import only errors, config and */types.ts.' },
          ],
        },
      ],
    },
  })),
  {
    files: ['src/errors.ts', 'src/config/**/*.ts', 'src/**/types.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['../*', './*', '!./*.js', '!../errors.js'], message: 'errors.ts, config/ and types.ts import nothing of the project but errors.ts.' }] }],
    },
  },
  { files: ['src/cli/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts', 'test/**/*.ts'], rules: { 'no-console': 'off' } },
  { files: ['test/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
);
