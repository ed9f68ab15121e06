import { Etcd3, type IOptions } from 'etcd3';
import type { ConnectionCredentials } from '../../connection-credentials.ts';
import { tolerateEtcdAuthDisabled } from './etcd-auth-disabled.ts';
import { NO_HIDDEN_RETRIES } from './etcd-fault-handling.ts';

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type WatchBackoff = NonNullable<FaultHandling['watchBackoff']>;

/**
 * gRPC keepalive ping interval on the client's connections. etcd answers pings more frequent than
 * its `--grpc-keepalive-min-time` (5 s by default) with GOAWAY, so this stays above it.
 */
export const ETCD_KEEPALIVE_TIME_MS = 10_000;

/** Options of `createEtcdClient`. */
export interface EtcdClientOptions {
  /** One member, `http://host:port` or `host:port`: a session talks to a single member. */
  readonly endpoint: string;
  /** Deadline of every unary call (reads, probes), and how long a keepalive ping may go unanswered. */
  readonly requestTimeoutMs: number;
  /** TLS files and user/password for the connection; none: the URL's scheme alone (system roots for https). */
  readonly credentials?: ConnectionCredentials | undefined;
}

/**
 * etcd3 re-establishes a broken watch stream by itself after this delay. The provider replaces the
 * whole client instead, so the only effect is how soon a dropped client's last timer runs out.
 */
const WATCH_STREAM_RETRY: WatchBackoff = { duration: 100, next: () => WATCH_STREAM_RETRY };

/**
 * A fresh etcd3 client bound to one member: every unary call has a deadline, no hidden retries or
 * breakers, keepalive pings on its connections, and connections of its own (a local subchannel
 * pool), so closing it drops its sockets instead of leaving a possibly dead one for the next client;
 * given a user, it goes on without a token where etcd has authentication off (as etcdctl does).
 */
export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
  const client = new Etcd3({
    hosts: options.endpoint,
    ...options.credentials?.clientSecurity(),
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + options.requestTimeoutMs }),
    grpcOptions: {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.keepalive_time_ms': ETCD_KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': options.requestTimeoutMs,
      // gRPC's default 4 MiB receive limit made a listing page (or a batched watch response) over
      // 4 MiB fail for good: config store objects may be up to 1 MiB each, so a handful of large
      // ones kept every gateway from listing the store. etcd's own Go client (clientv3) lifts the
      // limit the same way (MaxCallRecvMsgSize math.MaxInt32); etcd bounds what is stored.
      'grpc.max_receive_message_length': -1,
    },
    faultHandling: { ...NO_HIDDEN_RETRIES, watchBackoff: WATCH_STREAM_RETRY },
  });
  return tolerateEtcdAuthDisabled(client);
}
