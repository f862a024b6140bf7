import { describe, expect, it } from 'vitest';
import { SharedTexts } from '../src/events/shared-texts.ts';

/** An equal string built anew (as JSON.parse or a template builds one). */
const copyOf = (text: string) => JSON.parse(JSON.stringify(text)) as string;

// Which instance comes back cannot be seen from JavaScript (strings compare by value); what is
// kept can, and heap snapshots of the subscriptions bench show the sharing.
describe('SharedTexts', () => {
  it('keeps one text per value, within its bounds, and always gives back an equal text', () => {
    const texts = new SharedTexts(3, 10);
    expect(texts.of(copyOf('topic:a'))).toBe('topic:a');
    expect(texts.of(copyOf('topic:a'))).toBe('topic:a');
    expect(texts.size).toBe(1);
    texts.of('topic:b');
    expect(texts.size).toBe(2);
    // Longer than the bound: given back as it came, not kept.
    expect(texts.of('x'.repeat(11))).toBe('x'.repeat(11));
    expect(texts.size).toBe(2);
    texts.of('topic:c');
    expect(texts.size).toBe(3);
    // Full: it empties and starts again with the new text.
    expect(texts.of('topic:d')).toBe('topic:d');
    expect(texts.size).toBe(1);
    expect(texts.of(copyOf('topic:a'))).toBe('topic:a');
    expect(texts.size).toBe(2);
  });
});
