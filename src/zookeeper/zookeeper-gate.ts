/** A place in a `ZooKeeperGate`: running, or waiting for a slot. */
export interface GateTicket {
  /** Frees the slot, or leaves the queue when still waiting; idempotent. */
  release(): void;
}

/**
 * Caps how many requests one client has in flight. A new session re-reads every service at once:
 * unbounded, 1,000 services × 10 instances put 11,000 requests (library packets, promises, timers)
 * on the heap together, and V8 kept that peak as RSS. A few hundred in flight still keep the
 * socket full, since the server answers pipelined requests in order.
 */
export class ZooKeeperGate {
  private active = 0;
  private readonly waiting: Array<{ run: () => void; state: 'waiting' | 'running' | 'done' } | undefined> = [];
  private head = 0;

  constructor(readonly limit: number) {}

  /** Runs `run` now when a slot is free, else once one frees up, in arrival order. */
  admit(run: (ticket: GateTicket) => void): GateTicket {
    const entry = { run: () => run(ticket), state: 'waiting' as 'waiting' | 'running' | 'done' };
    const ticket: GateTicket = {
      release: () => {
        if (entry.state === 'done') return;
        const wasRunning = entry.state === 'running';
        entry.state = 'done';
        if (wasRunning) {
          this.active -= 1;
          this.drain();
        }
      },
    };
    this.waiting.push(entry);
    this.drain();
    return ticket;
  }

  private drain(): void {
    while (this.active < this.limit && this.head < this.waiting.length) {
      const entry = this.waiting[this.head]!;
      this.waiting[this.head] = undefined;
      this.head += 1;
      if (this.head > 1024 && this.head * 2 > this.waiting.length) {
        this.waiting.splice(0, this.head);
        this.head = 0;
      }
      if (entry.state !== 'waiting') continue;
      entry.state = 'running';
      this.active += 1;
      entry.run();
    }
  }
}
