/**
 * The version a stream last sent of each transition, so its updates only go forward. A batch
 * stream follows a batch's few transitions; an account-wide one may hear of thousands over days.
 * Kept as a flat list of id/version pairs while small: 10,000 idle subscribers each hold one, and
 * a Map's table for 20 transitions is about 1 KB against 0.4 KB for the list. Past `SMALL`
 * transitions it becomes a Map, bounded at `limit`: the transitions heard of longest ago (by
 * when they were last sent) are forgotten.
 */
export class SentVersions {
  private pairs: Array<string | number> | null = [];
  private map: Map<string, number> | null = null;

  constructor(private readonly limit: number) {}

  /** The version last sent of a transition; 0 when none was. */
  get(id: string): number {
    if (this.map) return this.map.get(id) ?? 0;
    const pairs = this.pairs!;
    for (let i = 0; i < pairs.length; i += 2) if (pairs[i] === id) return pairs[i + 1] as number;
    return 0;
  }

  /** Records `version` as sent if it is newer than the last one sent; says whether it was. */
  advance(id: string, version: number): boolean {
    if (this.map) {
      if ((this.map.get(id) ?? 0) >= version) return false;
      this.map.delete(id);
      this.map.set(id, version);
      if (this.map.size > this.limit) this.map.delete(this.map.keys().next().value!);
      return true;
    }
    // One pass over the list: find the transition, keep it if what was sent is as new.
    const pairs = this.pairs!;
    let at = 0;
    while (at < pairs.length && pairs[at] !== id) at += 2;
    if (at < pairs.length) {
      if ((pairs[at + 1] as number) >= version) return false;
      // Moved to the end, as the Map keeps them: the last sent goes last.
      pairs.splice(at, 2);
    }
    pairs.push(id, version);
    if (pairs.length > SMALL * 2) {
      this.map = new Map();
      for (let i = 0; i < pairs.length; i += 2) this.map.set(pairs[i] as string, pairs[i + 1] as number);
      this.pairs = null;
      while (this.map.size > this.limit) this.map.delete(this.map.keys().next().value!);
    }
    return true;
  }
}

/** Transitions kept as a list before a Map is worth its table. */
const SMALL = 32;
