import type { IncomingMessage, ServerResponse } from 'node:http';
import { Subscription, type Observable } from 'rxjs';
import type { AdminEvent } from './event-types.ts';

/** A comment line this often keeps proxies and browsers from closing an idle stream. */
export const SSE_HEARTBEAT_MS = 15_000;
/** Reconnection delay the browser is told to use after a drop. */
export const SSE_RETRY_MS = 2_000;
/**
 * A client this far behind is cut off rather than buffered without bound; it reconnects and resumes
 * by `Last-Event-ID`. The replay a client is sent on connecting counts on top: it is bounded by the
 * event buffer, and a client cut during it would get the same replay again, forever.
 */
export const SSE_MAX_BUFFERED_BYTES = 1 << 20;

/** Where an event stream reads from. */
export interface EventFeed {
  readonly events$: Observable<AdminEvent>;
  /** Buffered events after `lastId`, oldest first. */
  since(lastId: number): AdminEvent[];
  /** Whether `since(lastId)` holds every event after `lastId` (none left the buffer, the id is of this run). */
  canReplay(lastId: number): boolean;
}

/**
 * Sent first to a client that resumes from an id whose following events cannot all be replayed: it
 * missed changes, so it must read the state again (`/api/services`). Not a gateway change: it has
 * no `id` (the client's last id stays as it was) and is not buffered.
 */
export interface ResyncMessage {
  readonly type: 'resync';
  readonly time: string;
  readonly data: {
    /** The id the client resumed from. */
    readonly lastEventId: number;
    /** The oldest event still buffered (replayed after this message), or null when none is. */
    readonly oldestId: number | null;
  };
}

/** One event in SSE framing: its id (for `Last-Event-ID`), its type as the event name, and its JSON as data. */
export function formatEvent(event: AdminEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

function formatResync(lastEventId: number, oldestId: number | null): string {
  const message: ResyncMessage = { type: 'resync', time: new Date().toISOString(), data: { lastEventId, oldestId } };
  return `event: resync\ndata: ${JSON.stringify(message)}\n\n`;
}

/** Where a client resumes from: `Last-Event-ID` (what a browser's EventSource sends when it reconnects by itself), else `?lastEventId=` (a page opening a new EventSource, which cannot set headers); NaN for neither. */
function resumeFrom(request: IncomingMessage): number {
  const header = request.headers['last-event-id'];
  if (header !== undefined) return Number(header);
  const query = new URL(request.url ?? '/', 'http://admin.invalid').searchParams.get('lastEventId');
  return query === null ? Number.NaN : Number(query);
}

/**
 * Serves `GET /api/events` as Server-Sent Events: replays the buffered events after the id the
 * client resumes from (`resumeFrom`; a reconnect loses nothing still buffered), preceded by a
 * `resync` message when some of them are no longer buffered, then streams every new event, with
 * a heartbeat comment every `heartbeatMs`. Everything is torn down when the client disconnects,
 * and a client too slow to keep up is disconnected. Returns a function that ends the stream.
 */
export function streamEvents(request: IncomingMessage, response: ServerResponse, source: EventFeed, heartbeatMs = SSE_HEARTBEAT_MS): () => void {
  response.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    // nginx and similar buffer responses unless told not to.
    'x-accel-buffering': 'no',
  });
  response.write(`retry: ${SSE_RETRY_MS}\n\n`);
  const lastId = resumeFrom(request);
  let ended = false;
  // Created first so teardown can run at any point; what is added after it ran is unsubscribed at once.
  const subscription = new Subscription();
  const teardown = () => {
    if (ended) return;
    ended = true;
    clearInterval(heartbeat);
    subscription.unsubscribe();
  };
  const end = () => {
    teardown();
    if (!response.writableEnded) response.end();
  };
  let maxBuffered = SSE_MAX_BUFFERED_BYTES;
  const send = (text: string) => {
    if (ended) return;
    response.write(text);
    if (response.writableLength > maxBuffered) response.destroy();
  };
  const heartbeat = setInterval(() => send(`: heartbeat ${new Date().toISOString()}\n\n`), heartbeatMs);
  heartbeat.unref();
  const resuming = Number.isInteger(lastId) && lastId >= 0;
  const replay = resuming ? source.since(lastId) : [];
  const missed = replay.map(formatEvent);
  // When it cannot replay everything, it replays all it buffered: the first of those is the oldest.
  if (resuming && !source.canReplay(lastId)) missed.unshift(formatResync(lastId, replay[0]?.id ?? null));
  for (const text of missed) maxBuffered += Buffer.byteLength(text);
  for (const text of missed) send(text);
  subscription.add(source.events$.subscribe({ next: (event) => send(formatEvent(event)), complete: end }));
  response.once('close', teardown);
  return end;
}
