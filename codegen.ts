import type { CodegenConfig } from '@graphql-codegen/cli';

/**
 * `npm run codegen` (also run by postinstall): writes the checked-in schema.graphql from the
 * Pothos schema, and typed documents for every operation the tests, CLI and web console send.
 * The schema is a .ts module, so codegen runs with NODE_OPTIONS='--import tsx'.
 */
const config: CodegenConfig = {
  overwrite: true,
  schema: './src/graphql/schema.ts',
  documents: ['test/**/*.ts', 'src/cli/**/*.ts', 'bench/**/*.ts', 'web/src/**/*.{ts,tsx}', '!**/generated/**'],
  ignoreNoDocuments: true,
  generates: {
    './schema.graphql': { plugins: ['schema-ast'], config: { includeDirectives: false, sort: false } },
    './src/generated/gql/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        emitLegacyCommonJSImports: false,
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: { DateTime: 'string', File: 'File' },
        avoidOptionals: { field: true, inputValue: false, object: true, defaultValue: false },
      },
    },
  },
};

export default config;
