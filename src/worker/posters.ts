import { transitionFolder } from '../domain/deletion.ts';
import { changeTransition } from '../domain/state-machine.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import type { Logger } from '../logger.ts';
import { POSTERS_PER_RUN } from '../media/poster.ts';
import type { LocalFile } from '../media/service.ts';
import type { Segue } from '../runtime.ts';
import { LocalLine } from './local-line.ts';

/** Where a transition's poster is stored: beside its video, one per run. */
const posterKeyOf = (row: Transition) => `${transitionFolder(row.id)}r${row.run}-poster.jpg`;

/** The first frame of a completed transition's video, as its posterUrl (from `localVideo` when given). */
export async function storePoster(segue: Segue, row: Transition, localVideo?: string) {
  return recordPoster(segue, row, await segue.media.poster(row.videoKey!, posterKeyOf(row), localVideo));
}

/** A poster stored for `row`: its posterUrl, unless the row moved on. It clears a failure noted before (a retry from the dashboard). */
async function recordPoster(segue: Segue, row: Transition, stored: { key: string; url: string }) {
  const changed = await changeTransition(segue, { id: row.id, run: row.run }, S.COMPLETED, { posterUrl: stored.url, posterKey: stored.key, posterFailedAt: null }, { from: [S.COMPLETED], noPosterYet: true });
  // A COMPLETED transition can be deleted while its poster renders: the deletion removed its
  // files before the poster landed, so the poster goes too, rather than stay behind it (served).
  if (!changed && !(await segue.db.transition.findUnique({ where: { id: row.id }, select: { id: true } }))) {
    await removeFilesOfDeleted(segue, row.id);
  }
  return changed;
}

/** A deleted transition keeps no files: whatever landed in its folder after the deletion goes. */
export function removeFilesOfDeleted(segue: Segue, transitionId: string) {
  return segue.media.removeFolders([transitionFolder(transitionId)]);
}

interface PosterWork {
  row: Transition;
  local: LocalFile | undefined;
  log: Logger;
}

/**
 * Posters of the videos this process has just stored, made here from the file still at hand (no
 * second download, no queue round trip), MEDIA_CONCURRENCY runs at once. A burst waits in line
 * here (rows only: a temporary download is let go while it waits, and read back from storage
 * when its turn comes) and is rendered several to an ffmpeg run, which costs less than as many
 * runs of one. Past the line, after a failed render and on shutdown, the poster goes to the
 * media queue; the reconciler queues any a dead process left behind.
 */
export class Posters {
  private readonly line: LocalLine<PosterWork>;

  constructor(
    private readonly segue: Segue,
    limit: number,
  ) {
    this.line = new LocalLine<PosterWork>({
      limit,
      maxWaiting: 10_000,
      batch: POSTERS_PER_RUN,
      keyOf: (work) => `${work.row.id}:${work.row.run}`,
      run: (works) => this.render(works),
      handOff: async (work) => {
        await work.local?.release();
        await this.queue(work);
      },
      beforeWaiting: async (work) => {
        if (!work.local?.temporary) return work;
        await work.local.release();
        return { ...work, local: undefined };
      },
    });
  }

  /** The video of `row` (COMPLETED) was just stored: its poster, here or on the queue. */
  start(row: Transition, local: LocalFile | undefined, log: Logger): Promise<void> {
    return this.line.offer({ row, local, log });
  }

  close(graceMs?: number) {
    return this.line.close(graceMs);
  }

  private async render(works: PosterWork[]) {
    try {
      const stored = await this.segue.media
        .posters(works.map(({ row, local }) => ({ videoKey: row.videoKey!, posterKey: posterKeyOf(row), localVideo: local?.file })))
        .catch((error: unknown) => works.map(() => error as Error));
      await Promise.all(
        works.map(async (work, k) => {
          try {
            const poster = stored[k]!;
            if (poster instanceof Error) throw poster;
            await recordPoster(this.segue, work.row, poster);
          } catch (err) {
            work.log.warn({ err }, 'poster failed here; the media queue tries again');
            await this.queue(work);
          }
        }),
      );
    } finally {
      await Promise.all(works.map((work) => work.local?.release()));
    }
  }

  private queue({ row, log }: PosterWork) {
    return this.segue.mediaJobs
      .add({ kind: 'poster', transitionId: row.id, run: row.run })
      .then(() => undefined)
      .catch((err: unknown) => log.warn({ err }, 'could not queue the poster; the reconciler will'));
  }
}
