/**
 * The helper process of tool-process.ts: runs each ffmpeg or ffprobe it is sent with runTool and
 * answers with the result or the MediaError. It ends when its parent does (the IPC channel
 * closes), stopping whatever still runs.
 */
import { isMediaError } from './errors.ts';
import { runTool } from './ffmpeg.ts';
import type { ToolAnswer, ToolRequest } from './tool-process.ts';

const running = new Map<number, AbortController>();
const answer = (message: ToolAnswer) => {
  if (process.connected) process.send!(message);
};

process.on('message', (request: ToolRequest) => {
  if ('cancel' in request) {
    running.get(request.cancel)?.abort();
    return;
  }
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
