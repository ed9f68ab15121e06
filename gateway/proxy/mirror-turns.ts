/**
 * Which of a route's requests are copied: `chosen / requests` stays at or just above `percent`
 * (Traefik's mirroring counter), so the copies are spread evenly. Kept by the sender across reloads:
 * built afresh with every configuration, the count would copy the first request after each reload
 * (a store written often would be mirrored far above a low percent).
 */
export class MirrorTurns {
  private requests = 0;
  private chosen = 0;

  constructor(readonly percent: number) {}

  /** Whether the next request is one to copy. */
  next(): boolean {
    this.requests += 1;
    if (this.chosen * 100 >= this.requests * this.percent) return false;
    this.chosen += 1;
    return true;
  }
}
