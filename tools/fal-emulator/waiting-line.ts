/**
 * The IN_QUEUE line: FIFO with O(1) push/shift, O(1) removal (a cancel can take any job out) and
 * O(log n) "how many are ahead of me" for queue_position. A plain array would make a cancel or a
 * position O(n), and a bench keeps thousands of jobs waiting while polling all of them.
 *
 * Each pushed item gets a ticket (its index); a Fenwick tree over tickets counts who still waits.
 */
export class WaitingLine<T> {
  private slots: (T | undefined)[] = [];
  private head = 0;
  /** 1-based Fenwick tree; its length - 1 is always a power of two so it can grow by doubling. */
  private tree: number[] = [0, 0];
  size = 0;

  /** Appends an item; returns its ticket, needed for remove() and ahead(). */
  push(item: T): number {
    const ticket = this.slots.length;
    this.slots.push(item);
    if (ticket + 1 >= this.tree.length) this.grow();
    this.add(ticket + 1, 1);
    this.size++;
    return ticket;
  }

  shift(): T | undefined {
    while (this.head < this.slots.length) {
      const ticket = this.head++;
      const item = this.slots[ticket];
      if (item !== undefined) {
        this.take(ticket);
        return item;
      }
    }
    return undefined;
  }

  /** Takes a waiting item out of the line; false when it is no longer waiting. */
  remove(ticket: number): boolean {
    if (this.slots[ticket] === undefined) return false;
    this.take(ticket);
    return true;
  }

  /** Number of items still waiting ahead of this ticket. */
  ahead(ticket: number): number {
    let sum = 0;
    for (let i = ticket; i > 0; i -= i & -i) sum += this.tree[i] ?? 0;
    return sum;
  }

  private take(ticket: number): void {
    this.slots[ticket] = undefined;
    this.add(ticket + 1, -1);
    this.size--;
  }

  private add(index: number, delta: number): void {
    for (let i = index; i < this.tree.length; i += i & -i) this.tree[i] = (this.tree[i] ?? 0) + delta;
  }

  /**
   * Doubles the tree from n to 2n. New nodes in (n, 2n) cover only new (empty) positions, so they
   * start at 0; node 2n covers everything, so it starts at the current total.
   */
  private grow(): void {
    const n = this.tree.length - 1;
    const total = this.ahead(n);
    for (let i = n + 1; i < 2 * n; i++) this.tree.push(0);
    this.tree.push(total);
  }
}
