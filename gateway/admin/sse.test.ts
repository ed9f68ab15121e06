import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { openEventStream } from '../../test/harness/sse-client.ts';
import { waitFor } from '../../test/harness/wait.ts';
import type { AdminEvent } from './event-types.ts';
import { formatEvent, SSE_MAX_BUFFERED_BYTES, SSE_RETRY_MS, streamEvents } from './sse.ts';

const event = (id: number): AdminEvent => ({ id, type: 'config-refused', time: '2030-01-01T00:00:00.000Z', data: { reason: `r${id}` } });

describe('streamEvents', () => {
  let server: Server | undefined;
  const events$ = new Subject<AdminEvent>();
  const buffered = [event(1), event(2), event(3)];
  const ends: Array<() => void> = [];

  afterEach(async () => {
    for (const end of ends.splice(0)) end();
    const closed = new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server?.closeAllConnections();
    await closed;
  });

  /** A feed that buffers `kept` (consecutive ids) and has issued none after them, as `AdminEvents` would. */
  const feedOf = (kept: readonly AdminEvent[]) => ({
    events$,
    since: (lastId: number) => (lastId > (kept.at(-1)?.id ?? 0) ? [...kept] : kept.filter((item) => item.id > lastId)),
    canReplay: (lastId: number) => lastId <= (kept.at(-1)?.id ?? 0) && lastId + 1 >= (kept[0]?.id ?? 1),
  });

  async function serve(heartbeatMs = 60_000, kept: readonly AdminEvent[] = buffered): Promise<string> {
    server = createServer((request, response) => {
      ends.push(streamEvents(request, response, feedOf(kept), heartbeatMs));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }

  it('frames an event with its id, its type as the event name and its JSON as data', () => {
    expect(formatEvent(event(7))).toBe(`id: 7\nevent: config-refused\ndata: ${JSON.stringify(event(7))}\n\n`);
  });

  it('sends the retry delay, then each new event, to a fresh client', async () => {
    const stream = await openEventStream(await serve());
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    await waitFor(() => stream.retryMs() === SSE_RETRY_MS, { message: 'the retry field' });
    events$.next(event(4));
    await waitFor(() => stream.messages.length === 1, { message: 'the event' });
    expect(stream.messages[0]).toEqual({ id: '4', event: 'config-refused', data: JSON.stringify(event(4)) });
    stream.close();
  });

  it('replays buffered events after Last-Event-ID before new ones', async () => {
    const stream = await openEventStream(await serve(), { 'last-event-id': '1' });
    await waitFor(() => stream.messages.length === 2, { message: 'the replay' });
    events$.next(event(4));
    await waitFor(() => stream.messages.length === 3, { message: 'the new event' });
    expect(stream.messages.map((message) => message.id)).toEqual(['2', '3', '4']);
    stream.close();
  });

  it('takes ?lastEventId= where no Last-Event-ID is sent (a page opening a new EventSource), and the header over it', async () => {
    const url = await serve();
    const fromQuery = await openEventStream(`${url}?lastEventId=2`);
    const fromHeader = await openEventStream(`${url}?lastEventId=0`, { 'last-event-id': '2' });
    await waitFor(() => fromQuery.messages.length === 1 && fromHeader.messages.length === 1, { message: 'the replays' });
    events$.next(event(4));
    await waitFor(() => fromQuery.messages.length === 2 && fromHeader.messages.length === 2, { message: 'the new event' });
    expect([fromQuery.messages.map((message) => message.id), fromHeader.messages.map((message) => message.id)]).toEqual([['3', '4'], ['3', '4']]);
    fromQuery.close();
    fromHeader.close();
  });

  it.each([
    ['events after it left the buffer', '1', 3],
    ['an id this run never issued (an earlier run of the gateway)', '9', 3],
  ])('tells a client that resumes from %s to read the state again (resync, no id), then replays all it has', async (_case, lastEventId, oldestId) => {
    const stream = await openEventStream(await serve(60_000, [event(3), event(4), event(5)]), { 'last-event-id': lastEventId });
    await waitFor(() => stream.messages.length === 4, { message: 'resync and the replay' });
    const [resync, ...replayed] = stream.messages;
    expect([resync!.event, resync!.id]).toEqual(['resync', '']);
    expect(JSON.parse(resync!.data)).toEqual({ type: 'resync', time: expect.any(String), data: { lastEventId: Number(lastEventId), oldestId } });
    expect(replayed.map((message) => message.id)).toEqual(['3', '4', '5']);
    stream.close();
  });

  it('sends no resync to a client whose missed events are all still buffered, nor to one that does not resume', async () => {
    const url = await serve(60_000, [event(3), event(4), event(5)]);
    const resuming = await openEventStream(url, { 'last-event-id': '2' });
    const fresh = await openEventStream(url);
    await waitFor(() => resuming.messages.length === 3, { message: 'the replay' });
    events$.next(event(6));
    await waitFor(() => resuming.messages.length === 4 && fresh.messages.length === 1, { message: 'the new event' });
    expect(resuming.messages.map((message) => message.event)).not.toContain('resync');
    expect(fresh.messages.map((message) => message.id)).toEqual(['6']);
    resuming.close();
    fresh.close();
  });

  it('replays missed events whose text is past the slow-client limit to a client that reads, then streams new ones', async () => {
    const large = Array.from({ length: 400 }, (_, index): AdminEvent => ({ id: index + 1, type: 'config-refused', time: '2030-01-01T00:00:00.000Z', data: { reason: 'x'.repeat(4_000) } }));
    expect(large.reduce((sum, item) => sum + formatEvent(item).length, 0)).toBeGreaterThan(SSE_MAX_BUFFERED_BYTES);
    server = createServer((request, response) => ends.push(streamEvents(request, response, feedOf(large), 60_000)));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const stream = await openEventStream(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { 'last-event-id': '0' });
    await waitFor(() => stream.messages.length === large.length, { message: 'the whole replay' });
    events$.next(event(401));
    await waitFor(() => stream.messages.length === large.length + 1, { message: 'the new event after the replay' });
    stream.close();
  });

  it('cuts off a client that does not read once it is that far behind, and unsubscribes', async () => {
    const url = new URL(await serve());
    const socket = connect(Number(url.port), url.hostname);
    socket.pause();
    socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await waitFor(() => events$.observed, { message: 'the stream to subscribe' });
    const large = (id: number): AdminEvent => ({ id, type: 'config-refused', time: '2030-01-01T00:00:00.000Z', data: { reason: 'x'.repeat(10_000) } });
    // Kernel socket buffers take some megabytes first; 64 MB is far past them and the limit.
    for (let id = 1; id <= 6_400 && !socket.destroyed; id += 1) events$.next(large(id));
    await waitFor(() => !events$.observed, { message: 'the slow client to be cut off and unsubscribed' });
    socket.destroy();
  });

  it('sends heartbeat comments while nothing happens', async () => {
    const stream = await openEventStream(await serve(20));
    await waitFor(() => stream.comments.filter((comment) => comment.startsWith('heartbeat')).length >= 2, { message: 'two heartbeats' });
    stream.close();
  });

  it('unsubscribes when the client disconnects', async () => {
    const stream = await openEventStream(await serve(20));
    await waitFor(() => events$.observed, { message: 'the stream to subscribe' });
    stream.close();
    await waitFor(() => !events$.observed, { message: 'the subscription to end after the disconnect' });
  });

  it('ends the response when told to, and the client sees the end', async () => {
    const stream = await openEventStream(await serve());
    await waitFor(() => ends.length === 1);
    ends[0]!();
    await stream.ended;
    expect(events$.observed).toBe(false);
  });
});
