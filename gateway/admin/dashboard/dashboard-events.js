// The page's one event stream, shared by every panel: an EventSource holds a connection for as long
// as the page is open, and a browser opens about six per host over HTTP/1.1, so two per page left a
// third tab's requests waiting and a fourth tab unable to load at all.
//
// A browser's EventSource reconnects by itself after a dropped connection, but gives up for good
// on an answer that is not a 200 (a 503 `too-many-streams` while other tabs hold every stream, a
// 401, a gateway restarting behind a proxy): then this opens a new one after a backoff, doubling
// from `FIRST_RETRY_MS` to `MAX_RETRY_MS`, and says so with a `connection` event. The browser's own
// reconnect sends `Last-Event-ID`; a new EventSource cannot, so this one names the last id it saw in
// `?lastEventId=`, and the gateway replays what the page missed, or sends `resync` first when it no
// longer holds all of it. A stream refused for its token (a 401, which an EventSource cannot tell
// from other refusals) opens again at once with the token the user enters (`token-changed`).
import { adminToken, tokenEvents } from './dashboard-token.js';

const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;

/** The stream's address with the tab's token as it is now (an EventSource sends no headers) and where to resume. */
function urlFrom(lastEventId) {
  const query = new URLSearchParams();
  if (adminToken()) query.set('token', adminToken());
  if (lastEventId !== '') query.set('lastEventId', lastEventId);
  return query.toString() === '' ? 'api/events' : `api/events?${query}`;
}

/**
 * `/api/events`, one stream per page, opened again after a refusal; listen with `addEventListener(type, …)`
 * for the gateway's event types and `resync` (changes were missed: read the state again), and for `connection` (`detail`: `{ state: 'live' | 'connecting' |
 * 'retrying', retryInMs? }`) to follow the stream itself.
 */
class ReconnectingEvents extends EventTarget {
  #source;
  #types = new Set();
  #retryMs = FIRST_RETRY_MS;
  #retryTimer;
  /** The id of the latest event received, on any stream this opened: where a new one resumes. */
  #lastEventId = '';
  /** The latest `connection` detail, for listeners that start late. */
  state = { state: 'connecting' };

  constructor() {
    super();
    this.#open();
    tokenEvents.addEventListener('token-changed', () => this.#reopen());
  }

  addEventListener(type, listener, options) {
    super.addEventListener(type, listener, options);
    if (type === 'connection' || this.#types.has(type)) return;
    this.#types.add(type);
    this.#forward(this.#source, type);
  }

  #forward(source, type) {
    source.addEventListener(type, (message) => {
      if (message.lastEventId !== '') this.#lastEventId = message.lastEventId;
      this.dispatchEvent(new MessageEvent(type, { data: message.data, lastEventId: message.lastEventId }));
    });
  }

  #announce(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('connection', { detail: state }));
  }

  #open() {
    const source = new EventSource(urlFrom(this.#lastEventId));
    this.#source = source;
    for (const type of this.#types) this.#forward(source, type);
    source.onopen = () => {
      this.#retryMs = FIRST_RETRY_MS;
      this.#announce({ state: 'live' });
    };
    source.onerror = () => {
      if (source.readyState !== EventSource.CLOSED) return this.#announce({ state: 'connecting' });
      // Refused (not a 200): the browser will not try again, so this does.
      const retryInMs = this.#retryMs;
      this.#retryMs = Math.min(MAX_RETRY_MS, this.#retryMs * 2);
      this.#announce({ state: 'retrying', retryInMs });
      this.#retryTimer = setTimeout(() => this.#open(), retryInMs);
    };
  }

  /** Opens a new stream now, in place of the current one or of a retry to come, resuming after the last event seen. */
  #reopen() {
    clearTimeout(this.#retryTimer);
    this.#source.onerror = null;
    this.#source.close();
    this.#retryMs = FIRST_RETRY_MS;
    this.#announce({ state: 'connecting' });
    this.#open();
  }
}

export const events = new ReconnectingEvents();
