import type { SecureContext } from 'node:tls';
import { ConfigFileError, errorMessage } from '../../src/errors.ts';
import type { Logger } from '../../src/logger.ts';
import { entryPointCertificatePairs, pairReadingKey, readCertificatePair } from '../config/certificate-check.ts';
import type { CertificateFiles, EntryPointConfig, EntryPointTls } from '../config/types.ts';
import { tlsReloadsTotal } from '../telemetry/index.ts';
import { certificateFromPem, loadCertificateAt, warnOfValidity, type LoadedCertificate } from './tls-certificates.ts';
import { ClientCa } from './tls-client-ca.ts';
import { CertificateFolderWatch, type CertificateFolderWatchTiming } from './tls-folder-watch.ts';
import { SniTable } from './tls-sni.ts';

/** One configured pair and what serves for it now. */
export interface Slot {
  readonly files: CertificateFiles;
  /** Where the pair sits in the file, for start-up errors. */
  readonly keyPath: string;
  current: LoadedCertificate;
  /** The last refusal reported, so that an unchanged bad file is not reported on every folder event. */
  lastRefusal: string | undefined;
}

/**
 * The certificates of one https entry point, chosen by SNI (`SniTable`) and kept fresh: the
 * folders of the certificate and key files are watched (like the configuration file: folder
 * watch, debounce), and a changed pair is read again and checked. A good pair replaces the old one
 * for new handshakes only (open connections keep the context they negotiated); a bad one is
 * refused with its path and reason, logged at warn and counted, and the old one keeps serving.
 */
export class TlsCertificates {
  private table: SniTable<SecureContext>;
  private readonly folders: CertificateFolderWatch;
  private defaultListener: ((cert: LoadedCertificate) => void) | undefined;
  /** Named certificates (`certificates:`) served after this entry point's own; see `setShared`. */
  private shared: readonly LoadedCertificate[] = [];

  private constructor(
    private readonly entryPoint: string,
    private readonly settings: EntryPointTls,
    private readonly slots: readonly Slot[],
    private readonly defaultSlot: Slot,
    private readonly log: Logger,
    timing: CertificateFolderWatchTiming,
    /** The client CA bundle (`tls.clientAuth`), whose copy every context served gets; undefined without clientAuth. */
    readonly clientCa: ClientCa | undefined,
  ) {
    this.table = this.buildTable();
    this.folders = new CertificateFolderWatch(() => this.reloadAll(), log, { entryPoint }, timing);
  }

  /**
   * Reads every certificate of `entryPoint`; rejects with a `ConfigFileError` that names the bad
   * file, the reason and the key path in the configuration, once that pair has settled (a renewal
   * in progress is waited for: `loadCertificate`). `timing` tunes the folder watch and that wait (tests).
   */
  static async load(entryPoint: EntryPointConfig, log: Logger, timing: CertificateFolderWatchTiming = {}): Promise<TlsCertificates> {
    const settings = entryPoint.tls;
    if (!settings) throw new Error(`entry point ${entryPoint.name} has no tls settings`);
    const clientCa = await ClientCa.load(entryPoint.name, settings);
    const slots = await Promise.all(
      entryPointCertificatePairs(entryPoint).map(async ({ files, at }): Promise<Slot> => {
        const keyPath = at.join('.');
        return { files, keyPath, current: await loadCertificateAt(files, settings.minVersion, keyPath, { ...timing, log }), lastRefusal: undefined };
      }),
    );
    const certificates = new TlsCertificates(entryPoint.name, settings, slots, settings.defaultCertificate ? slots.at(-1)! : slots[0]!, log, timing, clientCa);
    for (const slot of slots) {
      log.info({ entryPoint: entryPoint.name, certFile: slot.files.certFile, names: slot.current.names, keyType: slot.current.keyType }, 'certificate loaded');
      warnOfValidity(log, { entryPoint: entryPoint.name }, slot.current);
    }
    return certificates;
  }

  /** For `tls.createServer({ SNICallback })`: reads the current table, so a reload reaches the next handshake. */
  readonly sniCallback = (servername: string, callback: (error: Error | null, context?: SecureContext) => void): void => {
    callback(null, this.table.lookup(servername));
  };

  /** The certificate served to clients without SNI (and to unknown names). */
  get defaultCertificate(): LoadedCertificate {
    return this.defaultSlot.current;
  }

  /** Called with the new default certificate after a reload replaced it (for `server.setSecureContext`). */
  onDefaultChange(listener: (cert: LoadedCertificate) => void): void {
    this.defaultListener = listener;
  }

  /** Starts watching the folders of every certificate and key file; `close()` stops it. */
  watch(): void {
    this.folders.watch([...this.slots.map((slot) => slot.files), ...(this.clientCa ? [this.clientCa.files] : [])]);
  }

  /**
   * Serves `certificates` by SNI after this entry point's own (which win a name both list), from
   * the next handshake on. They are the named certificates of the configuration (`NamedCertificates`).
   */
  setShared(certificates: readonly LoadedCertificate[]): void {
    this.shared = certificates;
    this.table = this.buildTable();
  }

  /** Stops watching. */
  close(): void {
    this.folders.close();
  }

  /** Reads every pair and the client CA bundle again (what a file change triggers after its debounce). */
  private async reloadAll(): Promise<void> {
    let changed = false;
    if (await this.clientCa?.reload(this.folders, this.log)) {
      changed = true;
      this.defaultListener?.(this.defaultSlot.current);
    }
    for (const slot of this.slots) {
      if (!(await reloadSlot(slot, this.settings.minVersion, this.log, this.entryPoint, this.folders))) continue;
      changed = true;
      if (slot === this.defaultSlot) this.defaultListener?.(slot.current);
    }
    if (changed) this.table = this.buildTable();
  }

  private buildTable(): SniTable<SecureContext> {
    return new SniTable(
      [...this.slots.map((slot) => slot.current), ...this.shared].map((certificate) => ({ names: certificate.names, value: this.contextOf(certificate) })),
      this.contextOf(this.defaultSlot.current),
    );
  }

  /** What serves `certificate` here: its own context, or a copy that verifies client certificates. */
  private contextOf(certificate: LoadedCertificate): SecureContext {
    return this.clientCa ? this.clientCa.contextFor(certificate) : certificate.context;
  }
}

/**
 * Reads a slot's pair again; a changed good pair replaces the current one (true), an unchanged one
 * is kept (false), and a bad one is refused with its path and reason, logged at warn and counted
 * under `entryPoint` once per distinct reason, at debug when read again (false; the current one keeps serving). A changed
 * pair is judged only once both its files have settled (`folders.pairSettled`; false until then):
 * a certificate written before its key is never loaded, nor refused, with the old key.
 */
export async function reloadSlot(slot: Slot, minVersion: EntryPointTls['minVersion'], log: Logger, entryPoint: string, folders: CertificateFolderWatch): Promise<boolean> {
  let next: LoadedCertificate;
  try {
    let pair: Awaited<ReturnType<typeof readCertificatePair>>;
    try {
      pair = await readCertificatePair(slot.files);
    } catch (error) {
      if (!folders.pairSettled(slot.files, pairReadingKey({ unreadable: error }))) return false;
      throw error;
    }
    const { cert, key } = pair;
    if (cert.text === slot.current.cert && key.text === slot.current.key) {
      folders.pairUnchanged(slot.files);
      slot.lastRefusal = undefined;
      return false;
    }
    if (!folders.pairSettled(slot.files, pairReadingKey(pair))) return false;
    next = certificateFromPem(slot.files, cert.text, key.text, minVersion);
  } catch (error) {
    const reason = errorMessage(error);
    const path = error instanceof ConfigFileError ? error.path : slot.files.certFile;
    if (reason !== slot.lastRefusal) {
      slot.lastRefusal = reason;
      tlsReloadsTotal.inc({ entry_point: entryPoint, result: 'refused' });
      log.warn({ entryPoint, path, reason }, 'certificate refused; the previous one keeps serving');
    } else {
      log.debug({ entryPoint, path, reason }, 'certificate still refused for the reason reported; the previous one keeps serving');
    }
    return false;
  }
  slot.lastRefusal = undefined;
  if (next.cert === slot.current.cert && next.key === slot.current.key) return false;
  slot.current = next;
  tlsReloadsTotal.inc({ entry_point: entryPoint, result: 'applied' });
  log.info({ entryPoint, certFile: slot.files.certFile, names: next.names, keyType: next.keyType }, 'certificate reloaded');
  warnOfValidity(log, { entryPoint }, next);
  return true;
}
