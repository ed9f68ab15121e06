import { Observable } from 'rxjs';
import { ConfigFileError, errorMessage } from '../../src/errors.ts';
import { componentLogger, type Logger } from '../../src/logger.ts';
import { FilesFolderWatch } from '../../src/folder-watch-files.ts';
import { SnapshotWrites } from '../../src/atomic-file.ts';
import { GatewayConfigError, parseConfig, watchConfig, type ConfigResult, type ConfigStoreSettings } from '../config/index.ts';
import { ignoredKeyReason, isNamedKind, isStoreKind, objectKey, STORE_KINDS, type StoreKind } from './store-layout.ts';
import { listingDigest } from './store-digest.ts';
import { LastGoodObjects } from './store-last-good.ts';
import { mergeStoreDocument } from './store-merge.ts';
import { configPropagationSeconds, configStoreIgnoredKeys, configStoreRefusedObjects, configStoreRevision } from './store-metrics.ts';
import { fileDocumentOf, validateStoreObjects, type ConfigDocument, type StoreObjects, type StoreRefusal, type ValidationCache } from './store-objects.ts';
import { defaultSnapshotPath, readStoreSnapshot, writeStoreSnapshot } from './store-snapshot-file.ts';
import { filesFingerprint, filesNamedBy, filesOfRefusal } from '../config/named-files.ts';
import { filesOfObject, MERGED_DOCUMENT, NO_FILE_WAIT, type FileWait } from './store-named-files.ts';
import { createStoreSource, type StoreListing, type StoreSource } from './store-source.ts';
import { configStoreState, type IgnoredStoreKey, type StoreStatus } from './store-status.ts';

/** Seams for tests: the file's results, the store source, the snapshot's reading, the log, and the quiet time of the named files' watch. */
export interface StoreConfigOptions {
  readonly file$?: Observable<ConfigResult>;
  readonly createSource?: (settings: ConfigStoreSettings) => StoreSource;
  readonly readSnapshot?: typeof readStoreSnapshot;
  readonly log?: Logger;
  /** Quiet time after a change of a file a refused store object names before composing again (`CONFIG_DEBOUNCE_MS` by default). */
  readonly debounceMs?: number;
}

/** How many keys newly ignored a listing logs one by one; the rest are logged as a count. */
const MAX_IGNORED_WARNINGS = 10;

/** How many times a merged document refused for a store object's sake is retried without that object. */
const MAX_ATTRIBUTION_ROUNDS = 8;

/**
 * `watchConfig` with the config store merged in: without `configStore` the file's results pass
 * through unchanged; with it, each file change and each store listing yields the merged document
 * (see `mergeStoreDocument`) as JSON text, parsed by the same `parseConfig`, so that the caller
 * applies it (and sends it to workers) exactly as a file reload. At start it reads the
 * last-known-good snapshot, whose values are the last good ones of the objects the store refuses
 * at its first answer (`seedLastGood`), and waits up to `configStore.timeout` for the store, then
 * starts from that snapshot (or the file alone when there is none) and catches up when the store
 * answers. Each listing applied from the
 * store is written to the snapshot file as applied (a refused new value's last good value in its place). The store's location is read once, at start.
 * While the last composition refused store objects (or the merged document) for files they name
 * (`mergeWithStore`'s `waitingFor`: a certificate pair, a CA bundle, a JWT key missing or bad), the
 * folders of those files are watched (`FilesFolderWatch`), and a change there composes again:
 * the result is emitted, like a store change, once an object (or the document) refused so is taken,
 * logged once at info; one still refused is not reported again. Objects refused for their own
 * content wait for a change of the store or the file, as before. Unsubscribing closes that watch too.
 */
export function watchConfigWithStore(path: string, options: StoreConfigOptions = {}): Observable<ConfigResult> {
  const log = options.log ?? componentLogger('config-store');
  return new Observable<ConfigResult>((subscriber) => {
    let file: { result: Extract<ConfigResult, { ok: true }>; document: ConfigDocument } | undefined;
    let settings: ConfigStoreSettings | undefined;
    let source: StoreSource | undefined;
    let listing: { value: StoreListing; origin: 'store' | 'snapshot' } | undefined;
    let waiting: NodeJS.Timeout | undefined;
    // A composition asked for by store listings and not run yet (see the listings' subscription).
    let composing: NodeJS.Immediate | undefined;
    let emitted = false;
    // The merged configuration last emitted, whether it was composed from a listing read from the store,
    // and the digest of the files it read on load (`filesNamedBy` but the certificate pairs, which reload on their own).
    let inForce: { text: string; shared: boolean; files: string } | undefined;
    // The snapshot read at start, until the first composition that applies has used it (`seedLastGood`).
    let seed: StoreListing | undefined;
    // The start timer's own state (see `startWithoutStore`): what it starts from if the store does not
    // answer in time, until it runs or the store answers. A composition before it (from the file alone,
    // when a reload adds configStore) clears `seed` but must leave the timer its snapshot.
    let fallback: { readonly settings: ConfigStoreSettings; readonly snapshotPath: string; readonly snapshot: ReturnType<typeof readStoreSnapshot> } | undefined;
    let closed = false;
    const writes = new SnapshotWrites(log, 'config store snapshot');
    // Per-object results for the file's current top-level settings; cleared when the file changes.
    const validations: ValidationCache = new Map();
    const lastGood = new LastGoodObjects();
    // What the last composition's refusals for files wait for; their folders are watched (see `mergeWithStore`).
    let waitingFor: FileWait = NO_FILE_WAIT;
    // Cached validations need no dropping on a file change: they are the schema's, which reads no file (the merged parse does, every time).
    const namedFiles = new FilesFolderWatch(
      () => {
        log.debug({ files: waitingFor.files }, 'a file a refused config store object names has changed; composing again');
        compose(false, true);
        return Promise.resolve();
      },
      log,
      {},
      { folder: 'folder of a file a config store object names', changeFailed: 'composing the configuration again for a file it names failed' },
      { debounceMs: options.debounceMs },
    );

    const emit = (result: ConfigResult) => {
      if (closed) return;
      emitted = true;
      subscriber.next(result);
    };

    /** Merges the file and the store and emits the result; `namedFileChanged`: only if a refusal for a file has ended since the last one. */
    const compose = (fresh: boolean, namedFileChanged = false) => {
      if (closed || !file || !settings) return;
      const current = listing?.value ?? { revision: '0', entries: new Map<string, string>(), receivedAt: Date.now() };
      const composedNow = { path, root: settings.root, listing: current };
      configStoreState.setComposed(composedNow);
      let merged = mergeWithStore(path, settings.root, file.document, current, validations);
      if (merged.ok && seed) seedLastGood(seed, current, merged.refused);
      // What is applied: the listing, with the last good value of each changed object now refused.
      let applied = current;
      let appliedRefused = merged.refused;
      const restored = merged.ok ? lastGood.restore(current, merged.refused) : undefined;
      if (restored) {
        const again = mergeWithStore(path, settings.root, file.document, restored.listing, validations);
        if (again.ok) {
          // An earlier value refused in turn (a certificate whose old files are gone) is left out: its new value's refusal is reported.
          const refusedAgain = new Set(again.refused.map((entry) => entry.key));
          const kept = restored.kept.filter((entry) => !refusedAgain.has(entry.key));
          const keptKeys = new Set(restored.kept.map((entry) => entry.key));
          const files = new Set([...merged.waitingFor.files, ...again.waitingFor.files]);
          const keys = new Set([...merged.waitingFor.keys, ...again.waitingFor.keys]);
          // The refused new values stay reported (and their files watched), with the earlier values in force.
          const refused = [...kept, ...merged.refused.filter((entry) => keptKeys.has(entry.key) && refusedAgain.has(entry.key)), ...again.refused.filter((entry) => !keptKeys.has(entry.key))];
          merged = { ...again, refused, waitingFor: keys.size === 0 ? NO_FILE_WAIT : { keys, files: [...files] } };
          applied = restored.listing;
          appliedRefused = again.refused;
        }
      }
      const before = waitingFor;
      waitingFor = merged.waitingFor;
      namedFiles.watchFiles(waitingFor.files);
      if (namedFileChanged) {
        const refusedNow = new Set(merged.refused.map((entry) => entry.key));
        const taken = [...before.keys].filter((key) => (key === MERGED_DOCUMENT ? merged.ok : !refusedNow.has(key) && !waitingFor.keys.has(key)));
        // Nothing refused for a file is taken: the refusals were reported already, and their files are still watched.
        if (taken.length === 0) return;
        for (const key of taken) {
          if (key === MERGED_DOCUMENT) log.info({ revision: current.revision }, 'the configuration merged with the config store is taken: a file it names has changed since its refusal');
          else log.info({ key, revision: current.revision }, 'refused config store object taken: a file it names has changed since its refusal');
        }
      }
      const status = { url: settings.url, revision: listing ? current.revision : null, source: listing?.origin ?? ('none' as const), applied: new Date().toISOString(), refused: merged.refused, ignored: ignoredOf(current) };
      if (!merged.ok && !emitted) {
        // At start there is no running configuration to keep: serve the file (valid on its own) rather than exit.
        log.error({ revision: current.revision, reason: merged.error.message }, 'the configuration merged with the config store was refused; starting from the file alone');
        inForce = undefined;
        emit(file.result);
        return;
      }
      if (!merged.ok) {
        log.error({ revision: current.revision, reason: merged.error.message }, 'the configuration merged with the config store was refused; the running configuration stays');
        emit({ ok: false, error: merged.error });
        return;
      }
      const previous = configStoreState.current();
      const known = new Set((previous?.refused ?? []).map((entry) => `${entry.key}\n${entry.reason}`));
      for (const entry of merged.refused) if (!known.has(`${entry.key}\n${entry.reason}`)) log.warn({ key: entry.key, reason: entry.reason }, 'config store object refused; the rest applies');
      noteIgnored(status.ignored, previous);
      configStoreState.update(status, composedNow);
      for (const kind of STORE_KINDS) configStoreRefusedObjects.set({ kind }, merged.refused.filter((entry) => entry.kind === kind).length);
      const shared = listing?.origin === 'store';
      if (shared) configStoreState.markShared(merged.config);
      // A listing that changes nothing in force (a refused write, whose refusal is logged above) is not applied again:
      // the caller would log it as applied. A file change is, even unchanged: the files it names may have changed.
      // So is a listing whose merged text reads files whose contents changed since (a CA bundle or JWT key only a
      // store object names, which nothing watches while it is taken: a store write, even of the same value, applies it).
      const files = filesFingerprint(filesNamedBy(merged.config, path, { certificatePairs: false }));
      if (fresh && inForce?.text === merged.text && inForce.shared === shared && inForce.files === files) log.debug({ revision: current.revision }, 'config store listing changes nothing in force');
      else emit({ ok: true, config: merged.config, text: merged.text });
      inForce = { text: merged.text, shared, files };
      lastGood.applied(applied, appliedRefused);
      seed = undefined;
      if (!listing) return;
      const appliedAt = Date.now();
      if (fresh && listing.origin === 'store') configPropagationSeconds.observe(Math.max(0, appliedAt - current.receivedAt) / 1_000);
      if (/^\d+$/.test(current.revision)) configStoreRevision.set(Number(current.revision));
      configStoreState.applied({ revision: current.revision, appliedAt, digest: listingDigest(current.entries) });
      if (fresh && listing.origin === 'store') {
        const target = settings.snapshotPath ?? defaultSnapshotPath(path);
        const url = settings.url;
        // What is in force: a refused new value's last good one, so that a restart from the snapshot keeps serving it.
        writes.enqueue(target, () => writeStoreSnapshot(target, url, applied));
      }
    };

    /** The keys `current` lists as ignored, with why. */
    const ignoredOf = (current: StoreListing): IgnoredStoreKey[] => (current.ignored ?? []).map((key) => ({ key, reason: ignoredKeyReason(settings!.root, key) ?? 'neither an object nor a peer' }));

    /**
     * Warns about each ignored key `previous` did not list (once per key while it stays: a listing comes
     * with every change of the store), at most `MAX_IGNORED_WARNINGS` a listing and one line for the
     * rest (a script writing thousands of keys under a misspelt root), and counts them.
     */
    const noteIgnored = (ignored: readonly IgnoredStoreKey[], previous: StoreStatus | undefined) => {
      const ignoredBefore = new Set((previous?.ignored ?? []).map((entry) => entry.key));
      const added = ignored.filter((entry) => !ignoredBefore.has(entry.key));
      for (const entry of added.slice(0, MAX_IGNORED_WARNINGS)) log.warn({ key: entry.key, reason: entry.reason }, 'config store key ignored: it is neither an object nor a peer');
      if (added.length > MAX_IGNORED_WARNINGS) log.warn({ more: added.length - MAX_IGNORED_WARNINGS, total: ignored.length }, 'more config store keys ignored, not logged one by one: GET /api/store lists them all');
      configStoreIgnoredKeys.set(ignored.length);
    };

    /**
     * Seeds the last good values from the snapshot read at start (`seed`), at the first composition
     * that applies (before it this gateway has applied nothing), so that an object the store refuses
     * now keeps the value this gateway last had in force, as on a gateway that never restarted. Only
     * when an object refused now has another value in the snapshot (`LastGoodObjects.restore` takes
     * no other): otherwise, the usual start, the snapshot is not merged at all, and the first
     * configuration, which the listeners wait for, costs no more than before. Re-validated as when the
     * gateway starts from it, against the file then in force (the objects refused are left out, and
     * all of them when the merged document is refused).
     */
    const seedLastGood = (snapshot: StoreListing, current: StoreListing, refused: readonly StoreRefusal[]) => {
      if (!file || !settings) return;
      if (!refused.some((entry) => snapshot.entries.has(entry.key) && snapshot.entries.get(entry.key) !== current.entries.get(entry.key))) return;
      const merged = mergeWithStore(path, settings.root, file.document, snapshot, validations);
      if (merged.ok) lastGood.applied(snapshot, merged.refused);
    };

    /**
     * The start timer: the store has not answered within `configStore.timeout`, so start from the
     * snapshot (`fallback`), or the file alone. Defined here, not in `startStore`, and reading the
     * snapshot from `fallback`, which it clears: a closure made in `startStore` would share that
     * scope with the store's subscriptions, which live as long as the gateway, and keep the snapshot
     * read at start reachable with them.
     */
    const startWithoutStore = () => {
      waiting = undefined;
      const start = fallback;
      fallback = undefined;
      if (closed || listing || !start) return;
      const { settings: next, snapshotPath, snapshot } = start;
      if (snapshot.listing) {
        log.warn({ store: next.url, snapshot: snapshotPath, revision: snapshot.listing.revision, waitedMs: next.timeoutMs }, 'config store unreachable at start: starting from the last-known-good snapshot; catching up when it answers');
        listing = { value: snapshot.listing, origin: 'snapshot' };
      } else log.warn({ store: next.url, waitedMs: next.timeoutMs, reason: snapshot.reason }, 'config store unreachable at start and no snapshot: starting from the file alone; catching up when it answers');
      compose(true);
    };

    const startStore = (next: ConfigStoreSettings) => {
      settings = next;
      // The admin store API writes where this reads, whatever a later reload says.
      configStoreState.setLocation(next);
      source = (options.createSource ?? ((value) => createStoreSource(value, { requestTimeoutMs: value.timeoutMs })))(next);
      const snapshotPath = next.snapshotPath ?? defaultSnapshotPath(path);
      // Read once: what the gateway starts from when the store does not answer in time, and the last good values of the objects the store now refuses.
      const snapshot = (options.readSnapshot ?? readStoreSnapshot)(snapshotPath, next.url);
      seed = snapshot.listing;
      fallback = { settings: next, snapshotPath, snapshot };
      waiting = setTimeout(startWithoutStore, next.timeoutMs);
      source.reason$.subscribe((reason) => {
        if (!closed) configStoreState.setUnreadReason(reason);
      });
      source.listings$.subscribe((value) => {
        clearTimeout(waiting);
        waiting = undefined;
        fallback = undefined;
        if (listing?.origin === 'snapshot') log.info({ revision: value.revision }, 'config store answers: catching up from the snapshot');
        const previous = configStoreState.current();
        // A stray key added or deleted changes no object: what is in force stays, unmerged, and no revision is applied for the peers.
        const ignoredOnly = value.ignoredOnly === true && listing?.origin === 'store' && composing === undefined && previous !== undefined;
        listing = { value, origin: 'store' };
        if (ignoredOnly) {
          const { reason: _reason, ...status } = previous;
          const ignored = ignoredOf(value);
          noteIgnored(ignored, previous);
          configStoreState.update({ ...status, ignored });
          return;
        }
        // Listings are whole snapshots: a burst of them (a script writing many objects, a restore)
        // is composed once, with the newest, after the events that arrived meanwhile are read. One
        // composition per event would block the event loop for the whole burst.
        composing ??= setImmediate(() => {
          composing = undefined;
          compose(true);
        });
      });
      source.start();
    };

    const fileSubscription = (options.file$ ?? watchConfig(path)).subscribe((result) => {
      if (!result.ok) {
        // Before anything applied the caller exits on it; later it keeps the running configuration.
        emit(result);
        return;
      }
      if (!result.config.configStore && !settings) {
        emit(result);
        return;
      }
      file = { result, document: fileDocumentOf(result.text) };
      // The admin API judges a write beside the same file as the reader judges the objects it lists.
      configStoreState.setFileDocument(file.document);
      validations.clear();
      if (!settings && result.config.configStore) startStore(result.config.configStore);
      if (waiting && !emitted) return;
      compose(false);
    });

    return () => {
      closed = true;
      clearTimeout(waiting);
      fallback = undefined;
      clearImmediate(composing);
      namedFiles.close();
      fileSubscription.unsubscribe();
      void source?.close();
    };
  });
}

/**
 * The merged configuration, or why it is refused as a whole (no single store object to blame); with
 * what its refusals for files they name wait for (`FileWait`).
 */
type Merged = ({ ok: true; config: Extract<ConfigResult, { ok: true }>['config']; text: string } | { ok: false; error: ConfigFileError }) & { refused: StoreRefusal[]; waitingFor: FileWait };

/**
 * Validates the listing object by object, merges, and parses the result with `parseConfig`. When
 * the merged document is refused at a place that belongs to a store object (a cross-object rule
 * no single object breaks), that object is refused too and the merge retried without it. A store
 * object (or the merged document) refused for a file it names (missing, unreadable, a pair that
 * does not check), where the document would parse but for its files, is listed in `waitingFor`
 * with the files it names; one refused for its own content is not.
 */
export function mergeWithStore(path: string, root: string, document: ConfigDocument, listing: StoreListing, cache?: ValidationCache): Merged {
  const { objects, refused } = validateStoreObjects(root, listing.entries, document, cache);
  const kept = Object.fromEntries(STORE_KINDS.map((kind) => [kind, new Map(objects[kind])])) as { [K in StoreKind]: Map<string, unknown> };
  const waitingKeys = new Set<string>();
  const waitingFiles = new Set<string>();
  const waitingFor = (): FileWait => (waitingKeys.size === 0 ? NO_FILE_WAIT : { keys: waitingKeys, files: [...waitingFiles] });
  for (let round = 0; ; round += 1) {
    const merged = mergeStoreDocument(root, document, kept, new Set(refused.map((entry) => entry.key)));
    const text = JSON.stringify(merged.document);
    try {
      return { ok: true, config: parseConfig(path, text), text, refused: [...refused, ...merged.refused], waitingFor: waitingFor() };
    } catch (error) {
      const blamed = error instanceof GatewayConfigError && round < MAX_ATTRIBUTION_ROUNDS ? blame(root, merged.document, kept, error) : [];
      // Files are read only once the document checks: a refusal that parses without them is one for its files.
      const files = error instanceof GatewayConfigError ? filesOfRefusal(path, text) : undefined;
      if (blamed.length === 0) {
        if (files) {
          waitingKeys.add(MERGED_DOCUMENT);
          files.forEach((file) => waitingFiles.add(file));
        }
        const reason = `config store revision ${listing.revision}: ${errorMessage(error)}`;
        return { ok: false, error: new ConfigFileError(path, reason, { cause: error }), refused: [...refused, ...merged.refused], waitingFor: waitingFor() };
      }
      if (files) {
        for (const { key, kind } of blamed) {
          waitingKeys.add(key);
          filesOfObject(path, document, merged.document, kind, key.slice(key.lastIndexOf('/') + 1), files).forEach((file) => waitingFiles.add(file));
        }
      }
      refused.push(...blamed);
    }
  }
}

/** The store objects the merged document's issues point into; each is removed from `kept`. */
function blame(root: string, document: ConfigDocument, kept: { [K in keyof StoreObjects]: Map<string, unknown> }, error: GatewayConfigError): StoreRefusal[] {
  const blamed: StoreRefusal[] = [];
  const routes = (document.routes ?? []) as { name?: unknown }[];
  for (const issue of error.issues) {
    const kind = issue.keyPath.split('.', 1)[0]!;
    if (!isStoreKind(kind)) continue;
    const place = issue.keyPath.slice(kind.length + 1);
    if (place === '') continue;
    let name: string | undefined;
    if (kind === 'routes') name = String(routes[Number(place.split('.', 1)[0])]?.name ?? '');
    else if (isNamedKind(kind)) name = storeNameAt(kept[kind], place);
    if (name === undefined || !kept[kind].has(name)) continue;
    kept[kind].delete(name);
    blamed.push({ key: objectKey(root, kind, name), kind, reason: `${issue.keyPath}: ${issue.reason}` });
  }
  return blamed;
}

/**
 * The store object of `names` that a dotted key path below its kind (`shop.example.com.certFile`)
 * starts with: names may hold dots, so the path cannot be split; the longest name that fits wins.
 */
function storeNameAt(names: ReadonlyMap<string, unknown>, place: string): string | undefined {
  let found: string | undefined;
  for (const name of names.keys()) {
    if ((place === name || place.startsWith(`${name}.`)) && name.length > (found?.length ?? -1)) found = name;
  }
  return found;
}
