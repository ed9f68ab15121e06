import type { IncomingHttpHeaders } from 'node:http';
import type { MirrorRouting } from '../config/index.ts';
import type { GatewayContext } from '../context.ts';
import { sendableUpstreamHeaders } from './hop-by-hop.ts';
import { countMirrorDropped, type MirrorDropReason } from './mirror-metrics.ts';
import { MirrorBodyCopy } from './mirror-body.ts';
import type { MirrorCopy, MirrorSender } from './mirror-send.ts';
import type { MirrorTurns } from './mirror-turns.ts';
import { announcedLength, announcesBody } from './request-body-framing.ts';

/**
 * One route's traffic mirroring: picks the requests to copy (Traefik's counter, so that exactly
 * `percent` of them are, spread evenly), copies each one's method, path after rewrites, headers
 * and body as the proxy sends them, and hands the copy to the sender once its body is whole. The
 * primary request never waits for it: the body is copied while the proxy streams it upstream.
 * One per route and configuration; its turns (`MirrorTurns`) outlive a reload that keeps the route's percent.
 */
export class RouteMirror {
  private readonly turns: MirrorTurns;

  constructor(
    private readonly routeName: string,
    private readonly settings: MirrorRouting,
    private readonly sender: MirrorSender,
  ) {
    this.turns = sender.turnsOf(routeName, settings.percent);
  }

  /** Copies `context`'s request when its turn comes; call just before the proxy. Never throws, never waits. */
  start(context: GatewayContext): void {
    if (!this.turns.next()) return;
    const { request, upstream } = context;
    const length = announcedLength(request.headers);
    const copy: MirrorCopy = {
      route: this.routeName,
      settings: this.settings,
      // A HEAD the cache fetches as a GET to fill itself (`convertHead`) is still a HEAD to copy: the
      // mirror gets what the client asked (as nginx's mirror subrequest does), not a whole body to read.
      method: request.method === 'HEAD' ? 'HEAD' : upstream.method,
      path: upstream.path,
      headers: copyHeaders(sendableUpstreamHeaders(upstream.headers) as IncomingHttpHeaders),
      host: upstream.useInstanceHost ? undefined : (upstream.host ?? request.headers.host),
      body: undefined,
    };
    if (!announcesBody(request.headers) || !this.settings.body) return this.sender.send(copy);
    // A body `grpcWeb` decodes (a -text call's base64) is copied as sent, decoded: its Content-Length counts what the client sent.
    if (length !== undefined && length > this.settings.maxBodyBytes && context.get('requestBodyDecoder') === undefined) return this.drop('body-too-large');
    // Checked again at the send; here it keeps a mirror that hangs from having every upload's body
    // copied (up to maxBodySize each, for as long as the upload lasts) only for the copy to be dropped.
    if (this.sender.full(this.routeName, this.settings)) return this.drop('in-flight-limit');
    context.set(
      'requestBodyTap',
      new MirrorBodyCopy(
        this.settings.maxBodyBytes,
        (body) => this.sender.send({ ...copy, body }),
        () => this.drop('body-too-large'),
      ),
    );
  }

  private drop(reason: MirrorDropReason): void {
    countMirrorDropped(this.routeName, reason);
  }
}

/** The headers as they are now: later edits of the primary's (the transport's Host) must not reach the copy. */
function copyHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const copy: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && name !== 'host' && name !== 'content-length' && name !== 'transfer-encoding') copy[name] = value;
  }
  return copy;
}

/** `proxy` with `mirror` copying each request it chooses just before the proxy sends it. */
export function withMirror(mirror: RouteMirror, proxy: (context: GatewayContext) => Promise<void>): (context: GatewayContext) => Promise<void> {
  return (context) => {
    mirror.start(context);
    return proxy(context);
  };
}
