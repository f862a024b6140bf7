import { readFileSync } from 'node:fs';
import { buildSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import { schema } from '../src/graphql/schema.ts';

describe('schema.graphql', () => {
  it('is current: the checked-in file matches the schema the code builds (run `npm run codegen`)', () => {
    const checkedIn = buildSchema(readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8'));
    expect(printSchema(lexicographicSortSchema(checkedIn))).toBe(printSchema(lexicographicSortSchema(schema)));
  });
});
