// A Server-Sent Events client for tests: reads a real stream over fetch and keeps what arrived.

/** One dispatched SSE message (WHATWG HTML §9.2 event stream interpretation). */
export interface SseMessage {
  /** The last `id:` seen so far, as the browser's `lastEventId`. */
  readonly id: string;
  /** `message` when the stream gave no `event:` field. */
  readonly event: string;
  readonly data: string;
}

/** An open event stream: messages and comment lines as they arrive. */
export interface SseConnection {
  readonly status: number;
  readonly headers: Headers;
  readonly messages: SseMessage[];
  /** Comment lines (after the colon, trimmed), e.g. heartbeats. */
  readonly comments: string[];
  /** The `retry:` value last sent, if any. */
  readonly retryMs: () => number | undefined;
  /** Resolves when the server ended the stream or `close()` was called. */
  readonly ended: Promise<void>;
  /** Aborts the request (the client disconnects). */
  close(): void;
}

/** Opens `url` as an event stream; resolves once the response headers arrived (any status). */
export async function openEventStream(url: string, headers: Record<string, string> = {}): Promise<SseConnection> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  let retry: number | undefined;
  let lastId = '';
  const dispatch = (block: string) => {
    let event = '';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        comments.push(line.slice(1).trim());
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) lastId = value;
      else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
    }
    if (data.length > 0) messages.push({ id: lastId, event: event || 'message', data: data.join('\n') });
  };
  const ended = (async () => {
    if (!response.body) return;
    const decoder = new TextDecoder();
    let pending = '';
    try {
      for await (const chunk of response.body) {
        pending += decoder.decode(chunk as Uint8Array, { stream: true }).replace(/\r\n?/g, '\n');
        let boundary = pending.indexOf('\n\n');
        while (boundary !== -1) {
          dispatch(pending.slice(0, boundary));
          pending = pending.slice(boundary + 2);
          boundary = pending.indexOf('\n\n');
        }
      }
    } catch {
      // Aborted by close(), or the connection broke: either way the stream has ended.
    }
  })();
  return { status: response.status, headers: response.headers, messages, comments, retryMs: () => retry, ended, close: () => controller.abort() };
}
