import type { Plugin } from 'vite';

const CALL = /\bgraphql\(\s*`\s*(query|mutation|subscription|fragment)\s+(\w+)[^`]*`\s*\)/g;

/**
 * What the client preset's Babel plugin does, for Vite: `graphql(\`query Name ...\`)` becomes
 * the generated `NameDocument` (fragments: `NameFragmentDoc`), imported by name. Without it,
 * `graphql()` looks documents up in one map of every operation in the project (tests and CLI
 * included), which the bundle would carry whole. Same objects either way: only the size changes.
 */
export function typedDocuments(generatedModule: string): Plugin {
  return {
    name: 'segue:typed-documents',
    enforce: 'pre',
    transform(code, id) {
      if (!/\/web\/src\/.+\.tsx?$/.test(id) || !code.includes('graphql(`')) return null;
      let found = false;
      const rewritten = code.replace(CALL, (_call, kind: string, name: string) => {
        found = true;
        return `__typedDocuments.${name}${kind === 'fragment' ? 'FragmentDoc' : 'Document'}`;
      });
      if (!found) return null;
      // Appended, not prepended (imports are hoisted): every other line keeps its number.
      return { code: `${rewritten}\nimport * as __typedDocuments from ${JSON.stringify(generatedModule)};\n`, map: null };
    },
  };
}
