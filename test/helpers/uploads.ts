import { print, type ExecutionResult, type GraphQLFormattedError } from 'graphql';
import type { ResultOf } from '@graphql-typed-document-node/core';
import { UploadImage } from './operations.ts';

export type UploadResult = {
  status: number;
  data: ResultOf<typeof UploadImage> | null | undefined;
  errors: GraphQLFormattedError[] | undefined;
};

/**
 * uploadImage as a browser sends it: a GraphQL multipart request (`operations`, `map`, then the
 * file) built with FormData, which is what fetch sends for `new FormData()` in a page.
 */
export async function uploadImage(graphqlUrl: string, apiKey: string, bytes: Buffer, options: { name?: string; type?: string } = {}): Promise<UploadResult> {
  const form = new FormData();
  form.set('operations', JSON.stringify({ query: print(UploadImage), variables: { file: null } }));
  form.set('map', JSON.stringify({ 0: ['variables.file'] }));
  form.set('0', new Blob([new Uint8Array(bytes)], { type: options.type ?? 'image/png' }), options.name ?? 'image.png');
  const response = await fetch(graphqlUrl, { method: 'POST', headers: { authorization: `Bearer ${apiKey}` }, body: form });
  const body = (await response.json()) as ExecutionResult<ResultOf<typeof UploadImage>>;
  return { status: response.status, data: body.data, errors: body.errors as GraphQLFormattedError[] | undefined };
}
