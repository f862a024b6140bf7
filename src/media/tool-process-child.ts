/**
 * The helper process of tool-process.ts: runs each ffmpeg or ffprobe it is sent with runTool and
 * answers with the result or the MediaError. It ends when its parent does (the IPC channel
 * closes), stopping whatever still runs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { isMediaError } from './errors.ts';
import { runTool } from './ffmpeg.ts';
import type { ToolAnswer, ToolRequest } from './tool-process.ts';

const running = new Map<number, AbortController>();
const answer = (message: ToolAnswer) => {
  if (process.connected) process.send!(message);
};

/** The niceness of a process's autogroup (Linux), or null where there is none to read. */
const groupNice = (pid: number | 'self'): number | null => {
  try {
    const nice = /nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'))?.[1];
    return nice === undefined ? null : Number(nice);
  } catch {
    return null;
  }
};

/**
 * This helper leads a session of its own (it is forked detached), and on Linux with autogroup
 * scheduling (on by default in Debian's and Ubuntu's kernels, for processes outside a cgroup with
 * a CPU controller) a session is a scheduling group: the CPU is shared between groups first, and a
 * niceness weighs only within its group. The runs' own niceness alone would leave them, together,
 * an equal share beside the worker's whole group, at any MEDIA_NICE. So the group takes the runs'
 * niceness, never below the worker's group's: only ever lowered, which needs no privilege.
 * (Where a cgroup with a CPU controller holds the worker, as under Docker or a systemd unit with
 * CPU accounting, there are no autogroups to weigh, and the write changes nothing.)
 */
let groupNiceSet = -Infinity;
function lowerGroupPriority(nice: number) {
  if (nice <= groupNiceSet) return;
  const now = groupNice('self');
  const wanted = Math.max(nice, groupNice(process.ppid) ?? 0);
  try {
    if (now !== null && now < wanted) writeFileSync('/proc/self/autogroup', String(wanted));
    groupNiceSet = nice;
  } catch (error) {
    // Linux takes one such write per 100 ms machine-wide from an unprivileged process (EAGAIN):
    // the next run tries again. Any other refusal is for good: the runs keep their own niceness.
    if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') groupNiceSet = nice;
  }
}

process.on('message', (request: ToolRequest) => {
  if ('cancel' in request) {
    running.get(request.cancel)?.abort();
    return;
  }
  lowerGroupPriority(request.options.nice ?? 0);
  const controller = new AbortController();
  running.set(request.run, controller);
  runTool(request.binary, request.args, { ...request.options, signal: controller.signal })
    .then(
      (result) => answer({ id: request.run, result: { stdout: result.stdout, stderr: result.stderr, durationMs: result.durationMs } }),
      (error: unknown) =>
        answer({
          id: request.run,
          error: isMediaError(error)
            ? { code: error.code, message: error.message, retryable: error.retryable, stderr: error.stderr }
            : { code: 'MEDIA_TOOL_FAILED', message: error instanceof Error ? error.message : String(error), retryable: true },
        }),
    )
    .finally(() => running.delete(request.run));
});

process.on('disconnect', () => {
  for (const controller of running.values()) controller.abort();
  // The aborted runs' SIGKILLs are sent synchronously; nothing else is left to do.
  process.exit(0);
});
