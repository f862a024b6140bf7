import { describe, expect, it } from 'vitest';
import { storageIsPublic } from '../src/domain/run-images.ts';
import { isPublicBaseUrl } from '../src/media/public-url.ts';
import { testConfig } from './helpers/app.ts';

describe('whether fal can reach Segue’s own URLs', () => {
  it.each([
    [undefined, false],
    ['http://localhost:4000', false],
    ['http://api.localhost', false],
    ['http://127.0.0.1:4000', false],
    ['http://10.1.2.3', false],
    ['http://192.168.1.20:4000', false],
    ['http://[::1]:4000', false],
    ['http://segue', false],
    ['http://segue.internal', false],
    ['https://segue.example.com', true],
    ['http://203.0.113.7', false],
    ['http://8.8.8.8', true],
  ])('%s is public: %s', (url, expected) => {
    expect(isPublicBaseUrl(url)).toBe(expected);
  });

  it('builds local media URLs from PUBLIC_URL without its trailing slash, and says when neither URL was given', () => {
    const storage = (env: Record<string, string>) => testConfig(env).media.storage as { publicBaseUrl: string; defaultPublicBaseUrl: boolean };
    expect(storage({ PUBLIC_URL: 'https://segue.example.com/' })).toMatchObject({ publicBaseUrl: 'https://segue.example.com/media', defaultPublicBaseUrl: false });
    expect(storage({ PUBLIC_URL: '', MEDIA_PUBLIC_URL: 'https://cdn.example.com/m/' })).toMatchObject({ publicBaseUrl: 'https://cdn.example.com/m', defaultPublicBaseUrl: false });
    expect(storage({ PUBLIC_URL: '', MEDIA_PUBLIC_URL: '', PORT: '4321' })).toMatchObject({ publicBaseUrl: 'http://localhost:4321/media', defaultPublicBaseUrl: true });
  });

  it('follows PUBLIC_URL (or MEDIA_PUBLIC_URL) for local storage and the endpoint for S3', () => {
    expect(storageIsPublic(testConfig({ PUBLIC_URL: '' }))).toBe(false);
    expect(storageIsPublic(testConfig({ PUBLIC_URL: 'https://segue.example.com' }))).toBe(true);
    expect(storageIsPublic(testConfig({ PUBLIC_URL: 'https://segue.example.com', MEDIA_PUBLIC_URL: 'http://127.0.0.1/media' }))).toBe(false);
    expect(storageIsPublic(testConfig({ STORAGE_DRIVER: 's3', S3_BUCKET: 'b-images' }))).toBe(true);
    expect(storageIsPublic(testConfig({ STORAGE_DRIVER: 's3', S3_BUCKET: 'b-images', S3_ENDPOINT: 'http://127.0.0.1:9000' }))).toBe(false);
  });
});
