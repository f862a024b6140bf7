let counter = 0;

/** A valid TransitionInput with a unique prompt (the fal emulator counts duplicate inputs). */
export function transitionInput(overrides: Record<string, unknown> = {}) {
  counter += 1;
  return {
    frontImageUrl: `https://images.example.com/front-${counter}.png`,
    tailImageUrl: `https://images.example.com/tail-${counter}.png`,
    prompt: `A slow morph, take ${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`,
    ...overrides,
  };
}

export const transitionInputs = (n: number, overrides: Record<string, unknown> = {}) =>
  Array.from({ length: n }, () => transitionInput(overrides));
