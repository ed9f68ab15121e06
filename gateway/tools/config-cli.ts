import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { errorMessage, SwitchboardError } from '../../src/errors.ts';
import { GatewayConfigError, parseLocated, readConfigText } from '../config/load.ts';
import { fileDocumentOf, type ConfigDocument } from '../config-store/store-objects.ts';
import { isStoreKind, STORE_KINDS, type StoreKind } from '../config-store/store-layout.ts';
import { redactionMarkers } from '../config/redaction.ts';
import { diffObjects, formatChanges, type ObjectChange } from '../config-store/store-writer-diff.ts';
import { splitConfig, type ConfigObject } from '../config-store/store-writer-split.ts';
import { checkStoreObject, checkStoreObjectBeside } from '../config-store/store-writer-validate.ts';
import { AdminCallError, configAdminClient, type ConfigAdminClient, type StoreView, type StoreWarning } from './config-cli-client.ts';
import { CONFIG_CLI_CONCURRENCY, inOrderWithLimit } from './config-cli-pool.ts';
import { applyWrites, warnAbout } from './config-cli-write.ts';

/** `switchboard config` usage, printed on a usage error. */
export const CONFIG_USAGE = `Usage: switchboard config get [kind [name]] [--json]
       switchboard config apply -f <file> [--prune] [--dry-run] [--against <gateway config file>]...
       switchboard config diff -f <file> [--against <gateway config file>]...
       switchboard config delete <kind> <name> [--if-match <revision>]
  kinds: routes, services, middlewares, consumers, certificates
  --dry-run: judge every object as apply does and say what it would write, writing nothing
  warnings (objects the gateways will refuse once the write is made, such as a route naming a
    middleware nothing declares) go to stderr, one a line; the write is made and the exit status stays 0
  --against: also judge each object beside that gateway's file (its defaults, entry points…), as
    that gateway will; any refusal and apply writes nothing, diff compares nothing (repeat it for
    each kind of gateway)
  every command takes --admin <url> (default http://127.0.0.1:9180) and --token <token> (or SWITCHBOARD_ADMIN_TOKEN)
`;

/** Where `--admin` points by default: the admin listener's default address. */
const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9180';

/** Writes a terminal reads: out for results, err for problems. */
interface Output {
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
}

/**
 * `switchboard config`: reads and writes the shared configuration store through any gateway's
 * admin API (the gateway validates and writes with compare-and-swap), so scripts and CI need no
 * etcd or ZooKeeper client. Exit 0 on success (and `diff` without differences), 1 when `diff`
 * finds differences, 2 on a usage, file or admin API error.
 */
export async function configCommand(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        admin: { type: 'string', short: 'a' },
        token: { type: 'string' },
        file: { type: 'string', short: 'f' },
        prune: { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        json: { type: 'boolean' },
        'if-match': { type: 'string' },
        against: { type: 'string', multiple: true },
      },
    });
  } catch (error) {
    err.write(`switchboard config: ${errorMessage(error)}\n${CONFIG_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [action, ...rest] = positionals;
  const client = configAdminClient(values.admin ?? DEFAULT_ADMIN_URL, values.token ?? env.SWITCHBOARD_ADMIN_TOKEN);
  const io = { out, err };
  const against = values.against ?? [];
  try {
    if (action === 'get') return await get(client, rest, values.json === true, io);
    if (action === 'apply' && values.file) return await apply(client, values.file, { prune: values.prune === true, dryRun: values['dry-run'] === true, against }, io);
    if (action === 'diff' && values.file) return await diff(client, values.file, against, io);
    if (action === 'delete' && rest.length === 2) {
      const warnings = await client.delete(kindOf(rest[0]!), rest[1]!, values['if-match']);
      out.write(`${kindOf(rest[0]!)}/${rest[1]} deleted\n`);
      warnAbout(warnings, undefined, err);
      return 0;
    }
  } catch (error) {
    if (!(error instanceof SwitchboardError)) throw error;
    err.write(`switchboard config ${action}: ${error.message}\n`);
    return 2;
  }
  err.write(CONFIG_USAGE);
  return 2;
}

async function get(client: ConfigAdminClient, rest: string[], json: boolean, { out }: Output): Promise<number> {
  if (rest.length === 2) {
    const object = await client.get(kindOf(rest[0]!), rest[1]!);
    if (!object) throw new CliError(`${kindOf(rest[0]!)}/${rest[1]} is not in the store`);
    out.write(json ? `${JSON.stringify(object, null, 2)}\n` : `# ${object.kind}/${object.name} revision ${object.revision}\n${stringify(object.value)}`);
    return 0;
  }
  const store = await client.store();
  const kind = rest[0] === undefined ? undefined : kindOf(rest[0]);
  const objects = store.objects.filter((object) => kind === undefined || object.kind === kind);
  if (json) out.write(`${JSON.stringify({ ...store, objects }, null, 2)}\n`);
  else out.write(`# ${store.store} revision ${store.revision}\n${stringify(asConfigFile(objects))}`);
  for (const bad of store.unreadable) out.write(`# unreadable: ${bad.kind}/${bad.name}: ${bad.reason}\n`);
  return 0;
}

/** How `apply` runs: `prune` deletes what the file dropped, `dryRun` writes nothing, `against` judges beside those gateway files too. */
interface ApplyOptions {
  readonly prune: boolean;
  readonly dryRun: boolean;
  readonly against: readonly string[];
}

async function apply(client: ConfigAdminClient, file: string, { prune, dryRun, against }: ApplyOptions, { out, err }: Output): Promise<number> {
  const desired = await objectsOf(file, against, err, 'nothing was written');
  if (!desired) return 2;
  const store = await client.store();
  const stored = new Map(store.objects.map((object) => [`${object.kind}/${object.name}`, object]));
  const changes = new Map(diffObjects(store.objects, desired).map((change) => [`${change.kind}/${change.name}`, change]));
  // The gateway judges each write beside its own file (its redis section, entry points, defaults):
  // asked about every change first, so that one it refuses leaves nothing of the file written.
  const judged = desired.filter((object) => changes.has(`${object.kind}/${object.name}`));
  const deleted = prune ? [...changes.values()].filter((change) => change.change === '-') : [];
  const judgement = await judgeChanges(client, judged, deleted);
  for (const issue of judgement.issues) err.write(`${file}: ${issue.path}: ${issue.reason} (refused by the gateway at --admin)\n`);
  // The listing shows secrets redacted, so only the gateway can tell an object with one is the same.
  for (const id of judgement.unchanged) changes.delete(id);
  const refused = judgement.issues.length;
  if (refused > 0) {
    err.write(`${file}: ${refused} problem${refused === 1 ? '' : 's'}; nothing was written\n`);
    return 2;
  }
  const warned = new Set<string>();
  if (dryRun) {
    for (const object of desired) {
      const id = `${object.kind}/${object.name}`;
      out.write(`${id} ${!changes.has(id) ? 'unchanged' : stored.has(id) ? 'would be updated' : 'would be created'}\n`);
    }
    for (const change of changes.values()) if (change.change === '-') out.write(`${change.kind}/${change.name} ${prune ? 'would be deleted' : `not in ${file} (kept; --prune deletes it)`}\n`);
    warnAbout(judgement.warnings, file, err, warned);
    out.write('dry run: nothing was written\n');
    return 0;
  }
  return await applyWrites(client, { desired, stored, changes, prune, file, quiet: judgement.together }, judgement.warnings, { out, err }, warned);
}

/** What the gateway says of the changes `apply` is about to make: its issues, the objects it holds as they are, the warnings, and whether it judged them together. */
interface Judgement {
  readonly issues: readonly { path: string; reason: string }[];
  /** `kind/name` of each object the store holds as the file has it. */
  readonly unchanged: readonly string[];
  readonly warnings: readonly StoreWarning[];
  readonly together: boolean;
}

/**
 * Asks the gateway to judge the writes of `objects` and the deletions of `deleted` together, in
 * one dry run (`PUT /api/store?dryRun=true`): one merge of its store, and warnings of the file as a
 * whole (a route naming a middleware the file adds is none). From a gateway older than that, one
 * dry run per object, each beside the store as it is.
 */
async function judgeChanges(client: ConfigAdminClient, objects: readonly ConfigObject[], deleted: readonly ObjectChange[]): Promise<Judgement> {
  if (objects.length === 0 && deleted.length === 0) return { issues: [], unchanged: [], warnings: [], together: true };
  const together = await client.judgeAll(objects, deleted);
  if (together) return { ...together, together: true };
  const issues: { path: string; reason: string }[] = [];
  const unchanged: string[] = [];
  const warnings: StoreWarning[] = [];
  await inOrderWithLimit(objects, CONFIG_CLI_CONCURRENCY, (object) => client.judge(object.kind, object.name, object.value), (object, judged) => {
    if (judged.unchanged) unchanged.push(`${object.kind}/${object.name}`);
    issues.push(...judged.issues);
    warnings.push(...judged.warnings);
  });
  return { issues, unchanged, warnings, together: false };
}

async function diff(client: ConfigAdminClient, file: string, against: readonly string[], { out, err }: Output): Promise<number> {
  // diff never writes: saying "nothing was written" would suggest it might have.
  const desired = await objectsOf(file, against, err, 'not compared with the store (diff only compares, it never writes)');
  if (!desired) return 2;
  const store = await client.store();
  const changes: ObjectChange[] = [];
  for (const change of diffObjects(store.objects, desired)) {
    const object = change.change === '~' ? desired.find((entry) => entry.kind === change.kind && entry.name === change.name) : undefined;
    const stored = store.objects.find((entry) => entry.kind === change.kind && entry.name === change.name);
    // A secret reads "[redacted]" in the listing: the gateway compares the stored value itself.
    if (object && stored && redactionMarkers(stored.value).length > 0 && (await sameSecrets(client, object, err))) continue;
    changes.push(change);
  }
  if (changes.length === 0) {
    out.write(`no differences between ${file} and the store\n`);
    return 0;
  }
  out.write(formatChanges(changes));
  return 1;
}

/**
 * Whether the store holds `object` as the file has it, secrets included, by the gateway's dry run.
 * The dry run is a PUT, which an admin listener without a token refuses (403) although it answers
 * reads: diff then shows the object as the redacted listing differs, and says so on `err`.
 */
async function sameSecrets(client: ConfigAdminClient, object: ConfigObject, err: NodeJS.WritableStream): Promise<boolean> {
  try {
    return (await client.judge(object.kind, object.name, object.value)).unchanged;
  } catch (error) {
    if (!(error instanceof AdminCallError) || error.status !== 403) throw error;
    err.write(`${object.kind}/${object.name}: its secrets were not compared, as the listing shows them redacted (${error.message})\n`);
    return false;
  }
}

/**
 * The file's objects, each checked as the gateway will check it (its own schema; beside each
 * `against` gateway file too); undefined (problems written to err, then `outcome`: what the command
 * did not do because of them) when any is invalid.
 */
async function objectsOf(file: string, against: readonly string[], err: NodeJS.WritableStream, outcome: string): Promise<ConfigObject[] | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read ${file}: ${errorMessage(error)}`);
  }
  const split = splitConfig(file, text);
  const objects: ConfigObject[] = [];
  let invalid = 0;
  for (const object of split.objects) {
    const check = checkStoreObject(object.kind, object.name, object.value);
    if (check.ok) objects.push({ ...object, value: check.value });
    else {
      invalid += check.issues.length;
      for (const issue of check.issues) err.write(`${file}: ${issue.path}: ${issue.reason}\n`);
    }
  }
  for (const gatewayFile of against) {
    const document = await gatewayDocument(gatewayFile);
    for (const object of objects) {
      const check = checkStoreObjectBeside(document, object.kind, object.name, object.value);
      if (check.ok) continue;
      invalid += check.issues.length;
      for (const issue of check.issues) err.write(`${file}: ${issue.path}: ${issue.reason} (beside ${gatewayFile})\n`);
    }
  }
  if (split.ignored.length > 0) err.write(`${file}: not stored (they configure one gateway): ${split.ignored.join(', ')}\n`);
  if (invalid > 0) {
    err.write(`${file}: ${invalid} problem${invalid === 1 ? '' : 's'}; ${outcome}\n`);
    return undefined;
  }
  return objects;
}

/** A gateway's configuration file as the store reader judges objects beside it; a file that gateway would not start with is a usage error. */
async function gatewayDocument(path: string): Promise<ConfigDocument> {
  try {
    const text = await readConfigText(path);
    // The files it names (TLS, JWT keys) live on that gateway's disk, not necessarily on this one.
    parseLocated(path, text, { readFiles: false });
    return fileDocumentOf(text);
  } catch (error) {
    if (error instanceof GatewayConfigError) throw new CliError(`--against: ${error.message}`);
    throw error;
  }
}


/** Objects shaped as a configuration file (routes a list, the rest maps), for `get`. */
function asConfigFile(objects: StoreView['objects']): Record<string, unknown> {
  const file: Record<string, unknown> = {};
  for (const object of objects) {
    if (object.kind === 'routes') ((file.routes ??= []) as unknown[]).push(object.value);
    else ((file[object.kind] ??= {}) as Record<string, unknown>)[object.name] = object.value;
  }
  return file;
}

/** `routes`, or the singular `route`, as a store kind. */
function kindOf(word: string): StoreKind {
  const kind = word.endsWith('s') ? word : `${word}s`;
  if (!isStoreKind(kind)) throw new CliError(`unknown kind "${word}" (expected ${STORE_KINDS.join(', ')})`);
  return kind;
}

/** A usage or file problem of `switchboard config`. */
class CliError extends SwitchboardError {
  constructor(message: string) {
    super('SB_CONFIG_CLI', message);
  }
}
