import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { mediaTools, probe } from '../src/media/ffmpeg.ts';
import { codes, gql } from './helpers/app.ts';
import { transitionInput } from './helpers/fixtures.ts';
import { CombineTransitions, GeneratedTransitionUpdated, GetGeneratedTransition } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { startS3rver } from './helpers/s3rver.ts';
import { subscribe, wsClient } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';

const work = mkdtempSync(join(tmpdir(), 'segue-media-pipeline-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Downloads a URL to a file and probes it with ffprobe. */
async function probeUrl(url: string) {
  const file = join(work, `${Math.random().toString(36).slice(2)}.mp4`);
  const response = await fetch(url);
  expect(response.status).toBe(200);
  const { writeFileSync } = await import('node:fs');
  writeFileSync(file, Buffer.from(await response.arrayBuffer()));
  return probe(file);
}

describe('combineTransitions (fal clips from the emulator)', () => {
  let p: Pipeline;
  let audioServer: Server;
  let audioUrl: string;
  beforeAll(async () => {
    p = await startPipeline({ emulator: { latencyMs: 100 }, inlineWorkers: 1 });
    // 8 s of tone, served over http like any audio URL a client would give.
    const audio = join(work, 'tone.m4a');
    const tools = await mediaTools();
    execFileSync(tools.ffmpeg, ['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=8', '-c:a', 'aac', audio]);
    const bytes = readFileSync(audio);
    audioServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'audio/mp4' }).end(bytes));
    await new Promise<void>((r) => audioServer.listen(0, '127.0.0.1', () => r()));
    audioUrl = `http://127.0.0.1:${(audioServer.address() as AddressInfo).port}/tone.m4a`;
  });
  afterAll(async () => {
    audioServer?.close();
    await p?.close();
  });

  it('joins 3 clips into the summed duration, with the audio under them and subtitle cues at each clip', { timeout: 90_000 }, async () => {
    const account = await p.account();
    const { transitions, batch } = await createAndGenerate(p.app.segue, account.id, {
      transitions: [
        transitionInput({ durationSeconds: 5, enableSubtitles: true, subtitles: 'Dawn' }),
        transitionInput({ durationSeconds: 10 }),
        transitionInput({ durationSeconds: 5, enableSubtitles: true, subtitles: 'Night falls' }),
      ],
    });
    const done = await p.settled(batch!.id);
    expect(done.map((t) => t.status)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);

    const ws = wsClient(`${p.app.url}/graphql`, account.apiKey);
    const res = await gql(p.app.graphqlUrl, account.apiKey, CombineTransitions, {
      input: { transitionIds: transitions.map((t) => encodeId('Transition', t.id)), audioUrl, burnSubtitles: true },
    });
    expect(res.errors).toBeUndefined();
    const id = res.data!.combineTransitions.generatedTransition.id;
    expect(res.data!.combineTransitions.generatedTransition.transitions.map((t) => t.id)).toEqual(
      transitions.map((t) => encodeId('Transition', t.id)),
    );
    const updates = subscribe(ws, GeneratedTransitionUpdated, { id }, (d) => d.generatedTransitionUpdated);
    await updates.done;
    await ws.dispose();
    expect(updates.events.map((e) => e.status)).toEqual(expect.arrayContaining(['RUNNING', 'COMPLETED']));
    const final = updates.events.at(-1)!;
    expect(final).toMatchObject({ status: 'COMPLETED', error: null });
    expect(final.durationSeconds).toBeCloseTo(20, 0);

    const info = await probeUrl(final.videoUrl!);
    expect(info.durationSeconds).toBeGreaterThan(19.8);
    expect(info.durationSeconds).toBeLessThan(20.3);
    expect(info.hasAudio).toBe(true);
    expect(info.audioDurationSeconds!).toBeGreaterThan(19.5); // 8 s of tone padded to the video
    const vtt = await (await fetch(final.subtitlesUrl!)).text();
    expect(vtt).toMatch(/^WEBVTT/);
    expect(vtt).toMatch(/00:00:00\.000 --> 00:00:05\.000\s+Dawn/);
    expect(vtt).toMatch(/00:00:15\.000 --> 00:00:20\.000\s+Night falls/);
    expect((await fetch(final.posterUrl!)).headers.get('content-type')).toBe('image/jpeg');

    const read = await gql(p.app.graphqlUrl, account.apiKey, GetGeneratedTransition, { id });
    expect(read.data!.generatedTransition).toMatchObject({ status: 'COMPLETED', burnSubtitles: true });
  });

  it('without audioUrl the combined video has no audio stream', { timeout: 90_000 }, async () => {
    const account = await p.account();
    const { transitions, batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput(), transitionInput()] });
    await p.settled(batch!.id);
    const res = await gql(p.app.graphqlUrl, account.apiKey, CombineTransitions, {
      input: { transitionIds: transitions.map((t) => encodeId('Transition', t.id)) },
    });
    const id = res.data!.combineTransitions.generatedTransition.id;
    const ws = wsClient(`${p.app.url}/graphql`, account.apiKey);
    const updates = subscribe(ws, GeneratedTransitionUpdated, { id }, (d) => d.generatedTransitionUpdated);
    await updates.done;
    await ws.dispose();
    const final = updates.events.at(-1)!;
    expect(final.status).toBe('COMPLETED');
    const info = await probeUrl(final.videoUrl!);
    expect(info.hasAudio).toBe(false);
    expect(info.durationSeconds).toBeCloseTo(10, 0);
    expect(final.subtitlesUrl).toBeNull();
  });

  it('refuses clips that are not COMPLETED (CONFLICT), other accounts’ clips (NOT_FOUND) and a bad audio URL', async () => {
    const [a, b] = [await p.account(), await p.account()];
    const { transitions } = await createAndGenerate(p.app.segue, a.id, { transitions: [transitionInput(), transitionInput()] });
    const ids = transitions.map((t) => encodeId('Transition', t.id));
    const early = await gql(p.app.graphqlUrl, a.apiKey, CombineTransitions, { input: { transitionIds: ids } });
    expect(codes(early)).toEqual(['CONFLICT']);
    expect(early.errors![0]!.extensions!.fields).toEqual(['transitionIds.0', 'transitionIds.1']);
    const foreign = await gql(p.app.graphqlUrl, b.apiKey, CombineTransitions, { input: { transitionIds: ids } });
    expect(codes(foreign)).toEqual(['NOT_FOUND']);
    expect(foreign.errors![0]!.extensions!.fields).toEqual(['transitionIds.0', 'transitionIds.1']);
    expect(JSON.stringify([early.errors, foreign.errors])).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-/);
    const badAudio = await gql(p.app.graphqlUrl, a.apiKey, CombineTransitions, { input: { transitionIds: ids, audioUrl: 'file:///etc/passwd' } });
    expect(codes(badAudio)).toEqual(['BAD_USER_INPUT']);
    expect(badAudio.errors![0]!.extensions!.fields).toContain('audioUrl');
    expect(await p.app.segue.db.generatedTransition.count({ where: { accountId: { in: [a.id, b.id] } } })).toBe(0);
  });
});

describe('without a fal key: the local preview provider', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline({ env: { FAL_KEY: '', FAL_PROXY_URL: '' }, inlineWorkers: 1 });
  });
  afterAll(() => p?.close());

  it('renders playable MP4s of 5 and 10 s from the two images, through the same pipeline', { timeout: 120_000 }, async () => {
    const account = await p.account();
    const samples = `${p.app.url.replace('localhost', '127.0.0.1')}/samples`;
    const { batch } = await createAndGenerate(p.app.segue, account.id, {
      transitions: [
        { frontImageUrl: `${samples}/front.png`, tailImageUrl: `${samples}/tail.png`, prompt: 'dawn to night', durationSeconds: 5, transitionType: 'crossfade' },
        { frontImageUrl: `${samples}/front.png`, tailImageUrl: `${samples}/tail.png`, prompt: 'wipe', durationSeconds: 10, transitionType: 'wipe' },
      ],
    });
    const rows = await p.settled(batch!.id, 100_000);
    expect(rows.map((r) => r.status)).toEqual(['COMPLETED', 'COMPLETED']);
    const byPrompt = Object.fromEntries(rows.map((r) => [r.prompt, r]));
    for (const [prompt, seconds] of [['dawn to night', 5], ['wipe', 10]] as const) {
      const row = byPrompt[prompt]!;
      expect(row.falRequestId).toMatch(/^preview-/);
      expect(row.videoUrl).toMatch(/\/media\/transitions\//);
      const info = await probeUrl(row.videoUrl!);
      expect(info.videoCodec).toBe('h264');
      expect(Math.abs(info.durationSeconds - seconds)).toBeLessThan(0.15);
    }
    expect(p.emulator.counters().submitted).toBe(0); // fal was never called
    const spend = await p.app.segue.db.falRequest.aggregate({ where: { accountId: account.id }, _sum: { costUsd: true } });
    expect(Number(spend._sum.costUsd)).toBe(0);
  });
});

describe('S3-compatible storage (s3rver started by the test)', () => {
  it('stores the finished video in the bucket and exposes its URL; its poster is made from the download, with no media job', { timeout: 90_000 }, async () => {
    const s3 = await startS3rver();
    const { port } = s3;
    const p = await startPipeline({
      emulator: { latencyMs: 100 },
      env: s3.env,
      inlineWorkers: 1,
    });
    try {
      const account = await p.account();
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
      const [row] = await p.settled(batch!.id);
      expect(row!.status).toBe('COMPLETED');
      expect(row!.videoUrl).toBe(`http://127.0.0.1:${port}/segue-media/transitions/${row!.id}/r1-a1.mp4`);
      const stored = await fetch(row!.videoUrl!);
      expect(stored.status).toBe(200);
      const original = await fetch(row!.falVideoUrl!);
      expect(Buffer.from(await stored.arrayBuffer()).equals(Buffer.from(await original.arrayBuffer()))).toBe(true);
      // The poster: made by the worker that stored the video, from the file it had downloaded.
      const withPoster = await until(async () => (await p.app.segue.db.transition.findUniqueOrThrow({ where: { id: row!.id } })).posterUrl, {
        what: 'the poster',
      });
      expect(withPoster).toBe(`http://127.0.0.1:${port}/segue-media/transitions/${row!.id}/r1-poster.jpg`);
      expect((await fetch(withPoster)).headers.get('content-type')).toBe('image/jpeg');
      const media = p.app.segue.mediaJobs;
      const events: Array<[string, string[]]> = await media.redis.xrange(media.queue.toKey('events'), '-', '+');
      expect(events.filter(([, fields]) => fields.includes('added'))).toEqual([]);
    } finally {
      await p.close();
      await s3.close();
    }
  });
});

describe.each(['local', 's3'] as const)('posters of a burst of videos (%s storage)', (driver) => {
  it('are rendered several to an ffmpeg run, each recorded on its own transition', { timeout: 90_000 }, async () => {
    // On S3 a poster waiting in line lets go of its download, and its run reads the video back.
    const s3 = driver === 's3' ? await startS3rver() : null;
    const storageEnv = s3?.env ?? {};
    const p = await startPipeline({ emulator: { latencyMs: 300 }, env: { FAL_CONCURRENCY: '10', MEDIA_CONCURRENCY: '1', ...storageEnv } });
    try {
      const { segue } = await p.startInlineWorker();
      // The worker's media service, noting how many posters each call renders (it calls through).
      const sizes: number[] = [];
      const posters = segue.media.posters.bind(segue.media);
      segue.media.posters = (items) => {
        sizes.push(items.length);
        return posters(items);
      };
      const account = await p.account();
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: Array.from({ length: 9 }, () => transitionInput()) });
      await p.settled(batch!.id);
      const rows = await until(async () => {
        const rows = await p.app.segue.db.transition.findMany({ where: { batchId: batch!.id } });
        return rows.every((r) => r.posterUrl) ? rows : null;
      }, { what: 'every poster' });
      for (const row of rows) {
        expect(row.posterUrl).toMatch(new RegExp(`/transitions/${row.id}/r1-poster\\.jpg$`));
        expect(row.posterKey).toBe(`transitions/${row.id}/r1-poster.jpg`);
        const poster = await fetch(row.posterUrl!);
        expect(poster.headers.get('content-type')).toBe('image/jpeg');
        expect(Buffer.from(await poster.arrayBuffer()).subarray(0, 2).toString('hex')).toBe('ffd8');
      }
      // One at a time, the first alone: the videos stored meanwhile waited, and went together.
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(9);
      expect(sizes[0]).toBe(1);
      expect(Math.max(...sizes)).toBeGreaterThan(1);
    } finally {
      await p.close();
      await s3?.close();
    }
  });
});
