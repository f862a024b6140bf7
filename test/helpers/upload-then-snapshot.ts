/**
 * Child process of test/fal-storage-heap-snapshot.test.ts: uploads one file to fal's storage (the
 * emulator, FAL_PROXY_URL) as a worker does (src/providers/fal-storage.ts), then writes a heap
 * snapshot of this process, as an operator's --heapsnapshot-signal would. Prints the fal URL and
 * the snapshot's path as JSON, or dies trying.
 * Usage: node --import tsx test/helpers/upload-then-snapshot.ts <file> <snapshot dir>
 */
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { loadConfig } from '../../src/config.ts';
import { createFalImageStorage } from '../../src/providers/fal-storage.ts';

const [file, dir] = process.argv.slice(2) as [string, string];
const url = await createFalImageStorage(loadConfig()).upload(file, 'image/png', 'front.png');
const snapshot = writeHeapSnapshot(join(dir, 'after-upload.heapsnapshot'));
console.log(JSON.stringify({ url, snapshot }));
