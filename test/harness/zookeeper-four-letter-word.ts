import { connect } from 'node:net';

/** The server states the harness distinguishes; anything unreachable or not serving is `down`. */
export type ZooKeeperMode = 'standalone' | 'leader' | 'follower' | 'down';

const FOUR_LETTER_WORD_TIMEOUT_MS = 1_000;

/**
 * Sends a ZooKeeper four-letter word (`srvr`, `ruok`, `mntr`...) and resolves with the whole reply;
 * rejects on connection errors or after `timeoutMs` (a paused server accepts but never answers).
 */
export function fourLetterWord(host: string, port: number, word: string, timeoutMs = FOUR_LETTER_WORD_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host, port });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`${word} to ${host}:${port} timed out after ${timeoutMs} ms`)));
    socket.once('connect', () => socket.end(word));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', reject);
    socket.once('close', (hadError) => {
      if (!hadError) resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

/** Reads the `Mode:` line of a `srvr` reply; a server that is up but not serving (no Mode line) is `down`. */
export function parseSrvrMode(reply: string): ZooKeeperMode {
  const mode = /^Mode:\s*(\S+)/m.exec(reply)?.[1];
  return mode === 'standalone' || mode === 'leader' || mode === 'follower' ? mode : 'down';
}

/** Asks `srvr` and returns the mode; never rejects (unreachable is `down`). */
export async function srvrMode(host: string, port: number, timeoutMs = FOUR_LETTER_WORD_TIMEOUT_MS): Promise<ZooKeeperMode> {
  try {
    return parseSrvrMode(await fourLetterWord(host, port, 'srvr', timeoutMs));
  } catch {
    return 'down';
  }
}
