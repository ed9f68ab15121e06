import type { Client, Event } from 'node-zookeeper-client';

/**
 * ZooKeeper 3.6's persistent recursive watches (`addWatch`, opcode 106, mode PERSISTENT_RECURSIVE)
 * for clients built by `createGuardedClient`. node-zookeeper-client 1.1.3 has no such request, so
 * the guarded client sends it through the library's own queue (the library numbers it and keeps
 * replies in order) and takes its reply before the library, which would drop the connection on an
 * answer to an opcode it does not know. One such watch on a tree reports every creation, deletion
 * and data change below it (never "children changed") until the connection drops; a reconnect
 * must arm it again, because the server keeps watches per connection and the library only restores
 * the one-shot watches it knows.
 */
export interface RecursiveWatchSupport {
  /** Sends `addWatch(path, PERSISTENT_RECURSIVE)`; `done` receives the library's `Exception` on failure, null once armed. */
  add(path: string, done: (error: unknown) => void): void;
  /**
   * Calls `listener` with every watch notification the client receives (before the library's
   * one-shot watchers of the same event), until the returned function is called.
   */
  listen(listener: (event: Event) => void): () => void;
}

/** The opcode of ZooKeeper's `addWatch` request (ZooKeeper 3.6+). */
export const ADD_WATCH_OPCODE = 106;
/** `AddWatchMode.PERSISTENT_RECURSIVE`. */
export const ADD_WATCH_PERSISTENT_RECURSIVE = 1;

const supports = new WeakMap<Client, RecursiveWatchSupport>();

/** Called by the guarded client that can send `addWatch` on `client`'s connection. */
export function registerRecursiveWatchSupport(client: Client, support: RecursiveWatchSupport): void {
  supports.set(client, support);
}

/** What `client` offers for recursive watches; undefined for a client that cannot send them (a fake, a bare library client). */
export function recursiveWatchSupportOf(client: Client): RecursiveWatchSupport | undefined {
  return supports.get(client);
}

/**
 * The wire form of an `addWatch` request: a 4-byte length, the request header (xid, opcode), then
 * the path (4-byte length and UTF-8 bytes) and the mode. The library sets `header.xid` just before
 * it calls `toBuffer`, and a chroot through `setChrootPath` when it queues the request.
 */
export class AddWatchRequest {
  readonly header = { xid: 0, type: ADD_WATCH_OPCODE };
  readonly payload = {
    setChrootPath: (chroot: string | undefined) => {
      this.chroot = chroot ?? '';
    },
  };
  private chroot = '';

  constructor(private readonly path: string) {}

  toBuffer(): Buffer {
    const path = Buffer.from(this.chroot === '' ? this.path : this.path === '/' ? this.chroot : `${this.chroot}${this.path}`, 'utf8');
    const size = 4 + 4 + 4 + path.length + 4;
    const buffer = Buffer.alloc(4 + size);
    let offset = buffer.writeInt32BE(size, 0);
    offset = buffer.writeInt32BE(this.header.xid, offset);
    offset = buffer.writeInt32BE(this.header.type, offset);
    offset = buffer.writeInt32BE(path.length, offset);
    offset += path.copy(buffer, offset);
    buffer.writeInt32BE(ADD_WATCH_PERSISTENT_RECURSIVE, offset);
    return buffer;
  }
}
