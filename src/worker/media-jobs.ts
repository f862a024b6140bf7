import { join } from 'node:path';
import { UnrecoverableError, type Job } from 'bullmq';
import { changeGeneratedTransition } from '../domain/combine.ts';
import { notePosterFailed } from '../domain/poster-failures.ts';
import { loadTransition } from '../domain/state-machine.ts';
import { removeFilesOfDeleted, storePoster } from './posters.ts';
import { GeneratedTransitionStatus as G, TransitionStatus as S } from '../generated/prisma/enums.ts';
import { isMediaError } from '../media/errors.ts';
import { combineClips } from '../media/combine.ts';
import type { MediaJobData } from '../queue/media-queue.ts';
import type { Segue } from '../runtime.ts';

/** The media queue's jobs: posters of stored videos, and combined videos. The row decides. */
export function mediaProcessor(segue: Segue) {
  return async (job: Job<MediaJobData>) => {
    if (job.data.kind === 'poster') return poster(segue, job as Job<Extract<MediaJobData, { kind: 'poster' }>>);
    return combine(segue, job as Job<Extract<MediaJobData, { kind: 'combine' }>>);
  };
}

/**
 * A poster the worker that stored the video could not make (see Posters). One that fails its
 * last attempt is noted on its row and logged; the reconciler tries it again daily for a while
 * (domain/poster-failures.ts).
 */
async function poster(segue: Segue, job: Job<Extract<MediaJobData, { kind: 'poster' }>>) {
  const { transitionId, run } = job.data;
  const row = await loadTransition(segue, transitionId);
  if (!row) {
    // Deleted: a poster rendered meanwhile, whose recording failed (see storePoster), goes too.
    await removeFilesOfDeleted(segue, transitionId);
    return 'nothing to do';
  }
  if (row.run !== run || row.status !== S.COMPLETED || !row.videoKey || row.posterKey) return 'nothing to do';
  try {
    await storePoster(segue, row);
  } catch (error) {
    if (error instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) {
      // Should the note fail, the reconciler notes it from the failed job.
      const noted = await notePosterFailed(segue.sql, row).catch((noteError: unknown) => noteError);
      segue.logger.warn(
        { err: error, transitionId, run, jobId: job.id, ...(noted instanceof Error ? { noteError: noted.message } : {}) },
        noted === true ? 'poster failed its last attempt; the reconciler tries it again in a day' : 'poster failed its last attempt',
      );
    }
    throw error;
  }
  return 'poster';
}

/**
 * Renders a combined video: the clips from storage in their order, the audio under them, the
 * subtitle cues (a WebVTT file, and burnt in when asked), and a poster; then COMPLETED with URLs.
 */
async function combine(segue: Segue, job: Job<Extract<MediaJobData, { kind: 'combine' }>>) {
  const id = job.data.generatedTransitionId;
  const log = segue.logger.child({ generatedTransitionId: id, jobId: job.id });
  const claimed = await changeGeneratedTransition(segue, id, [G.QUEUED, G.RUNNING], G.RUNNING, { attempts: 'increment' });
  if (!claimed) return 'nothing to do';
  const items = await segue.db.generatedTransitionItem.findMany({
    where: { generatedTransitionId: id },
    orderBy: { position: 'asc' },
    include: { transition: { select: { videoKey: true, enableSubtitles: true, subtitles: true } } },
  });
  const work = await segue.media.workdir('combine');
  try {
    const clips = [];
    for (const [i, item] of items.entries()) {
      if (!item.transition.videoKey) throw new UnrecoverableError(`Clip ${i + 1} has no stored video.`);
      clips.push({
        file: await segue.media.localCopy(item.transition.videoKey, work.dir),
        subtitles: item.transition.enableSubtitles ? item.transition.subtitles : null,
      });
    }
    const audioFile = claimed.audioUrl ? join(work.dir, 'audio') : null;
    if (claimed.audioUrl && audioFile) await segue.media.download(claimed.audioUrl, audioFile);
    const output = join(work.dir, 'combined.mp4');
    const subtitlesOutput = join(work.dir, 'subtitles.vtt');
    const result = await combineClips({
      clips,
      audioFile,
      burnSubtitles: claimed.burnSubtitles,
      output,
      subtitlesOutput,
      tools: await segue.media.tools(),
    });
    const store = await segue.media.storage();
    const video = await store.put(`combined/${id}/video.mp4`, output, 'video/mp4');
    const subtitles = result.cues.length ? await store.put(`combined/${id}/subtitles.vtt`, subtitlesOutput, 'text/vtt') : null;
    const poster = await segue.media.poster(video.key, `combined/${id}/poster.jpg`);
    await changeGeneratedTransition(segue, id, [G.RUNNING], G.COMPLETED, {
      videoUrl: video.url,
      videoKey: video.key,
      posterUrl: poster.url,
      subtitlesUrl: subtitles?.url ?? null,
      durationSeconds: result.durationSeconds,
      errorCode: null,
      errorMessage: null,
      completed: true,
    });
    log.info({ durationSeconds: result.durationSeconds, clips: clips.length }, 'combined video ready');
    return 'combined';
  } catch (error) {
    const retryable = isMediaError(error) ? error.retryable : !(error instanceof UnrecoverableError);
    const last = !retryable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    log.warn({ err: error, last }, 'combine failed');
    if (last) {
      await changeGeneratedTransition(segue, id, [G.RUNNING], G.FAILED, {
        errorCode: isMediaError(error) ? error.code : 'COMBINE_FAILED',
        errorMessage: (error as Error).message.slice(0, 2000),
        completed: true,
      });
      throw new UnrecoverableError((error as Error).message);
    }
    throw error;
  } finally {
    await work.done();
  }
}
