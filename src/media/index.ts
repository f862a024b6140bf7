/**
 * The media layer: ffmpeg renders (previews, posters, joined videos with subtitles), downloads
 * guarded against SSRF, and storage drivers. Pure library code: every function takes explicit
 * options, nothing reads configuration.
 */
export * from './errors.ts';
export { mediaTools, probe, runFfmpeg, runTool } from './ffmpeg.ts';
export type { MediaTools, MediaToolsOptions, ProbeResult, RunOptions, RunResult } from './ffmpeg.ts';
export { renderPreview, previewTransition, PREVIEW_TRANSITIONS } from './preview.ts';
export type { PreviewOptions, PreviewResult, PreviewTransition } from './preview.ts';
export { renderPoster, type PosterOptions } from './poster.ts';
export { combineClips, type CombineClip, type CombineOptions, type CombineResult } from './combine.ts';
export { toWebVtt, toSrt, type Cue } from './subtitles.ts';
export { assertFetchableUrl, downloadToFile } from './safe-fetch.ts';
export type { DownloadOptions, DownloadResult, FetchPolicy, FetchTarget } from './safe-fetch.ts';
export { classifyAddress, isPublicAddress, type AddressKind } from './ip-ranges.ts';
// The S3 driver is loaded on demand by createMediaStorage: the AWS SDK is heavy.
export { createMediaStorage, assertStorageKey, type MediaStorage, type MediaStorageOptions, type StoredObject } from './storage.ts';
export { createLocalStorage, type LocalStorage, type LocalStorageOptions } from './storage-local.ts';
export type { S3Storage, S3StorageOptions } from './storage-s3.ts';
