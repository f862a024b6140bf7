import { makeImage, startImageServer } from './images.ts';

let counter = 0;

/**
 * Images that pass the rules, served on 127.0.0.1 for this test file: workers fetch and check
 * every URL image before they submit, so fixtures point at real images. Every fixture shares the
 * same two URLs (one fetch per account); prompts keep inputs unique.
 */
export const fixtureImages = await startImageServer();
const frontImageUrl = fixtureImages.set('/front.png', await makeImage({ width: 640, height: 360, color: '#e0a040' }));
const tailImageUrl = fixtureImages.set('/tail.png', await makeImage({ width: 640, height: 360, color: '#203060' }));

/** A valid TransitionInput with a unique prompt (the fal emulator counts duplicate inputs). */
export function transitionInput(overrides: Record<string, unknown> = {}) {
  counter += 1;
  return {
    frontImageUrl,
    tailImageUrl,
    prompt: `A slow morph, take ${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`,
    ...overrides,
  };
}

export const transitionInputs = (n: number, overrides: Record<string, unknown> = {}) =>
  Array.from({ length: n }, () => transitionInput(overrides));
