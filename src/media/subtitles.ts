import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { MediaError } from './errors.ts';
import { num } from './encode.ts';

/** Timed text for a joined video: as WebVTT/SRT files, and as drawtext filters to burn in. */
export interface Cue {
  /** Seconds from the start of the video. */
  start: number;
  end: number;
  text: string;
}

/** Trims, turns CRLF into LF and drops blank lines: a blank line would end a cue early in VTT and SRT. */
export const cleanCueText = (text: string) =>
  text
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .join('\n');

function timestamp(seconds: number, separator: '.' | ',') {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(Math.floor(ms / 3_600_000))}:${pad(Math.floor(ms / 60_000) % 60)}:${pad(Math.floor(ms / 1000) % 60)}${separator}${pad(ms % 1000, 3)}`;
}

export function toWebVtt(cues: readonly Cue[]): string {
  // In VTT cue text `<` and `&` start markup; escaping `>` also keeps "-->" out of a cue.
  const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const blocks = cues.map(
    (cue, i) => `${i + 1}\n${timestamp(cue.start, '.')} --> ${timestamp(cue.end, '.')}\n${escape(cleanCueText(cue.text))}`,
  );
  return `WEBVTT\n\n${blocks.join('\n\n')}${blocks.length ? '\n' : ''}`;
}

export function toSrt(cues: readonly Cue[]): string {
  const blocks = cues.map(
    (cue, i) => `${i + 1}\n${timestamp(cue.start, ',')} --> ${timestamp(cue.end, ',')}\n${cleanCueText(cue.text)}`,
  );
  return blocks.length ? `${blocks.join('\n\n')}\n` : '';
}

/** Greedy word wrap; a word longer than a line is cut. At most `maxLines`, the last one ellipsised. */
export function wrapText(text: string, maxChars: number, maxLines: number): string[] {
  const lines: string[] = [];
  for (const paragraph of cleanCueText(text).split('\n')) {
    let line = '';
    for (let word of paragraph.split(/\s+/).filter(Boolean)) {
      while (word.length > maxChars) {
        if (line) lines.push(line);
        lines.push(word.slice(0, maxChars));
        word = word.slice(maxChars);
        line = '';
      }
      if (!line) line = word;
      else if (line.length + 1 + word.length <= maxChars) line += ` ${word}`;
      else {
        lines.push(line);
        line = word;
      }
    }
    if (line) lines.push(line);
  }
  if (lines.length <= maxLines) return lines;
  const kept = lines.slice(0, maxLines);
  kept[maxLines - 1] = `${kept[maxLines - 1]!.slice(0, Math.max(1, maxChars - 1))}…`;
  return kept;
}

export interface BurnInPlan {
  /** drawtext filters to chain onto the video, in order. */
  filters: string[];
  /** Text files the filters read (names relative to ffmpeg's working directory). */
  files: Array<{ name: string; content: string }>;
}

/**
 * drawtext rather than the `subtitles` filter: libass finds fonts through fontconfig, and the npm
 * static ffmpeg then renders with whatever the machine has installed, or silently draws nothing
 * when it has none. drawtext takes a font file, so the output is the same everywhere.
 * Each line is its own centred drawtext (drawtext does not centre the lines of a block), and reads
 * its text from a file, so no user text is ever parsed as filter syntax (`expansion=none` also
 * keeps `%{...}` literal).
 */
export function burnInPlan(
  cues: readonly Cue[],
  frame: { width: number; height: number; fps: number },
  fontFile: string,
): BurnInPlan {
  const { width: W, height: H, fps } = frame;
  const fontSize = Math.max(12, Math.round(H / 18));
  // DejaVu Sans Bold averages about 0.62 em per character in mixed-case text.
  const maxChars = Math.max(8, Math.floor((W * 0.9) / (fontSize * 0.62)));
  const lineHeight = Math.round(fontSize * 1.45);
  const margin = Math.round(H * 0.06);
  // Frame times are multiples of 1/fps: compare half a frame early so a boundary frame belongs to
  // exactly one cue despite float rounding.
  const slack = 0.5 / fps;
  const filters: string[] = [];
  const files: BurnInPlan['files'] = [];
  cues.forEach((cue, c) => {
    const lines = wrapText(cue.text, maxChars, 3);
    lines.forEach((line, l) => {
      const name = `cue${c}-line${l}.txt`;
      files.push({ name, content: line });
      const top = H - margin - (lines.length - l) * lineHeight;
      filters.push(
        `drawtext=fontfile=${fontFile}:textfile=${name}:expansion=none:fontsize=${fontSize}:fontcolor=white:` +
          `box=1:boxcolor=black@0.6:boxborderw=${Math.max(2, Math.round(fontSize / 4))}:` +
          `x=(w-text_w)/2:y=${top}:enable='gte(t,${num(cue.start - slack)})*lt(t,${num(cue.end - slack)})'`,
      );
    });
  });
  return { filters, files };
}

/** Fonts tried when no font file is given: the bundled one first, then common system ones. */
const FONT_CANDIDATES = [
  fileURLToPath(new URL('./fonts/DejaVuSans-Bold.ttf', import.meta.url)),
  // From the compiled build (dist/media/): tsc does not copy fonts, the sources sit next to it.
  fileURLToPath(new URL('../../src/media/fonts/DejaVuSans-Bold.ttf', import.meta.url)),
  '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf',
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/TTF/DejaVuSans-Bold.ttf',
  '/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf',
  '/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf',
  '/System/Library/Fonts/Supplemental/Arial Bold.ttf',
  'C:\\Windows\\Fonts\\arialbd.ttf',
];

export async function subtitleFont(explicit?: string | null): Promise<string> {
  for (const file of explicit ? [explicit] : FONT_CANDIDATES) {
    try {
      await access(file, constants.R_OK);
      return file;
    } catch {
      /* next */
    }
  }
  throw new MediaError(
    'MEDIA_FONT_NOT_FOUND',
    explicit ? `Font file not readable: ${explicit}` : 'No font for burned-in subtitles (src/media/fonts is missing and no system DejaVu font).',
  );
}
