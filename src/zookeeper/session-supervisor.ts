import zookeeper, { type Client, type State } from 'node-zookeeper-client';
import { BehaviorSubject, Observable, Subject, distinctUntilChanged } from 'rxjs';
import { DEFAULT_BACKOFF, backoffDelay, type BackoffOptions } from '../backoff.ts';
import { errorMessage } from '../errors.ts';
import { componentLogger, type Logger } from '../logger.ts';
import { OutageLog } from '../outage-log.ts';
import { createGuardedClient, type GuardedClient, type GuardedClientFactory } from './guarded-client.ts';
import { ZooKeeperConnectTimeoutError } from './zookeeper-errors.ts';
import { zookeeperSessionEventsTotal, type ZooKeeperSessionEvent } from './zookeeper-metrics.ts';

/** Session timeout requested when the caller names none. */
export const DEFAULT_SESSION_TIMEOUT_MS = 10_000;
/** How long a connected client may wait for the server to answer its close request. */
export const CLOSE_GRACE_MS = 1_000;

/**
 * Where the supervised session stands. `disconnected`: the session may still live and the client
 * is reconnecting; `expired`: the session is gone and a new client is about to be built.
 */
export type ZooKeeperSessionState = 'connecting' | 'connected' | 'disconnected' | 'expired' | 'closed';

/** A live ZooKeeper session: its connected client, id and the timeout the server granted. */
export interface ZooKeeperSession {
  readonly client: Client;
  /** Session id as 16 hex digits. */
  readonly id: string;
  /** Negotiated session timeout. */
  readonly timeoutMs: number;
}

/** Options of `ZooKeeperSessionSupervisor`; only `connectString` is required. */
export interface SessionSupervisorOptions {
  readonly connectString: string;
  /** Requested session timeout; the server may clamp it to its min/max. */
  readonly sessionTimeoutMs?: number;
  /** Deadline for a new client to finish its handshake; the session timeout by default. */
  readonly connectTimeoutMs?: number;
  /** Delay between connection attempts; `DEFAULT_BACKOFF` by default. */
  readonly backoff?: BackoffOptions;
  readonly spinDelayMs?: number;
  /** Tags logs and metrics; the connect string by default. */
  readonly name?: string;
  readonly log?: Logger;
  readonly createClient?: GuardedClientFactory;
  /** `user:password` for ZooKeeper's digest authentication of every client (see `GuardedClientOptions.digest`); none by default. */
  readonly digest?: string;
}

/**
 * Owns one node-zookeeper-client at a time and replaces it whenever its session is lost, because
 * the library never recovers from expiry and, during a partition, only ever says `disconnected`.
 * Rules (after the Java client and Curator's ConnectionStateManager):
 * - a client that does not connect within the connect deadline is retired and retried with backoff;
 * - a connected client that hears nothing for 2/3 of the session timeout drops its socket, as the
 *   Java client's read timeout does (the library only sends pings and never notices silence);
 * - disconnected for longer than the session timeout counts as expired, like a server-side expiry:
 *   the client is retired and a new one built.
 */
export class ZooKeeperSessionSupervisor {
  /**
   * Emits each new session once its client is connected; consumers re-read and re-arm their
   * watches on every emission, since watches die with the session. Replays the current session
   * on subscribe. Never errors; completes after `close()`.
   */
  readonly session$: Observable<ZooKeeperSession>;
  /** Replays the current state on subscribe, then each change. Completes after `close()`. */
  readonly state$: Observable<ZooKeeperSessionState>;
  /**
   * Why each client the supervisor gave up on failed (no session within the connect deadline,
   * authentication), as logged; not replayed. Completes after `close()`.
   */
  readonly failures$: Observable<string>;
  /** The id of each session the server said it expired (its ephemeral nodes are gone), not of one only counted expired after a long disconnection (a server restarted from its snapshot may still hold it); not replayed. */
  readonly serverExpiries$: Observable<string>;

  private readonly sessions = new Subject<ZooKeeperSession>();
  private readonly failures = new Subject<string>();
  private readonly serverExpiries = new Subject<string>();
  private readonly state = new BehaviorSubject<ZooKeeperSessionState>('connecting');
  private readonly name: string;
  private readonly log: Logger;
  /** The failed clients of one outage; its end is the session line (`ZooKeeper session established` or `reconnected`). */
  private readonly outage: OutageLog;
  private readonly sessionTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private current: GuardedClient | undefined;
  private session: ZooKeeperSession | undefined;
  private attempt = 0;
  private digest: string | undefined;
  private started = false;
  private closing: Promise<void> | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: SessionSupervisorOptions) {
    this.name = options.name ?? options.connectString;
    this.log = options.log ?? componentLogger('zookeeper-session', { client: this.name });
    this.outage = new OutageLog(this.log, { failed: 'ZooKeeper client failed; retrying' });
    this.sessionTimeoutMs = options.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? this.sessionTimeoutMs;
    this.digest = options.digest;
    this.state$ = this.state.pipe(distinctUntilChanged());
    this.failures$ = this.failures.asObservable();
    this.serverExpiries$ = this.serverExpiries.asObservable();
    this.session$ = new Observable<ZooKeeperSession>((subscriber) => {
      if (this.session) subscriber.next(this.session);
      return this.sessions.subscribe(subscriber);
    });
  }

  /** Builds the first client; later ones are built by the supervisor itself. Idempotent. */
  start(): void {
    if (this.started || this.closing) return;
    this.started = true;
    this.connect();
  }

  /** The current state. */
  currentState(): ZooKeeperSessionState {
    return this.state.getValue();
  }

  /** The current session, also while it is disconnected; undefined while connecting or after expiry. */
  currentSession(): ZooKeeperSession | undefined {
    return this.session;
  }

  /**
   * Authenticates every later client with `digest` (`user:password`, or none) and, when it differs
   * from the one in use, replaces the current client and session at once: an identity cannot be
   * taken off a session, so only a new one runs with the new credentials alone.
   */
  replaceDigest(digest: string | undefined): void {
    if (digest === this.digest) return;
    this.digest = digest;
    if (!this.started || this.closing || !this.current) return;
    this.log.info('ZooKeeper credentials changed; starting a new session with them');
    if (this.session) return this.expire('credentials_changed', 'the credentials changed');
    this.retireCurrent();
    this.count('credentials_changed');
    this.attempt = 0;
    this.connect();
  }

  /** Closes the current session (ephemeral nodes go at once) and stops for good. Idempotent, never rejects. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.clearTimers();
      const client = this.current;
      this.current = undefined;
      this.session = undefined;
      await client?.retire(CLOSE_GRACE_MS).catch(() => undefined);
      this.state.next('closed');
      this.state.complete();
      this.sessions.complete();
      this.failures.complete();
      this.serverExpiries.complete();
    })();
    return this.closing;
  }

  private connect(): void {
    if (this.closing) return;
    this.state.next('connecting');
    let guarded: GuardedClient;
    try {
      guarded = (this.options.createClient ?? createGuardedClient)(
        this.options.connectString,
        { sessionTimeoutMs: this.sessionTimeoutMs, ...(this.options.spinDelayMs === undefined ? {} : { spinDelayMs: this.options.spinDelayMs }), ...(this.digest === undefined ? {} : { digest: this.digest }) },
        this.log,
      );
    } catch (error) {
      this.log.error({ err: errorMessage(error) }, 'could not create a ZooKeeper client; retrying');
      this.failures.next(`could not create a ZooKeeper client: ${errorMessage(error)}`);
      this.scheduleConnect();
      return;
    }
    this.current = guarded;
    guarded.client.on('state', (state: State) => this.onClientState(guarded, state));
    this.connectTimer = setTimeout(() => this.onConnectDeadline(guarded), this.connectTimeoutMs);
    guarded.connect();
  }

  private onClientState(guarded: GuardedClient, state: State): void {
    // Runs inside the library's socket handlers: a throw here would escape as an uncaught exception.
    try {
      if (guarded !== this.current || this.closing) return;
      if (state.code === zookeeper.State.SYNC_CONNECTED.code) this.onConnected(guarded);
      else if (state.code === zookeeper.State.DISCONNECTED.code) this.onDisconnected();
      else if (state.code === zookeeper.State.EXPIRED.code) this.expire('expired', 'the server expired the session', this.session?.id);
      else if (state.code === zookeeper.State.AUTH_FAILED.code) this.replace('auth_failed', 'authentication failed');
    } catch (error) {
      this.log.error({ err: errorMessage(error) }, 'ZooKeeper session supervisor failed to handle a state change');
    }
  }

  private onConnected(guarded: GuardedClient): void {
    clearTimeout(this.connectTimer);
    clearTimeout(this.expiryTimer);
    this.attempt = 0;
    this.outage.recovered();
    const client = guarded.client;
    const id = client.getSessionId().toString('hex');
    const timeoutMs = client.getSessionTimeout();
    this.startLivenessCheck(guarded, timeoutMs);
    if (this.session?.id === id) {
      this.count('reconnected');
      this.log.info({ session: id }, 'ZooKeeper session reconnected');
      this.state.next('connected');
      return;
    }
    this.session = { client, id, timeoutMs };
    this.count('new_session');
    this.log.info({ session: id, timeoutMs }, 'ZooKeeper session established');
    // The server clamps the timeout to its [minSessionTimeout, maxSessionTimeout]: an ephemeral node
    // then outlives a dead owner, and a partition is detected, after this timeout, not the one asked for.
    if (timeoutMs !== this.sessionTimeoutMs) {
      this.log.warn({ session: id, askedMs: this.sessionTimeoutMs, grantedMs: timeoutMs }, `the ZooKeeper server granted a session timeout of ${timeoutMs} ms, not the ${this.sessionTimeoutMs} ms asked for (its minSessionTimeout/maxSessionTimeout bound it)`);
    }
    // Consumers learn of the new session before `connected`, so they can tell a reconnect from a new session.
    this.sessions.next(this.session);
    this.state.next('connected');
  }

  private onDisconnected(): void {
    // Before the first handshake the library retries by itself and the connect deadline bounds it.
    if (!this.session) return;
    clearInterval(this.livenessTimer);
    this.count('disconnected');
    this.state.next('disconnected');
    clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(() => this.expire('expired', 'disconnected for longer than the session timeout'), this.session.timeoutMs);
  }

  private onConnectDeadline(guarded: GuardedClient): void {
    if (guarded !== this.current || this.closing) return;
    const error = new ZooKeeperConnectTimeoutError(this.options.connectString, this.connectTimeoutMs);
    this.replace('connect_timeout', error.message);
  }

  private startLivenessCheck(guarded: GuardedClient, timeoutMs: number): void {
    clearInterval(this.livenessTimer);
    const readTimeoutMs = Math.floor((timeoutMs * 2) / 3);
    this.livenessTimer = setInterval(() => {
      if (guarded !== this.current || this.state.getValue() !== 'connected') return;
      if (Date.now() - guarded.lastReceivedAt() <= readTimeoutMs) return;
      this.count('read_timeout');
      this.log.warn({ readTimeoutMs }, 'nothing heard from ZooKeeper within the read timeout; dropping the connection');
      guarded.dropConnection();
    }, Math.max(20, Math.floor(timeoutMs / 6)));
  }

  /** The session is gone (`serverExpired`: the server said so of this one): announce it, then build a new client. */
  private expire(event: ZooKeeperSessionEvent, reason: string, serverExpired?: string): void {
    this.log.warn({ session: this.session?.id, reason }, 'ZooKeeper session expired');
    this.session = undefined;
    this.retireCurrent();
    this.count(event);
    this.state.next('expired');
    if (serverExpired !== undefined) this.serverExpiries.next(serverExpired);
    this.scheduleConnect();
  }

  /** The current client failed before or without a session: retire it and retry with backoff. */
  private replace(event: ZooKeeperSessionEvent, reason: string): void {
    this.outage.failed({ reason, attempt: this.attempt }, { problem: event });
    this.failures.next(reason);
    if (this.session) {
      this.expire(event, reason);
      return;
    }
    this.retireCurrent();
    this.count(event);
    this.scheduleConnect();
  }

  private retireCurrent(): void {
    clearTimeout(this.connectTimer);
    clearTimeout(this.expiryTimer);
    clearInterval(this.livenessTimer);
    const guarded = this.current;
    this.current = undefined;
    void guarded?.retire(CLOSE_GRACE_MS).catch(() => undefined);
  }

  private scheduleConnect(): void {
    clearTimeout(this.retryTimer);
    const delayMs = backoffDelay(this.attempt, this.options.backoff ?? DEFAULT_BACKOFF);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }

  private clearTimers(): void {
    clearTimeout(this.connectTimer);
    clearTimeout(this.expiryTimer);
    clearTimeout(this.retryTimer);
    clearInterval(this.livenessTimer);
  }

  private count(event: ZooKeeperSessionEvent): void {
    zookeeperSessionEventsTotal.inc({ client: this.name, event });
  }
}
