import { completeImageUpload, createImageUpload, getImage, imageReadUrl, storeImageFile } from '../../domain/images.ts';
import { imageRuleError } from '../../domain/images.ts';
import { badInput } from '../../domain/errors.ts';
import { STORED_IMAGE_COLUMNS } from '../../domain/stored-images.ts';
import { ImageStatus } from '../../generated/prisma/enums.ts';
import { builder } from '../builder.ts';
import { encodeId, idOf } from '../ids.ts';
import { uploadedFile } from '../uploads.ts';

builder.scalarType('File', {
  description: 'A file of a GraphQL multipart request (the spec graphql-yoga implements): what a browser sends with FormData.',
  serialize: () => {
    throw new TypeError('File is an input type only.');
  },
  // Checked in the resolver (uploadedFile), after authentication: a request without a key learns
  // only that it needs one.
  parseValue: (value) => value as File,
});

export const ImageNode = builder.prismaNode('Image', {
  id: { field: 'id' },
  nullable: true,
  // Only the caller's finished uploads are nodes (URL images checked before a run are records, not uploads).
  findUnique: (id, ctx) => ({ id, accountId: ctx.accountId(), status: ImageStatus.READY, sourceUrl: null }),
  description: "An image of the caller's account, stored privately: JPEG or PNG, orientation applied, metadata removed.",
  // Exactly what a stored image never changes: an image a transition shows comes from the
  // process' stored images (no read per live event), and a field cannot read anything else.
  select: STORED_IMAGE_COLUMNS,
  fields: (t) => ({
    // No field-level `select`, and no t.expose (which adds one under a type-level select): either
    // would have the Prisma plugin read the image again for a row it did not load itself.
    url: t.string({
      description: 'A signed URL that reads the image for at least an hour (the same URL within the hour).',
      resolve: (image, _args, ctx) => imageReadUrl(ctx.segue, image.key!),
    }),
    width: t.int({ resolve: (image) => image.width ?? 0 }),
    height: t.int({ resolve: (image) => image.height ?? 0 }),
    contentType: t.string({ description: 'image/jpeg or image/png.', resolve: (image) => image.contentType ?? '' }),
    bytes: t.int({ description: 'Size of the stored file.', resolve: (image) => image.bytes ?? 0 }),
    createdAt: t.field({ type: 'DateTime', resolve: (image) => image.createdAt }),
  }),
});

const HttpHeader = builder.objectRef<{ name: string; value: string }>('HttpHeader').implement({
  fields: (t) => ({ name: t.exposeString('name'), value: t.exposeString('value') }),
});

const ImageUpload = builder
  .objectRef<{ imageId: string; uploadUrl: string; headers: Array<{ name: string; value: string }>; expiresAt: Date }>('ImageUpload')
  .implement({
    description: 'Where to PUT the file (with exactly these headers) before expiresAt; then call completeImageUpload(id: imageId).',
    fields: (t) => ({
      imageId: t.id({ resolve: (u) => encodeId('Image', u.imageId) }),
      uploadUrl: t.exposeString('uploadUrl'),
      headers: t.field({ type: [HttpHeader], resolve: (u) => u.headers }),
      expiresAt: t.expose('expiresAt', { type: 'DateTime' }),
    }),
  });

const CreateImageUploadInput = builder.inputType('CreateImageUploadInput', {
  fields: (t) => ({
    contentType: t.string({ required: true, description: 'image/jpeg, image/png or image/webp.' }),
    bytes: t.int({ required: true, description: 'The exact size of the file, at most IMAGE_MAX_BYTES.' }),
  }),
});

const imageId = (globalId: string, field = 'id') => idOf('Image', globalId, field);

builder.queryFields((t) => ({
  image: t.prismaField({
    type: ImageNode,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const accountId = ctx.accountId();
      const image = await getImage(ctx.segue, accountId, imageId(String(args.id)));
      if (image.status !== ImageStatus.READY || image.sourceUrl) return null;
      return ctx.segue.db.image.findUnique({ ...query, where: { id: image.id } });
    },
  }),
}));

builder.mutationFields((t) => ({
  uploadImage: t.prismaField({
    type: ImageNode,
    nullable: false,
    description: 'Uploads an image (GraphQL multipart request); checked by the image rules before anything is stored.',
    args: { file: t.arg({ type: 'File', required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const accountId = ctx.accountId();
      const upload = uploadedFile(args.file);
      if (!upload) throw badInput('file must be a file part of a multipart request.', ['file']);
      const { maxBytes } = ctx.segue.config.images;
      if (upload.truncated) {
        throw imageRuleError({ reason: 'IMAGE_TOO_LARGE', message: `The image is over the limit of ${maxBytes} bytes.` });
      }
      const image = await storeImageFile(ctx.segue, accountId, upload.path);
      return ctx.segue.db.image.findUniqueOrThrow({ ...query, where: { id: image.id } });
    },
  }),
  createImageUpload: t.field({
    type: ImageUpload,
    description: 'Offers a direct upload for large files: a presigned PUT (S3) or a signed Segue URL (local storage).',
    args: { input: t.arg({ type: CreateImageUploadInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      createImageUpload({ ...ctx.segue, baseUrl: ctx.segue.config.media.baseUrl }, ctx.accountId(), input),
  }),
  completeImageUpload: t.prismaField({
    type: ImageNode,
    nullable: false,
    description: 'Checks what the PUT brought (declared size and type, then the image rules) and stores the image.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const image = await completeImageUpload(ctx.segue, ctx.accountId(), imageId(String(args.id)));
      return ctx.segue.db.image.findUniqueOrThrow({ ...query, where: { id: image.id } });
    },
  }),
}));
