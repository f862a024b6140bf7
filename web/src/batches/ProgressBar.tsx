import type { ConsoleBatchFragment } from '../../../src/generated/gql/graphql';

type Counts = Pick<ConsoleBatchFragment, 'total' | 'queued' | 'running' | 'completed' | 'failed' | 'canceled'>;

const SEGMENTS = ['completed', 'failed', 'canceled', 'running'] as const;

/** How far the batch is: ended transitions out of all, one coloured segment per outcome. */
export function ProgressBar({ counts }: { counts: Counts }) {
  const { total, queued, running, completed, failed, canceled } = counts;
  const ended = completed + failed + canceled;
  const share = (n: number) => `${total > 0 ? (100 * n) / total : 0}%`;
  const summary = `${ended} of ${total} finished: ${completed} completed, ${failed} failed, ${canceled} canceled, ${running} running, ${queued} queued`;
  return (
    <div className="progress-block">
      <div
        className="progress"
        role="progressbar"
        aria-label="Batch progress"
        aria-valuemin={0}
        aria-valuemax={total}
        aria-valuenow={ended}
        aria-valuetext={summary}
      >
        {SEGMENTS.map((segment) => (
          <span key={segment} className={`progress-${segment}`} style={{ width: share(counts[segment]) }} />
        ))}
      </div>
      <p className="progress-legend">
        <span className="dot dot-completed" aria-hidden="true" /> {completed} completed
        <span className="dot dot-running" aria-hidden="true" /> {running} running
        <span className="dot dot-queued" aria-hidden="true" /> {queued} queued
        {failed > 0 && (
          <>
            <span className="dot dot-failed" aria-hidden="true" /> {failed} failed
          </>
        )}
        {canceled > 0 && (
          <>
            <span className="dot dot-canceled" aria-hidden="true" /> {canceled} canceled
          </>
        )}
      </p>
    </div>
  );
}
