import { createSecureContext, type SecureContext } from 'node:tls';
import { ConfigFileError, errorMessage } from '../../src/errors.ts';
import { readFileWithSave, readingKey, type FileReading } from '../../src/folder-watch-settle.ts';
import type { Logger } from '../../src/logger.ts';
import { checkCaBundlePem, pairReadingKey, unreadableFile } from '../config/certificate-check.ts';
import type { CertificateFiles, EntryPointTls } from '../config/types.ts';
import { tlsReloadsTotal } from '../telemetry/index.ts';
import type { LoadedCertificate } from './tls-certificates.ts';
import type { CertificateFolderWatch } from './tls-folder-watch.ts';

/**
 * The client-certificate CA bundle of a TLS entry point (`tls.clientAuth.caFile`), as it verifies
 * now, and the certificates' contexts that carry it. OpenSSL verifies a client certificate against
 * the store of the context SNI chose (the certificate's own, not the server's), so every context
 * the entry point serves, its own certificates' and the named ones', gets a copy with the bundle
 * (made once per certificate and bundle). The file is watched with the certificates (the same
 * folder watch and settle rule); a bad bundle is refused with its path and reason, logged at warn
 * and counted, and the previous one keeps verifying.
 */
export class ClientCa {
  private contexts = new WeakMap<LoadedCertificate, SecureContext>();
  private lastRefusal: string | undefined;

  private constructor(
    private readonly entryPoint: string,
    private readonly settings: EntryPointTls,
    readonly caFile: string,
    /** The bundle's PEM text, for the server that serves clients without SNI (`tls.createServer({ ca })`). */
    public text: string,
  ) {}

  /**
   * Reads and checks the bundle of `settings.clientAuth` (undefined without it); rejects with a
   * `ConfigFileError` naming the file, the reason and the key path in the configuration.
   */
  static async load(entryPoint: string, settings: EntryPointTls): Promise<ClientCa | undefined> {
    const caFile = settings.clientAuth?.caFile;
    if (caFile === undefined) return undefined;
    try {
      const { text } = await readFileWithSave(caFile).catch((error: unknown) => Promise.reject(unreadableFile(caFile, error)));
      checkCaBundlePem(caFile, text);
      return new ClientCa(entryPoint, settings, caFile, text);
    } catch (error) {
      if (!(error instanceof ConfigFileError)) throw error;
      throw new ConfigFileError(caFile, `${error.message.slice(caFile.length + 2)} (entryPoints.${entryPoint}.tls.clientAuth.caFile)`, { cause: error });
    }
  }

  /** The bundle's file as the folder watch takes it (a pair of one file). */
  get files(): CertificateFiles {
    return { certFile: this.caFile, keyFile: this.caFile };
  }

  /** `certificate`'s context with the bundle as its trust store and client CA list. */
  contextFor(certificate: LoadedCertificate): SecureContext {
    let context = this.contexts.get(certificate);
    if (!context) {
      const { minVersion, ciphers } = this.settings;
      context = createSecureContext({ cert: certificate.cert, key: certificate.key, ca: this.text, ...(minVersion ? { minVersion } : {}), ...(ciphers ? { ciphers } : {}) });
      this.contexts.set(certificate, context);
    }
    return context;
  }

  /**
   * Reads the bundle again (a folder event): true when a changed good bundle replaced the current
   * one (the contexts are then made again), false when it is unchanged, still settling, or refused.
   */
  async reload(folders: CertificateFolderWatch, log: Logger): Promise<boolean> {
    const files = this.files;
    try {
      let reading: FileReading;
      try {
        reading = await readFileWithSave(this.caFile);
      } catch (error) {
        const refusal = unreadableFile(this.caFile, error);
        if (!folders.pairSettled(files, pairReadingKey({ unreadable: refusal }))) return false;
        throw refusal;
      }
      if (reading.text === this.text) {
        folders.pairUnchanged(files);
        this.lastRefusal = undefined;
        return false;
      }
      if (!folders.pairSettled(files, readingKey(reading))) return false;
      checkCaBundlePem(this.caFile, reading.text);
      this.text = reading.text;
    } catch (error) {
      const reason = errorMessage(error);
      if (reason !== this.lastRefusal) {
        this.lastRefusal = reason;
        tlsReloadsTotal.inc({ entry_point: this.entryPoint, result: 'refused' });
        log.warn({ entryPoint: this.entryPoint, path: this.caFile, reason }, 'client CA bundle refused; the previous one keeps verifying');
      }
      return false;
    }
    this.lastRefusal = undefined;
    this.contexts = new WeakMap();
    tlsReloadsTotal.inc({ entry_point: this.entryPoint, result: 'applied' });
    log.info({ entryPoint: this.entryPoint, caFile: this.caFile }, 'client CA bundle reloaded');
    return true;
  }
}
