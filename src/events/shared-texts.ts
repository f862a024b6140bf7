/**
 * Equal strings kept once: many subscribers of one process send the same query text and listen
 * to the same topics, and each would otherwise hold its own copy for as long as it stays
 * subscribed. Bounded in count (a client sending endless new texts only empties it, dropping the
 * sharing, never the texts in use) and in length (a long text is left as it came).
 */
export class SharedTexts {
  private readonly kept = new Map<string, string>();

  constructor(
    private readonly limit: number,
    private readonly maxLength: number,
  ) {}

  /** How many texts are kept. */
  get size(): number {
    return this.kept.size;
  }

  /** The equal text already kept, or this one, now kept. */
  of(text: string): string {
    if (text.length > this.maxLength) return text;
    const kept = this.kept.get(text);
    if (kept !== undefined) return kept;
    if (this.kept.size >= this.limit) this.kept.clear();
    this.kept.set(text, text);
    return text;
  }
}
