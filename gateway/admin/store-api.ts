import type { IncomingMessage } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { errorMessage, yamlErrorReason } from '../../src/errors.ts';
import { componentLogger } from '../../src/logger.ts';
import { REDACTED, redactionMarkers, redactSecrets } from '../config/redaction.ts';
import { isStoreKind, StoreValueError, type StoreKind, type StoreLocation } from '../config-store/store-layout.ts';
import { openStoreWriter } from '../config-store/store-writer-open.ts';
import type { ConfigDocument, StoreRefusal, ValidationCache } from '../config-store/store-objects.ts';
import { configStoreState, type ComposedListing, type StoreStatus } from '../config-store/store-status.ts';
import { sameValue } from '../config-store/store-writer-diff.ts';
import { checkStoreObjectBeside, describeObjectIssues, type ObjectCheck, type ObjectIssue } from '../config-store/store-writer-validate.ts';
import { changesWarnings, deleteWarnings, writeWarnings, type StoreChange } from '../config-store/store-write-warnings.ts';
import { markRefused } from '../config-store/store-listing-refusals.ts';
import { StoreAuthenticationError, StoreConflictError, StoreForbiddenError, StoreNotFoundError, StoreUnavailableError, type StoreWriter, type WriteConditions } from '../config-store/store-writer.ts';
import type { ConfigWrite } from './event-types.ts';
import { SliceClock } from './sliced-work.ts';

/** The largest body a write accepts; one object is a few kilobytes. */
export const STORE_BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * The largest body a dry run of many objects (`PUT /api/store?dryRun=true`) accepts: a file of
 * tens of thousands of routes (3,000 take 229 KiB). Its one merge of the store runs on the primary's
 * event loop, in the seconds for millions of bytes, so the bound keeps one call from stalling registry
 * sessions and checks for minutes; `switchboard config apply` judges a larger file object by object.
 */
export const STORE_BATCH_LIMIT_BYTES = 4 * 1024 * 1024;

/** What the admin server sends back: a status, a JSON body (none for a 204 or a 304) and extra headers. */
export interface StoreAnswer {
  readonly status: number;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

/** A path of the store API: the whole store, or one object. */
export type StorePlace = { readonly kind: 'store' } | { readonly kind: StoreKind; readonly name: string };

/**
 * The place `path` names (`/api/store`, `/api/routes/{id}`, `/api/services/{name}`…), or undefined.
 * A name must stay one key segment once decoded: `%2F`, `.` and `..` would address another key (or
 * an invalid znode path) than the object's.
 */
export function storePlaceOf(path: string): StorePlace | undefined {
  if (path === '/api/store') return { kind: 'store' };
  const match = /^\/api\/([a-z]+)\/([^/]+)$/.exec(path);
  if (!match || !isStoreKind(match[1]!)) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(match[2]!);
  } catch {
    return undefined;
  }
  return name.includes('/') || name === '.' || name === '..' ? undefined : { kind: match[1], name };
}

/** What the store API needs from the gateway. */
export interface StoreApiOptions {
  /** The admin token; without one, every write is refused (403). */
  readonly token: string | undefined;
  /**
   * The store the gateway reads: writes go there, so that they are applied. Not the configuration
   * in force: a reload that changes or removes `configStore` leaves the reader on its store until
   * a restart. Undefined while the gateway reads no store.
   */
  readonly location: () => (StoreLocation & { readonly timeoutMs?: number }) | undefined;
  /** Reports a write to `/api/events`. */
  readonly record: (change: ConfigWrite) => void;
  /**
   * The configuration file's document the store's reader judges objects beside (its `defaults`…);
   * the one the config store reader last read by default. Undefined: only the object's own schema.
   */
  readonly fileDocument?: () => ConfigDocument | undefined;
  /** What the store's reader last made of it (objects refused, keys ignored); `configStoreState`'s by default. */
  readonly readerStatus?: () => StoreStatus | undefined;
  /** The listing the store's reader last composed, which a write's warnings are judged beside; `configStoreState`'s by default. */
  readonly composed?: () => ComposedListing | undefined;
  /** The listing the reader's refusals (`readerStatus`) were judged on, which `GET /api/store` marks them by; `configStoreState`'s by default. */
  readonly judged?: () => ComposedListing | undefined;
  /** The writer of a store; `openStoreWriter` by default (tests pass fakes). */
  readonly openWriter?: (location: StoreLocation & { readonly timeoutMs?: number }) => Promise<StoreWriter>;
}

/**
 * The admin API's store endpoints: `GET /api/store`, and `GET/PUT/DELETE` of one object. A write
 * is validated with the file's schema for that place, then written with compare-and-swap
 * (`If-Match: "<revision>"`, `If-None-Match: *`). The writer is opened on the first request and
 * lives in the process that runs the admin listener (the primary with `workers`), so several
 * workers never write.
 */
export class StoreApi {
  private writer: { url: string; writer: Promise<StoreWriter> } | undefined;
  private readonly log = componentLogger('config-store-writer');
  /** Per-object validations of the warnings' merges, for the file document they were made beside. */
  private readonly validations: { file: ConfigDocument | undefined; cache: ValidationCache } = { file: undefined, cache: new Map() };

  constructor(private readonly options: StoreApiOptions) {}

  /** Answers one request to `place`; never rejects for a store failure (503 instead). */
  async answer(request: IncomingMessage, place: StorePlace): Promise<StoreAnswer> {
    // HEAD is GET without the body (RFC 9110 §9.3.2); Node leaves the body out of a HEAD answer.
    const method = request.method === 'HEAD' ? 'GET' : (request.method ?? 'GET');
    const allowed = place.kind === 'store' ? ['GET', 'HEAD', 'PUT'] : ['GET', 'HEAD', 'PUT', 'DELETE'];
    if (!allowed.includes(method)) return { ...adminError(405, 'method-not-allowed', 'SB_ADMIN_METHOD', `${request.url} answers ${allowed.join(', ')}`), headers: { allow: allowed.join(', ') } };
    if (method !== 'GET' && this.options.token === undefined) {
      return adminError(403, 'forbidden', 'SB_ADMIN_WRITE_NEEDS_TOKEN', 'writes need an admin token: set admin: { listen, token } in the gateway configuration');
    }
    const query = writeQuery(request, method);
    if ('status' in query) return query;
    const location = this.options.location();
    if (!location) return adminError(409, 'conflict', 'SB_CONFIG_STORE_NONE', 'no configStore is configured: set configStore: etcd://…/switchboard or zk://…/switchboard');
    try {
      if (place.kind === 'store' && method === 'PUT' && !query.dryRun) {
        return adminError(400, 'bad-request', 'SB_ADMIN_QUERY', 'PUT /api/store takes ?dryRun=true: it judges many objects together and writes nothing; write each object with PUT /api/<kind>/<name>');
      }
      const writer = await this.writerFor(location);
      if (place.kind === 'store' && method === 'PUT') return await this.judgeMany(request, query, writer);
      if (place.kind === 'store') {
        const listing = await writer.list();
        const reader = this.readerStatus();
        // The listing the reader's refusals were judged on: a newer one refused as a whole left them as they were.
        const judged = (this.options.judged ?? (() => configStoreState.refusalsJudgedOn()))();
        // Marked before redaction: the reader judged the value with its secrets.
        const objects = markRefused(listing.objects, reader?.refused ?? [], judged).map((object) => ({ ...object, value: redactSecrets(object.value) }));
        const unreadable = markRefused(listing.unreadable, reader?.refused ?? [], judged, false);
        return { status: 200, body: { store: redactSecrets(location.url), ...listing, objects, unreadable, ignored: reader?.ignored ?? [] } };
      }
      if (method === 'GET') return await this.read(writer, place.kind, place.name);
      if (method === 'DELETE') return await this.remove(request, query, writer, place.kind, place.name);
      return await this.write(request, query, writer, place.kind, place.name);
    } catch (failure) {
      // An ACL that leaves the gateway's user out is for an operator to fix: said in the log too, not only to the client.
      if (failure instanceof StoreForbiddenError) this.log.error({ code: failure.code, node: failure.node, method, path: request.url }, failure.message);
      if (failure instanceof StoreAuthenticationError) this.log.error({ code: failure.code, user: failure.user, method, path: request.url }, failure.message);
      return failureAnswer(failure);
    }
  }

  /** Closes the store client (bounded by the writer). */
  async close(): Promise<void> {
    const current = this.writer;
    this.writer = undefined;
    await (await current?.writer.catch(() => undefined))?.close();
  }

  private async read(writer: StoreWriter, kind: StoreKind, name: string): Promise<StoreAnswer> {
    const stored = await writer.get(kind, name);
    if (!stored) return adminError(404, 'not-found', 'SB_CONFIG_STORE_NOT_FOUND', `${kind}/${name} is not in the store`);
    return { status: 200, body: { kind, name, revision: stored.revision, value: redactSecrets(stored.value) }, headers: { etag: `"${stored.revision}"` } };
  }

  private async write(request: IncomingMessage, query: WriteQuery, writer: StoreWriter, kind: StoreKind, name: string): Promise<StoreAnswer> {
    const body = await readBody(request);
    if ('status' in body) return body;
    const refused = readBack(kind, name, body.value);
    if (refused) return refused;
    const check = this.check(kind, name, body.value);
    if (!check.ok) return { status: 400, body: { ...bodyOf(400, 'invalid', 'SB_CONFIG_OBJECT_INVALID', describeObjectIssues(check.issues)), issues: check.issues } };
    if (query.dryRun) {
      // Judged only: `switchboard config apply` asks about every object before it writes the first
      // one. `unchanged` compares with the stored value here, where its secrets are not redacted.
      // A stored value that is not JSON (written around the API) differs from any: the write replaces it.
      const stored = await writer.get(kind, name).catch((failure: unknown) => {
        if (failure instanceof StoreValueError) return undefined;
        throw failure;
      });
      const unchanged = stored !== undefined && sameValue(stored.value, check.value);
      return { status: 200, body: { kind, name, dryRun: true, unchanged, value: redactSecrets(check.value), ...this.warningsIfAsked(query, () => this.warnings(kind, name, check.value)) } };
    }
    const conditions = await this.conditions(request, writer, kind, name);
    if ('status' in conditions) return conditions;
    // Judged before the write: the reader may list the written value before the put answers.
    const warnings = this.warningsIfAsked(query, () => this.warnings(kind, name, check.value));
    const { revision, created } = await writer.put(kind, name, check.value, conditions);
    this.report(request, 'put', kind, name, revision);
    return { status: created ? 201 : 200, body: { kind, name, revision, created, value: redactSecrets(check.value), ...warnings }, headers: { etag: `"${revision}"` } };
  }

  /**
   * `PUT /api/store?dryRun=true` with `{ objects: [{ kind, name, value }], deleted?: [{ kind, name }] }`:
   * each object judged as a dry run of its own write judges it (400 with every object's issues), then
   * whether the store holds each already (one listing) and the warnings of all the changes made
   * together, judged in one merge (`changesWarnings`): `switchboard config apply` asks so about a whole
   * file, where one dry run per object merged the whole store once per object.
   */
  private async judgeMany(request: IncomingMessage, query: WriteQuery, writer: StoreWriter): Promise<StoreAnswer> {
    const body = await readBody(request, STORE_BATCH_LIMIT_BYTES);
    if ('status' in body) return body;
    const batch = batchOf(body.value);
    if ('status' in batch) return batch;
    const issues: ObjectIssue[] = [];
    const checked: { kind: StoreKind; name: string; value: unknown }[] = [];
    // In slices (`ADMIN_SLICE_MS`): the checks of a file of thousands of objects took hundreds of
    // milliseconds in one turn, on the loop that runs the admin listener, the store's reader, the
    // registries' sessions and active checks (and the proxy, without workers).
    const clock = new SliceClock();
    for (const { kind, name, value } of batch.objects) {
      await clock.pause();
      const refused = readBack(kind, name, value);
      const check = this.check(kind, name, value);
      if (refused) issues.push(...(refused.body as { issues: ObjectIssue[] }).issues);
      else if (!check.ok) issues.push(...check.issues);
      else checked.push({ kind, name, value: check.value });
    }
    if (issues.length > 0) return { status: 400, body: { ...bodyOf(400, 'invalid', 'SB_CONFIG_OBJECT_INVALID', describeObjectIssues(issues)), issues } };
    // One listing for all: a stored value that is not JSON is unreadable, so differs from any.
    const listing = await writer.list();
    const stored = new Map(listing.objects.map((object) => [`${object.kind}/${object.name}`, object.value]));
    const objects = checked.map(({ kind, name, value }) => ({ kind, name, unchanged: stored.has(`${kind}/${name}`) && sameValue(stored.get(`${kind}/${name}`), value) }));
    const changes: StoreChange[] = [...checked, ...batch.deleted.map(({ kind, name }) => ({ kind, name, deleted: true as const }))];
    const warnings = this.warningsIfAsked(query, () => this.judgeBeside((composed, file, refused, cache) => changesWarnings(composed, file, refused, changes, cache)));
    return { status: 200, body: { dryRun: true, objects, ...warnings } };
  }

  /**
   * `{ warnings }` judged by `judge`, or nothing with `?warnings=false`: each judgement merges the
   * whole store, and `switchboard config apply` has the warnings of its whole file from one dry run
   * already, so its N writes asked for N merges it never read.
   */
  private warningsIfAsked(query: WriteQuery, judge: () => StoreRefusal[]): { warnings?: StoreRefusal[] } {
    return query.warnings ? { warnings: judge() } : {};
  }

  /**
   * What the gateways will log about a valid write (`writeWarnings`), judged beside the listing the
   * reader last composed; none before it composed one. Reasons name no secret (they are the log's).
   */
  private warnings(kind: StoreKind, name: string, value: unknown): StoreRefusal[] {
    return this.judgeBeside((composed, file, refused, cache) => writeWarnings(composed, file, refused, kind, name, value, cache));
  }

  /** What the gateways will log once `kind/name` is deleted (`deleteWarnings`), as `warnings` judges a write. */
  private deletionWarnings(kind: StoreKind, name: string): StoreRefusal[] {
    return this.judgeBeside((composed, file, refused, cache) => deleteWarnings(composed, file, refused, kind, name, cache));
  }

  /** `judge` beside the listing the reader last composed, its file, its refusals and the validations made beside that file; none before it composed one. */
  private judgeBeside(judge: (composed: ComposedListing, file: ConfigDocument, refused: readonly StoreRefusal[], cache: ValidationCache) => StoreRefusal[]): StoreRefusal[] {
    const composed = this.composed();
    if (!composed) return [];
    const file = this.fileDocument() ?? {};
    if (this.validations.file !== file) this.validations.cache.clear();
    this.validations.file = file;
    return judge(composed, file, this.readerStatus()?.refused ?? [], this.validations.cache);
  }

  private composed(): ComposedListing | undefined {
    return (this.options.composed ?? (() => configStoreState.lastComposed()))();
  }

  private readerStatus(): StoreStatus | undefined {
    return (this.options.readerStatus ?? (() => configStoreState.current()))();
  }

  private fileDocument(): ConfigDocument | undefined {
    return (this.options.fileDocument ?? (() => configStoreState.fileDocument()))();
  }

  /**
   * The object's own schema, then the reader's judgement beside the file (`defaults` and other
   * top-level settings, rules across the file's sections): a write every gateway would refuse at
   * load and skip with a warning is refused here.
   */
  private check(kind: StoreKind, name: string, value: unknown): ObjectCheck {
    return checkStoreObjectBeside(this.fileDocument() ?? {}, kind, name, value);
  }

  private async remove(request: IncomingMessage, query: WriteQuery, writer: StoreWriter, kind: StoreKind, name: string): Promise<StoreAnswer> {
    const ifMatch = entityTag(request.headers['if-match']);
    // Judged before the delete, as a write's: the reader may list the store without it before the delete answers.
    const warnings = this.warningsIfAsked(query, () => this.deletionWarnings(kind, name));
    await writer.delete(kind, name, ifMatch === undefined || ifMatch === '*' ? {} : { ifMatch });
    this.report(request, 'delete', kind, name, null);
    return { status: 200, body: { kind, name, deleted: true, ...warnings } };
  }

  /** `If-Match: "<revision>"` (or `*`: it must exist) and `If-None-Match: *` as writer conditions. */
  private async conditions(request: IncomingMessage, writer: StoreWriter, kind: StoreKind, name: string): Promise<WriteConditions | StoreAnswer> {
    const ifNoneMatch = request.headers['if-none-match'];
    if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') return adminError(400, 'bad-request', 'SB_ADMIN_PRECONDITION', 'If-None-Match takes only * (create only)');
    const ifMatch = entityTag(request.headers['if-match']);
    // RFC 9110 §13.2.2: If-Match first (the object must exist), then If-None-Match: * (it must not).
    if (ifMatch !== undefined && ifNoneMatch !== undefined) {
      return failureAnswer(new StoreConflictError(`${kind}/${name}`, (await writer.get(kind, name))?.revision, 'If-Match and If-None-Match: * never hold together (it must exist and must not)'));
    }
    if (ifMatch !== '*') return { ifMatch, ifNoneMatch: ifNoneMatch !== undefined };
    const current = await writer.get(kind, name);
    if (!current) return adminError(412, 'precondition-failed', 'SB_CONFIG_STORE_CONFLICT', `${kind}/${name} does not exist (If-Match: *)`);
    return { ifMatch: current.revision };
  }

  private report(request: IncomingMessage, action: 'put' | 'delete', kind: StoreKind, name: string, revision: string | null): void {
    // Never the value: consumers hold key hashes, and an event stream is for watching, not for secrets.
    const client = request.socket.remoteAddress ?? 'unknown';
    this.options.record({ type: 'config-written', data: { action, kind, name, revision, client } });
    this.log.info({ action, kind, name, revision, client }, 'config store object written');
  }

  private writerFor(location: StoreLocation): Promise<StoreWriter> {
    if (this.writer?.url === location.url) return this.writer.writer;
    // Another store than the open writer's: the old client goes, the next request opens the new one.
    void this.close();
    // Kept as a promise, so that concurrent first requests share one writer.
    const writer = (this.options.openWriter ?? openStoreWriter)(location);
    this.writer = { url: location.url, writer };
    return writer;
  }
}

/**
 * An admin write's body as text, read up to `limitBytes`: a 413 past it (saying `tooLarge`), a 400
 * when it is empty (saying `empty`, what to send). The config store's and the cache purge's.
 */
export async function readAdminBody(request: IncomingMessage, limitBytes: number, tooLarge: string, empty: string): Promise<{ text: string } | StoreAnswer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) return adminError(413, 'too-large', 'SB_ADMIN_BODY_TOO_LARGE', tooLarge);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return adminError(400, 'bad-request', 'SB_ADMIN_BODY', empty);
  return { text };
}

/** The body parsed as JSON (or YAML with a YAML content type), or a 400/413 answer. */
async function readBody(request: IncomingMessage, limitBytes = STORE_BODY_LIMIT_BYTES): Promise<{ value: unknown } | StoreAnswer> {
  const what = limitBytes === STORE_BODY_LIMIT_BYTES ? 'a stored object' : 'a dry run of many objects';
  const read = await readAdminBody(request, limitBytes, `${what} is at most ${limitBytes} bytes`, 'the body is empty: send the object as JSON (or YAML with Content-Type: application/yaml)');
  if (!('text' in read)) return read;
  const { text } = read;
  const yaml = /yaml/i.test(request.headers['content-type'] ?? '');
  try {
    return { value: yaml ? (parseYaml(text) as unknown) : (JSON.parse(text) as unknown) };
  } catch (failure) {
    return adminError(400, 'bad-request', 'SB_ADMIN_BODY', `the body is not ${yaml ? 'YAML' : 'JSON'}: ${yaml ? yamlErrorReason(failure) : errorMessage(failure)}`);
  }
}

/**
 * A 400 when `value` holds the redaction marker where a secret goes (an object read back from
 * this API and sent again), else undefined. Refused rather than filled in from the stored object:
 * a PUT replaces the whole object, and which stored secret a marker stands for is a guess once
 * header names, key order or the object itself changed since the read; filling it in would also
 * let a writer move a secret it cannot read to a new upstream (a route's requestHeaders with
 * another service). Nothing is written, so the real secret stays.
 */
function readBack(kind: StoreKind, name: string, value: unknown): StoreAnswer | undefined {
  const place = kind === 'routes' ? `routes[${name}]` : `${kind}.${name}`;
  const issues = redactionMarkers(value).map((at) => ({ path: `${place}${at.startsWith('[') ? '' : '.'}${at}`, reason: `holds "${REDACTED}", which the admin API shows in place of a secret: send the secret itself` }));
  if (issues.length === 0) return undefined;
  return { status: 400, body: { ...bodyOf(400, 'invalid', 'SB_ADMIN_REDACTED_VALUE', describeObjectIssues(issues)), issues } };
}

/** The objects and deletions of a dry run of many (`{ objects: [{ kind, name, value }], deleted?: [{ kind, name }] }`), or a 400. */
function batchOf(body: unknown): { objects: { kind: StoreKind; name: string; value: unknown }[]; deleted: { kind: StoreKind; name: string }[] } | StoreAnswer {
  const { objects, deleted = [] } = (typeof body === 'object' && body !== null ? body : {}) as { objects?: unknown; deleted?: unknown };
  const placed = (entry: unknown): entry is { kind: StoreKind; name: string; value?: unknown } =>
    typeof entry === 'object' && entry !== null && isStoreKind(String((entry as { kind?: unknown }).kind)) && typeof (entry as { name?: unknown }).name === 'string';
  if (!Array.isArray(objects) || !Array.isArray(deleted) || !objects.every((entry) => placed(entry) && 'value' in entry) || !deleted.every(placed)) {
    return adminError(400, 'bad-request', 'SB_ADMIN_BODY', 'a dry run of many objects is { "objects": [{ "kind", "name", "value" }], "deleted": [{ "kind", "name" }] }, kinds among routes, services, middlewares, consumers, certificates');
  }
  return { objects: objects as { kind: StoreKind; name: string; value: unknown }[], deleted: (deleted as { kind: StoreKind; name: string }[]).map(({ kind, name }) => ({ kind, name })) };
}

/** A write's query: `?dryRun=true` (as Kubernetes' `dryRun`: judge the object as a write would, write nothing), `?warnings=false` (answer without `warnings`). */
interface WriteQuery {
  readonly dryRun: boolean;
  readonly warnings: boolean;
}

/**
 * A write's query (`WriteQuery`), or a 400 for a query parameter the API does not take. Ignored, a
 * misspelt or misvalued dry run (`?dryRun`, `?dryRun=1`, `?dryrun=true`) would store the object, and
 * a DELETE, which has no dry run, would delete it. A read's query is ignored.
 */
function writeQuery(request: IncomingMessage, method: string): WriteQuery | StoreAnswer {
  const query = { dryRun: false, warnings: true };
  if (method !== 'PUT' && method !== 'DELETE') return query;
  for (const [name, value] of new URL(request.url ?? '/', 'http://admin').searchParams) {
    if (method === 'PUT' && name === 'dryRun' && value === 'true') query.dryRun = true;
    else if (name === 'warnings' && (value === 'true' || value === 'false')) query.warnings = value === 'true';
    else {
      const given = value === '' ? name : `${name}=${value}`;
      const message =
        method === 'PUT'
          ? `PUT takes only ?dryRun=true (judge the write, store nothing) and ?warnings=false (answer without warnings), not ${given}: nothing was written`
          : `DELETE takes only ?warnings=false (answer without warnings; it has no dry run), not ${given}: nothing was deleted`;
      return adminError(400, 'bad-request', 'SB_ADMIN_QUERY', message);
    }
  }
  return query;
}

/** The tag of an `If-Match` value: `"12"` → `12`, `W/"12"` → `12`, `*` stays. */
function entityTag(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const trimmed = header.trim();
  return trimmed === '*' ? '*' : trimmed.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

function failureAnswer(failure: unknown): StoreAnswer {
  if (failure instanceof StoreConflictError) {
    return { status: 412, body: { ...bodyOf(412, 'precondition-failed', failure.code, failure.message), revision: failure.current ?? null }, headers: failure.current ? { etag: `"${failure.current}"` } : {} };
  }
  if (failure instanceof StoreNotFoundError) return adminError(404, 'not-found', failure.code, failure.message);
  if (failure instanceof StoreUnavailableError) return adminError(503, 'store-unavailable', failure.code, failure.message);
  // The store's own refusal (as grpc-gateway maps PERMISSION_DENIED): retrying cannot help, unlike a 503.
  if (failure instanceof StoreForbiddenError) return adminError(403, 'store-forbidden', failure.code, failure.message);
  // The store refused the gateway's password: 403 as well (the admin token was fine, so not 401), its own `error`.
  if (failure instanceof StoreAuthenticationError) return adminError(403, 'store-auth-failed', failure.code, failure.message);
  // Written around the API (etcdctl, zkCli) and not JSON: the store is wrong, not the request.
  if (failure instanceof StoreValueError) return adminError(502, 'store-value', failure.code, failure.message);
  throw failure;
}

function bodyOf(status: number, name: string, code: string, message: string): Record<string, unknown> {
  return { error: name, code, status, message };
}

/** An admin API's error answer: `{ error, code, status, message }`. */
export function adminError(status: number, name: string, code: string, message: string): StoreAnswer {
  return { status, body: bodyOf(status, name, code, message) };
}
