import { describe, expect, it } from 'vitest';
import { bearerToken } from '../src/auth/authenticate.ts';

/** What an Authorization value yields: the scheme (any case), white space, one word, then only white space. */
describe('bearerToken', () => {
  it('reads the credential of a Bearer value, as the header grammar has it', () => {
    const key = 'sg_abcDEF123-_xyz';
    for (const header of [`Bearer ${key}`, `bearer ${key}`, `BEARER   ${key}`, `Bearer\t${key}`, `Bearer ${key}  `, `Bearer ${key}\n`, `Bearer\u00a0${key}`]) {
      expect(bearerToken(header), JSON.stringify(header)).toBe(key);
    }
  });

  it('refuses anything else', () => {
    for (const header of [null, undefined, '', 'Bearer', 'Bearer ', 'Bearer    ', 'Bearersg_abc', ' Bearer sg_abc', 'Basic sg_abc', 'Bearer sg_abc extra', 'Bearer sg_a\u00a0bc', 'Token sg_abc', 'sg_abc']) {
      expect(bearerToken(header), JSON.stringify(header)).toBeNull();
    }
  });
});
