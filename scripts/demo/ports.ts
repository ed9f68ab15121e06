import { bindsNow, freePort, reservePorts } from '../../test/harness/ports.ts';

export { freePort, reservePorts };

/** A port the demo will use, and whether it had to differ from the one asked for. */
export interface ChosenPort {
  readonly port: number;
  readonly wanted: number;
  readonly fallback: boolean;
}

/** `wanted` when 127.0.0.1:`wanted` can be bound right now, else a free loopback port (`fallback: true`). */
export async function portOrFree(wanted: number): Promise<ChosenPort> {
  if (await bindsNow(wanted)) return { port: wanted, wanted, fallback: false };
  return { port: await freePort(), wanted, fallback: true };
}
