import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';

/** The files that secure a connection to etcd, ZooKeeper (a digest's user and password) or Redis, as a configuration or the agent's flags name them. */
export interface CredentialFiles {
  /** TLS: the CA bundle that signed the server's certificate; none: the system roots. */
  readonly caFile?: string | undefined;
  /** TLS: a client certificate (with `keyFile`), for etcd's `--client-cert-auth` or Redis' `tls-auth-clients`. */
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  /** User/password authentication: the user, and a file holding the password (one trailing newline dropped). */
  readonly username?: string | undefined;
  readonly passwordFile?: string | undefined;
}

/** A problem with one credential file, named by its field (`caFile`, `passwordFile`…). */
export interface CredentialIssue {
  readonly field: keyof CredentialFiles;
  readonly message: string;
}

/** What `Etcd3` takes to connect with these credentials (`credentials` and `auth` of its options). */
export interface EtcdClientSecurity {
  readonly credentials?: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer };
  readonly auth?: { username: string; password: string };
}

/**
 * The contents of a connection's credential files (etcd, ZooKeeper, Redis) as read once. The key and password are
 * private fields, so the admin API's `/api/config` (which lists enumerable fields) and logs show
 * the paths, the user and a digest, never a secret; a changed file under the same path changes `sha256`.
 */
export class ConnectionCredentials {
  readonly #ca: Buffer | undefined;
  readonly #cert: Buffer | undefined;
  readonly #key: Buffer | undefined;
  readonly #password: string | undefined;
  readonly caFile: string | undefined;
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  readonly username: string | undefined;
  readonly passwordFile: string | undefined;
  /** SHA-256 over every file read and the user name. */
  readonly sha256: string;

  constructor(files: CredentialFiles, contents: { ca?: Buffer; cert?: Buffer; key?: Buffer; password?: string }) {
    this.caFile = files.caFile;
    this.certFile = files.certFile;
    this.keyFile = files.keyFile;
    this.username = files.username;
    this.passwordFile = files.passwordFile;
    this.#ca = contents.ca;
    this.#cert = contents.cert;
    this.#key = contents.key;
    this.#password = contents.password;
    const hash = createHash('sha256');
    for (const part of [contents.ca, contents.cert, contents.key, files.username, contents.password]) hash.update(part ?? '').update('\0');
    this.sha256 = hash.digest('hex');
  }

  /** Whether TLS settings (a CA or a client certificate) were given. */
  get tls(): boolean {
    return this.#ca !== undefined || this.#cert !== undefined;
  }

  /**
   * `user:password` for ZooKeeper's digest authentication, when a user and password were given: a
   * ZooKeeper registry or store takes the same `auth` block (and the agent the same kind of flags).
   */
  zooKeeperDigest(): string | undefined {
    return this.username !== undefined && this.#password !== undefined ? `${this.username}:${this.#password}` : undefined;
  }

  /** The `ca`, `cert` and `key` of a node:tls connection (as ioredis' `tls` takes them); empty when none was given. */
  tlsOptions(): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
    return { ...(this.#ca ? { ca: this.#ca } : {}), ...(this.#cert ? { cert: this.#cert } : {}), ...(this.#key ? { key: this.#key } : {}) };
  }

  /** The user (if any) and password for a server's AUTH (Redis), when a password was given. */
  login(): { username?: string; password: string } | undefined {
    if (this.#password === undefined) return undefined;
    return { ...(this.username !== undefined ? { username: this.username } : {}), password: this.#password };
  }

  /** The `credentials` and `auth` options of an `Etcd3` client. */
  clientSecurity(): EtcdClientSecurity {
    return {
      // grpc-js's createSsl takes null for "the system roots"; etcd3 types the root as required.
      ...(this.tls ? { credentials: { rootCertificate: this.#ca as Buffer, ...(this.#key ? { privateKey: this.#key } : {}), ...(this.#cert ? { certChain: this.#cert } : {}) } } : {}),
      ...(this.username !== undefined && this.#password !== undefined ? { auth: { username: this.username, password: this.#password } } : {}),
    };
  }
}

/**
 * Reads and checks the files of `files` (relative paths from `baseDir`): the CA bundle and the
 * certificate/key pair with node:tls, the password file's first line. A certificate needs its key and
 * a user a password file, and the other way round (with `passwordAlone`, a password file may come
 * without a user: Redis' default user). Returns the credentials, or every issue found.
 */
export function readCredentialFiles(files: CredentialFiles, baseDir: string, options: { readonly passwordAlone?: boolean } = {}): { credentials: ConnectionCredentials | undefined; issues: CredentialIssue[] } {
  const issues: CredentialIssue[] = [];
  const read = (field: keyof CredentialFiles): Buffer | undefined => {
    const file = files[field];
    if (file === undefined) return undefined;
    const absolute = resolve(baseDir, file);
    try {
      return readFileSync(absolute);
    } catch (error) {
      issues.push({ field, message: `cannot read ${absolute} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` });
      return undefined;
    }
  };
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    issues.push({ field: files.certFile === undefined ? 'keyFile' : 'certFile', message: 'certFile and keyFile go together' });
  }
  if (files.username !== undefined ? files.passwordFile === undefined : files.passwordFile !== undefined && options.passwordAlone !== true) {
    issues.push({ field: files.username === undefined ? 'passwordFile' : 'username', message: 'username and passwordFile go together' });
  }
  const ca = read('caFile');
  const cert = read('certFile');
  const key = read('keyFile');
  const passwordText = read('passwordFile')?.toString('utf8');
  const password = passwordText?.replace(/\r?\n$/, '');
  if (ca) checkPem(ca, 'caFile', issues, () => createSecureContext({ ca }), 'not a usable CA bundle');
  if (cert && key) checkPem(cert, 'certFile', issues, () => createSecureContext({ cert, key }), 'not a usable certificate and key');
  if (password === '') issues.push({ field: 'passwordFile', message: `${resolve(baseDir, files.passwordFile ?? '')} is empty` });
  if (issues.length > 0) return { credentials: undefined, issues };
  const contents = { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(password === undefined ? {} : { password }) };
  return { credentials: new ConnectionCredentials(files, contents), issues };
}

function checkPem(pem: Buffer, field: keyof CredentialFiles, issues: CredentialIssue[], check: () => void, what: string): void {
  if (!pem.includes('-----BEGIN ')) {
    issues.push({ field, message: 'not a PEM file (no "-----BEGIN" line)' });
    return;
  }
  try {
    check();
  } catch (error) {
    issues.push({ field, message: `${what} (${(error as Error).message})` });
  }
}

/** Whether any credential file or user is named. */
export function namesCredentialFiles(files: CredentialFiles): boolean {
  return Object.values(files).some((value) => value !== undefined);
}
