import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { makeTempDir } from './process.ts';
import { REPO_ROOT } from './programs.ts';

/** Where Debian's `chromium` package puts the browser (.ci/run installs it). */
export const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/**
 * Where a browser test saves its screenshot `name`: `docs/<name>`, the picture README shows, only
 * when the environment has `UPDATE_SCREENSHOTS=1`; otherwise a fresh temporary directory (removed
 * at the end of the test file), so that a test run leaves the working tree as it found it and two
 * checkouts' runs never write one file.
 */
export async function screenshotPath(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.UPDATE_SCREENSHOTS !== '1') return join(await makeTempDir('sb-screenshot-'), name);
  const docs = join(REPO_ROOT, 'docs');
  await mkdir(docs, { recursive: true });
  return join(docs, name);
}

/** A headless Chromium with a throw-away profile, and its first page. */
export interface HeadlessChromium {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

/**
 * Throws, with the remedy, when Chromium is missing: a browser test must fail then, never skip
 * silently, since it is the proof of what it tests.
 */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) throw new Error(`this test drives Chromium at ${CHROMIUM}, which is missing: apt-get install -y chromium (.ci/run installs it)`);
}

/** Starts headless Chromium (see `requireChromium`) on a fresh profile with a `viewport`-sized page. */
export async function startChromium(viewport: { readonly width: number; readonly height: number }): Promise<HeadlessChromium> {
  requireChromium();
  const profile = await mkdtemp(join(tmpdir(), 'sb-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport });
    const page = context.pages()[0] ?? (await context.newPage());
    return {
      context,
      page,
      async close() {
        await context.close();
        await rm(profile, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(profile, { recursive: true, force: true });
    throw error;
  }
}

/** A background load that `stop` ends after its current round. */
export interface SteadyLoad {
  stop(): Promise<void>;
}

/**
 * Light, steady traffic, so a page has rates to show: one request to each of `urls` at once,
 * then a pause of `pauseMs`, over and over. Failed requests are ignored (the page shows them).
 */
export function steadyLoad(urls: readonly string[], pauseMs: number): SteadyLoad {
  let running = true;
  const loop = async () => {
    while (running) {
      await Promise.all(urls.map((url) => fetch(url).then((response) => response.arrayBuffer(), () => undefined)));
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  };
  const done = loop();
  return {
    stop() {
      running = false;
      return done;
    },
  };
}
