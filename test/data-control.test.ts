import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeId, idOf } from '../src/graphql/ids.ts';
import { createS3Storage } from '../src/media/storage-s3.ts';
import { storePoster } from '../src/worker/posters.ts';
import { codes, createTestAccount, gql, type TestAccount } from './helpers/app.ts';
import { CreateApiKey, DeleteTransitions, ViewerSpend } from './helpers/credential-operations.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { makeImage } from './helpers/images.ts';
import { CancelTransition, CombineTransitions, CreateImageUpload, CreateTransitions, GetTransition, TransitionUpdated, Viewer } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { run } from './helpers/process.ts';
import { subscribe, wsClient } from './helpers/subscribe.ts';
import { uploadImage } from './helpers/uploads.ts';
import { until } from './helpers/wait.ts';

let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({ emulator: { latencyMs: 100 }, inlineWorkers: 1 });
});
afterAll(() => p?.close());

const url = () => p.app.graphqlUrl;
const db = () => p.app.segue.db;
const storage = () => p.app.segue.media.storage();
/** Everything stored for a transition (its videos and poster), as the storage driver lists it. */
const filesOf = async (globalId: string) => (await storage()).list(`transitions/${idOf('Transition', globalId)}/`);

/** A batch of `n`, generated to the end, each with its video and poster stored. */
async function completedBatch(account: TestAccount, n: number, extra: Record<string, unknown> = {}) {
  const res = await gql(url(), account.apiKey, CreateTransitions, { input: { transitions: transitionInputs(n), generate: true, ...extra } });
  const ids = res.data!.createTransitions.transitions.map((t) => t.id);
  await until(
    async () => {
      const rows = await db().transition.findMany({ where: { id: { in: ids.map((id) => idOf('Transition', id)) } } });
      return rows.every((r) => r.status === 'COMPLETED' && r.posterKey);
    },
    { what: 'videos and posters' },
  );
  return { ids, batchId: idOf('Batch', res.data!.createTransitions.batch!.id) };
}

describe('deleteTransitions', () => {
  it('deletes idle transitions with their stored videos and posters; the batch goes with its last one; spend stays', { timeout: 60_000 }, async () => {
    const account = await createTestAccount(p.app.segue);
    const { ids, batchId } = await completedBatch(account, 3);
    const before = await Promise.all(ids.map(filesOf));
    for (const files of before) expect(files).toEqual([expect.stringMatching(/\.mp4$/), expect.stringMatching(/-poster\.jpg$/)]);
    const videoUrl = (await gql(url(), account.apiKey, GetTransition, { id: ids[0]! })).data!.transition.videoUrl!;
    expect((await fetch(videoUrl)).status).toBe(200);
    const spent = (await gql(url(), account.apiKey, ViewerSpend)).data!.viewer.spend.spentUsd;
    expect(spent).toBeGreaterThan(0);

    const first = await gql(url(), account.apiKey, DeleteTransitions, { input: { ids: [ids[0]!, ids[1]!] } });
    expect(first.data!.deleteTransitions.deletedIds).toEqual([ids[0], ids[1]]);
    expect(await Promise.all(ids.map(filesOf))).toEqual([[], [], before[2]]);
    expect((await fetch(videoUrl)).status).toBe(404);
    expect(codes(await gql(url(), account.apiKey, GetTransition, { id: ids[0]! }))).toEqual(['NOT_FOUND']);
    expect(await db().batchItem.count({ where: { batchId } })).toBe(1);

    await gql(url(), account.apiKey, DeleteTransitions, { input: { ids: [ids[2]!] } });
    expect(await filesOf(ids[2]!)).toEqual([]);
    expect(await db().batch.count({ where: { id: batchId } })).toBe(0);
    expect(await db().transition.count({ where: { accountId: account.id } })).toBe(0);
    // What fal billed stays billed: the ledger keeps its rows, without their transition.
    expect((await gql(url(), account.apiKey, ViewerSpend)).data!.viewer.spend.spentUsd).toBe(spent);
    expect(await db().falRequest.count({ where: { accountId: account.id, transitionId: null } })).toBe(3);
  });

  it('a queued or running transition is a CONFLICT naming it, and nothing is deleted', { timeout: 60_000 }, async () => {
    const account = await createTestAccount(p.app.segue);
    const { ids: [done] } = await completedBatch(account, 1);
    p.emulator.configure({ latencyMs: 30_000 });
    try {
      const running = (await gql(url(), account.apiKey, CreateTransitions, { input: { transitions: transitionInputs(1), generate: true } })).data!
        .createTransitions.transitions[0]!.id;
      const filesBefore = await filesOf(done!);
      const res = await gql(url(), account.apiKey, DeleteTransitions, { input: { ids: [done!, running] } });
      expect(codes(res)).toEqual(['CONFLICT']);
      expect(res.errors![0]!.extensions!.fields).toEqual(['ids.1']);
      expect(await db().transition.count({ where: { accountId: account.id } })).toBe(2);
      expect(await filesOf(done!)).toEqual(filesBefore);

      // Canceled, it is idle and can go.
      await gql(url(), account.apiKey, CancelTransition, { id: running });
      const ok = await gql(url(), account.apiKey, DeleteTransitions, { input: { ids: [done!, running] } });
      expect(ok.data!.deleteTransitions.deletedIds).toHaveLength(2);
    } finally {
      p.emulator.configure({ latencyMs: 100 });
    }
  });

  it('a poster that lands after its transition was deleted goes too: nothing is left behind the deletion', { timeout: 60_000 }, async () => {
    const account = await createTestAccount(p.app.segue);
    const { ids: [id] } = await completedBatch(account, 1);
    const row = await db().transition.findUniqueOrThrow({ where: { id: idOf('Transition', id!) } });
    const files = await filesOf(id!);
    // The video as a worker holds it while the poster renders (a download of its own).
    const held = path.join(await mkdtemp(path.join(tmpdir(), 'segue-held-')), 'video.mp4');
    try {
      await copyFile((await storage()).path!(row.videoKey!), held);
      // A second render of a poster already recorded changes nothing, and keeps every file.
      expect(await storePoster(p.app.segue, { ...row, posterKey: null, posterUrl: null }, held)).toBeNull();
      expect(await filesOf(id!)).toEqual(files);

      await gql(url(), account.apiKey, DeleteTransitions, { input: { ids: [id!] } });
      expect(await filesOf(id!)).toEqual([]);
      // The render that was under way during the deletion finishes now, into the folder it removed.
      expect(await storePoster(p.app.segue, { ...row, posterKey: null, posterUrl: null }, held)).toBeNull();
      expect(await filesOf(id!)).toEqual([]);

      // A poster whose recording failed goes to the media queue, whose job removes it too.
      const stray = (await storage()).path!(row.posterKey!);
      await mkdir(path.dirname(stray), { recursive: true });
      await copyFile(held, stray);
      expect(await filesOf(id!)).toEqual([row.posterKey]);
      await p.app.segue.mediaJobs.add({ kind: 'poster', transitionId: row.id, run: row.run });
      await until(async () => (await filesOf(id!)).length === 0, { what: 'the media job removing the stray poster' });
    } finally {
      await rm(path.dirname(held), { recursive: true, force: true });
    }
  });

  it("another account's ids are NOT_FOUND, an empty list is BAD_USER_INPUT, and neither deletes anything", async () => {
    const [owner, other] = [await createTestAccount(p.app.segue), await createTestAccount(p.app.segue)];
    const drafts = (await gql(url(), owner.apiKey, CreateTransitions, { input: { transitions: transitionInputs(2) } })).data!.createTransitions.transitions.map((t) => t.id);
    const mine = (await gql(url(), other.apiKey, CreateTransitions, { input: { transitions: transitionInputs(1) } })).data!.createTransitions.transitions[0]!.id;
    const theirs = await gql(url(), other.apiKey, DeleteTransitions, { input: { ids: [mine, drafts[1]!] } });
    expect(codes(theirs)).toEqual(['NOT_FOUND']);
    expect(theirs.errors![0]!.extensions!.fields).toEqual(['ids.1']);
    expect(codes(await gql(url(), owner.apiKey, DeleteTransitions, { input: { ids: [] } }))).toEqual(['BAD_USER_INPUT']);
    expect(await db().transition.count({ where: { accountId: { in: [owner.id, other.id] } } })).toBe(3);
  });

  it('a repeated idempotent create after a deletion makes new transitions instead of replaying deleted ones', async () => {
    const account = await createTestAccount(p.app.segue);
    const input = { transitions: transitionInputs(1), idempotencyKey: `delete-${Date.now()}` };
    const first = (await gql(url(), account.apiKey, CreateTransitions, { input })).data!.createTransitions.transitions[0]!.id;
    await gql(url(), account.apiKey, DeleteTransitions, { input: { ids: [first] } });
    const again = await gql(url(), account.apiKey, CreateTransitions, { input });
    expect(again.errors).toBeUndefined();
    expect(again.data!.createTransitions.transitions[0]!.id).not.toBe(first);
  });

  it('a clip of a finished combined video can go (the combined video keeps its file); one being rendered is a CONFLICT', { timeout: 60_000 }, async () => {
    const account = await createTestAccount(p.app.segue);
    const { ids } = await completedBatch(account, 2);
    const combined = (await gql(url(), account.apiKey, CombineTransitions, { input: { transitionIds: ids } })).data!.combineTransitions.generatedTransition;
    const res = await gql(url(), account.apiKey, DeleteTransitions, { input: { ids: [ids[0]!] } });
    // Right after combineTransitions the render is queued or running.
    expect(codes(res)).toEqual(['CONFLICT']);
    const combinedId = idOf('GeneratedTransition', combined.id);
    await until(async () => (await db().generatedTransition.findUniqueOrThrow({ where: { id: combinedId } })).status === 'COMPLETED', {
      what: 'the combined video',
      timeoutMs: 40_000,
    });
    const combinedFiles = await (await storage()).list(`combined/${combinedId}/`);
    expect(combinedFiles.length).toBeGreaterThan(0);
    await gql(url(), account.apiKey, DeleteTransitions, { input: { ids: [ids[0]!] } });
    expect(await filesOf(ids[0]!)).toEqual([]);
    expect(await (await storage()).list(`combined/${combinedId}/`)).toEqual(combinedFiles);
    expect(await db().generatedTransitionItem.count({ where: { generatedTransitionId: combinedId } })).toBe(1);
  });
});

describe('npm run cli -- accounts delete', () => {
  it('without --yes says what would go and deletes nothing; with --yes cancels running work, deletes every row and file, and closes its connections', { timeout: 90_000 }, async () => {
    const account = await createTestAccount(p.app.segue);
    const accountId = encodeId('Account', account.id);
    const { ids } = await completedBatch(account, 2);
    const extraKey = (await gql(url(), account.apiKey, CreateApiKey, { input: { name: 'second' } })).data!.createApiKey.secret;
    // An uploaded image, and a direct upload sent but never completed: files of the account too.
    const png = await makeImage({ width: 640, height: 360 });
    const uploaded = (await uploadImage(url(), account.apiKey, png)).data!.uploadImage.id;
    const offered = (await gql(url(), account.apiKey, CreateImageUpload, { input: { contentType: 'image/png', bytes: png.length } })).data!.createImageUpload;
    const sent = await fetch(offered.uploadUrl, { method: 'PUT', headers: Object.fromEntries(offered.headers.map((h) => [h.name, h.value])), body: new Uint8Array(png) });
    expect(sent.ok).toBe(true);
    const imageFiles = async () => [...(await (await storage()).list(`private/images/${account.id}/`)), ...(await (await storage()).list(`private/uploads/${account.id}/`))];
    // The uploaded image, the upload never completed, and the checked URL images of the batch.
    const before = await imageFiles();
    expect(before).toContainEqual(expect.stringContaining(`private/images/${account.id}/${idOf('Image', uploaded)}.`));
    expect(before).toContainEqual(`private/uploads/${account.id}/${idOf('Image', offered.imageId)}`);
    // fal stops the canceled job at once here (Kling would finish it first, and the CLI would wait).
    p.emulator.configure({ latencyMs: 60_000, cancelRunning: 'stop' });
    let closedWith = 0;
    try {
      const running = (await gql(url(), account.apiKey, CreateTransitions, { input: { transitions: transitionInputs(1), generate: true } })).data!
        .createTransitions.transitions[0]!.id;
      const ws = wsClient(url(), extraKey, { onClose: (code) => (closedWith = code) });
      const live = subscribe(ws, TransitionUpdated, { id: running }, (d) => d.transitionUpdated);
      await live.first;

      const dry = run('npm', ['run', 'cli', '--', 'accounts', 'delete', accountId], p.env);
      expect((await dry.exited).code).toBe(1);
      expect(dry.output()).toMatch(/Would delete account "test-[^"]+": 3 transitions, 2 batches, 0 combined videos, 2 API keys.*--yes/);
      expect(await db().transition.count({ where: { accountId: account.id } })).toBe(3);

      const real = run('npm', ['run', 'cli', '--', 'accounts', 'delete', accountId, '--yes', '--json'], p.env);
      expect((await real.exited).code).toBe(0);
      const summary = JSON.parse(real.stdout()) as Record<string, number>;
      expect(summary).toMatchObject({ transitions: 3, batches: 2, combined: 0, keys: 2, canceled: 1 });
      expect(summary.files).toBeGreaterThanOrEqual(6);

      const tables = await Promise.all([
        db().account.count({ where: { id: account.id } }),
        db().transition.count({ where: { accountId: account.id } }),
        db().batch.count({ where: { accountId: account.id } }),
        db().apiKey.count({ where: { accountId: account.id } }),
        db().falRequest.count({ where: { accountId: account.id } }),
        db().idempotencyKey.count({ where: { accountId: account.id } }),
      ]);
      expect(tables).toEqual([0, 0, 0, 0, 0, 0]);
      for (const id of ids) expect(await filesOf(id)).toEqual([]);
      expect(await imageFiles()).toEqual([]);
      expect(codes(await gql(url(), account.apiKey, Viewer))).toEqual(['UNAUTHENTICATED']);
      await until(() => closedWith !== 0, { timeoutMs: 5_000, what: 'the WebSocket to close' });
      expect(closedWith).toBe(4403);
      await ws.dispose();
    } finally {
      p.emulator.configure({ latencyMs: 100, cancelRunning: 'complete' });
    }
  });
});

describe('storage listing and removal, S3 driver (s3rver)', () => {
  type S3rverServer = { run(): Promise<AddressInfo>; close(): Promise<void> };
  const S3rver = createRequire(import.meta.url)('s3rver') as new (options: Record<string, unknown>) => S3rverServer;
  let dir: string;
  let server: S3rverServer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'segue-s3-delete-'));
    await mkdir(path.join(dir, 's3'));
    server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: path.join(dir, 's3'), configureBuckets: [{ name: 'segue-delete' }] });
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('lists the objects under a folder and removes exactly them', async () => {
    const { port } = await server.run();
    const s3 = createS3Storage({
      bucket: 'segue-delete',
      endpoint: `http://127.0.0.1:${port}`,
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      keyPrefix: 'segue/',
    });
    const file = path.join(dir, 'blob.bin');
    await writeFile(file, 'x');
    for (const key of ['transitions/a/r1-a1.mp4', 'transitions/a/r1-poster.jpg', 'transitions/ab/r1-a1.mp4', 'combined/a/video.mp4']) {
      await s3.put(key, file, 'application/octet-stream');
    }
    expect(await s3.list('transitions/a/')).toEqual(['transitions/a/r1-a1.mp4', 'transitions/a/r1-poster.jpg']);
    expect(await s3.removePrefix('transitions/a/')).toBe(2);
    expect(await s3.list('transitions/a/')).toEqual([]);
    expect(await s3.list('transitions/ab/')).toEqual(['transitions/ab/r1-a1.mp4']);
    expect(await s3.list('combined/a/')).toEqual(['combined/a/video.mp4']);
    expect(await s3.removePrefix('transitions/none/')).toBe(0);
    await expect(s3.list('transitions/a')).rejects.toThrow(/ends with "\/"/);
    await s3.close();
  });
});
