import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';

/**
 * A tiny image host for the console: `/<name>.png` is a gradient card with the name on it (an SVG
 * drawn as a 640×360 PNG by sharp). The browser shows it, and Segue's workers fetch and check it
 * before they submit (the rules take JPEG, PNG and WebP, not SVG).
 */
export interface ImageHost {
  url(name: string): string;
  /** The PNG served for a name, as bytes (for files dropped into the console). */
  png(name: string): Promise<Buffer>;
  close(): Promise<void>;
}

const PALETTES = [
  ['#4f46e5', '#06b6d4'],
  ['#f59e0b', '#ef4444'],
  ['#10b981', '#3b82f6'],
  ['#ec4899', '#8b5cf6'],
];

function svg(name: string): string {
  const [from, to] = PALETTES[[...name].reduce((sum, c) => sum + c.charCodeAt(0), 0) % PALETTES.length]!;
  const label = name.replace(/[^\w-]/g, '');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360" viewBox="0 0 640 360">
  <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="${from}"/><stop offset="1" stop-color="${to}"/></linearGradient></defs>
  <rect width="640" height="360" fill="url(#g)"/>
  <text x="320" y="200" font-family="sans-serif" font-size="56" fill="white" text-anchor="middle">${label}</text>
</svg>`;
}

export async function startImageHost(): Promise<ImageHost> {
  const pngs = new Map<string, Promise<Buffer>>();
  const png = (name: string) => {
    let made = pngs.get(name);
    if (!made) pngs.set(name, (made = sharp(Buffer.from(svg(name))).png().toBuffer()));
    return made;
  };
  const server = createServer((req, res) => {
    const name = /^\/([\w-]+)\.png$/.exec(req.url ?? '')?.[1];
    if (!name) return void res.writeHead(404).end();
    void png(name).then((bytes) => res.writeHead(200, { 'content-type': 'image/png', 'cache-control': 'no-cache' }).end(bytes));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    png,
    url: (name) => `http://127.0.0.1:${port}/${name}.png`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
