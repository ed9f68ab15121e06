// The HTTP/1.1 listener's per-connection bookkeeping: which responses each connection still has
// open, whether what it still sends is served, and the list of connections that `drain` walks.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { QUEUED_WHEN_CLOSED, type QueuedResponse } from '../context.ts';

/** What the listener keeps about one connection, on the socket itself. */
export interface ConnectionState {
  /**
   * Its responses not yet closed (one, or a few when the client pipelines). An array, not a Set:
   * the state lives as long as the connection, so it reaches the old generation, and a Set there
   * reallocates its hash table in the old generation each time it empties and fills again (a
   * delete that shrinks it, an add that grows it): ~100 bytes of old-generation garbage a
   * request, which brought a mark-compact every few seconds under load. An array keeps its
   * backing store through push and pop. In the order their requests were read, which is the order
   * of their answers: the last is the one a drain closes the connection after.
   */
  readonly open: ServerResponse[];
  /** Its bytes failed to parse: nothing more read from it is dispatched. */
  refused: boolean;
  /**
   * An answer that closes it was given in its turn (a refused expectation, a drain's
   * `connection: close`): requests read after that one are never served, as RFC 9112 §9.6 has a
   * server that closes do, so none reaches an upstream; the client learns from the close that they
   * were not processed (§9.3.2).
   */
  closing: boolean;
  /**
   * The request whose body is being read and dropped after its answer (`dropsSmallBody`), while it
   * is not whole: a parse error meanwhile (the client ended its side mid-body) is of a request
   * already answered, so nothing is answered again.
   */
  droppingBody: IncomingMessage | undefined;
  /** In the listener's list of connections, with a 'close' listener that forgets it. */
  tracked: boolean;
  /** Its neighbours in that list while tracked (see `Http1Connections.newest`). */
  previous: ConnectionState | undefined;
  next: ConnectionState | undefined;
}

/**
 * Where a socket holds its `ConnectionState`: a property read per request instead of a lookup in
 * a Map, a WeakMap and a WeakSet keyed by the socket (four hash lookups a request, on the profile).
 */
const CONNECTION = Symbol('switchboard.connection');
type TrackedSocket = Duplex & { [CONNECTION]?: ConnectionState };

/** The state of `socket` if it has one yet (a request or a parse error of it); none for a socket no request came on. */
export function connectionOf(socket: Duplex | null): ConnectionState | undefined {
  return (socket as TrackedSocket | null)?.[CONNECTION];
}

/** The state of `socket`, made on its first request (or its first parse error). */
export function connectionStateOf(socket: Duplex): ConnectionState {
  const tracked = socket as TrackedSocket;
  tracked[CONNECTION] ??= { open: [], refused: false, closing: false, droppingBody: undefined, tracked: false, previous: undefined, next: undefined };
  return tracked[CONNECTION];
}

/** The connections of one listener with a request so far, while they live, and their open responses. */
export class Http1Connections {
  /**
   * Newest first; each holds its open responses (see `ConnectionState`). Not one Set of every open
   * response: adding and deleting ~10k responses a second in one long-lived Set kept each of them
   * (and its request, headers and write requests) reachable past the next scavenges, so V8
   * promoted ~1 MB per scavenge to the old generation; per-connection arrays hold one or two. And
   * not a Set of the connections either, but a list through their states: under connection churn
   * (a new connection per request) such a Set, in the old generation, rebuilt its table as it
   * emptied and filled, each dead table still pointed at young sockets, and a scavenge kept and
   * promoted them with all they held: twice the bare proxy's scavenge time (bench/proxy/README.md,
   * round 13). A state leaving the list points at nothing.
   */
  private newest: ConnectionState | undefined = undefined;
  private openCount = 0;

  /** Responses tracked and not yet closed, over every connection. */
  get inFlight(): number {
    return this.openCount;
  }

  /** Counts `response` open on its connection, which joins the list on its first request until it closes. */
  track(response: ServerResponse): void {
    const socket = response.req.socket as TrackedSocket;
    let state = socket[CONNECTION];
    if (state === undefined) state = connectionStateOf(socket);
    if (!state.tracked) {
      // Kept while the connection lives (an entry per request would churn the Set's table).
      state.tracked = true;
      state.next = this.newest;
      if (this.newest !== undefined) this.newest.previous = state;
      this.newest = state;
      socket.once('close', () => this.forget(socket));
    }
    state.open.push(response);
    this.openCount += 1;
  }

  /** A response on `socket` closed: it is no longer in flight, nor open on its connection; one not tracked (or already forgotten) is ignored. */
  closed(response: ServerResponse, socket: Duplex): void {
    const open = (socket as TrackedSocket)[CONNECTION]?.open;
    const index = open?.indexOf(response) ?? -1;
    if (open === undefined || index < 0) return;
    this.openCount -= 1;
    // The ones behind move up, so the order stays the answers' (seldom more than one or two).
    for (let next = index + 1; next < open.length; next += 1) open[next - 1] = open[next]!;
    open.pop();
  }

  /** Every tracked connection's state, newest first. */
  *states(): IterableIterator<ConnectionState> {
    for (let state = this.newest; state !== undefined; state = state.next) yield state;
  }

  /**
   * A connection closed: whatever of it is still counted open (its responses' 'close' may come after)
   * is not, and the answers still queued behind the one holding the socket are closed (`closeQueued`).
   */
  private forget(socket: TrackedSocket): void {
    const state = socket[CONNECTION]!;
    if (!state.tracked) return;
    state.tracked = false;
    if (state.previous === undefined) this.newest = state.next;
    else state.previous.next = state.next;
    if (state.next !== undefined) state.next.previous = state.previous;
    state.previous = undefined;
    state.next = undefined;
    this.openCount -= state.open.length;
    // Usually none is left: a copy (their 'close' listeners forget them from the array) only then.
    const left = state.open.length > 0 ? state.open.splice(0) : undefined;
    if (left !== undefined) for (const response of left) closeQueued(response);
  }
}

/** Node's flag that a response's 'close' was emitted (`emitCloseNT` in node:_http_server): set so that Node never emits a second. */
type ClosableResponse = ServerResponse & QueuedResponse & { _closed?: boolean };

/**
 * Closes a response its dead connection leaves unanswered in the queue of pipelined answers. Node
 * emits 'close' only on the response holding the socket; one queued behind it (never given the
 * socket) heard nothing, so its request went on as if its client were there: the upstream attempt
 * ran on, its answer was written into a buffer nobody sends and logged as sent (200, its bytes), and
 * with an upstream that never answered, the request wrote no access-log line and no metric at all.
 * Destroyed and closed as the one holding the socket is, it ends like any request whose client
 * left: its attempt is aborted, and it is logged and counted 499 `cancelled` with no bytes, also
 * when an upstream's head and body were written into it (`QUEUED_WHEN_CLOSED`).
 */
function closeQueued(response: ClosableResponse): void {
  // The one holding the socket (Node closes it), or one finished or closed already.
  if (response.socket !== null || response.writableFinished || response._closed === true) return;
  response[QUEUED_WHEN_CLOSED] = true;
  response.destroy();
  response._closed = true;
  response.emit('close');
}
