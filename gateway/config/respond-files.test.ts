import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from './load.ts';
import { filesReadOnLoad } from './named-files.ts';
import { errorOf, expectRefused } from './config-testing.ts';


const respondOf = (path: string, text: string) => parseConfig(path, text).middlewares.get('r');

/** The bytes the `respond` middleware `r` of `text` read from its `bodyFile`. */
function fileBodyOf(path: string, text: string): Buffer | undefined {
  const definition = respondOf(path, text);
  return definition?.kind === 'respond' ? definition.settings.fileBody?.bytes : undefined;
}

describe('respond settings', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-respond-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('gives a body text/plain in UTF-8 unless contentType says otherwise, and a bodyless answer no type', () => {
    const config = join(dir, 'gateway.yaml');
    expect(respondOf(config, 'middlewares:\n  r: { respond: { status: 503, body: "down for maintenance", headers: { Retry-After: 120 } } }\n')).toEqual({
      kind: 'respond',
      settings: { status: 503, body: 'down for maintenance', bodyFile: undefined, fileBody: undefined, contentType: 'text/plain; charset=utf-8', headers: { 'retry-after': '120' } },
    });
    expect(respondOf(config, 'middlewares:\n  r: { respond: { status: 200, body: "{}", contentType: application/json } }\n')).toMatchObject({ settings: { contentType: 'application/json' } });
    expect(respondOf(config, 'middlewares:\n  r: { respond: { status: 403 } }\n')).toEqual({ kind: 'respond', settings: { status: 403, body: undefined, bodyFile: undefined, fileBody: undefined, contentType: undefined, headers: {} } });
  });

  it('reads bodyFile at load, relative to the configuration file, and again on the next load', () => {
    writeFileSync(join(dir, 'maintenance.html'), '<h1>Back soon</h1>\n');
    const config = join(dir, 'gateway.yaml');
    const text = 'middlewares:\n  r: { respond: { status: 503, bodyFile: maintenance.html, contentType: text/html } }\n';
    expect(respondOf(config, text)).toMatchObject({ settings: { body: undefined, bodyFile: 'maintenance.html', contentType: 'text/html' } });
    expect(fileBodyOf(config, text)).toEqual(Buffer.from('<h1>Back soon</h1>\n'));
    writeFileSync(join(dir, 'maintenance.html'), '<h1>Back at 6</h1>');
    expect(fileBodyOf(config, text)).toEqual(Buffer.from('<h1>Back at 6</h1>'));
    // The config watch re-reads the text when the file changes, as for the other files read on load.
    expect(filesReadOnLoad(config, text)).toEqual([join(dir, 'maintenance.html')]);
  });

  it('refuses a bodyFile it cannot read, or one over 1 MiB, with its path and the reason', () => {
    const config = join(dir, 'gateway.yaml');
    expect(errorOf('middlewares:\n  r: { respond: { status: 503, bodyFile: missing.html } }\n', config).message).toContain(`middlewares.r.respond.bodyFile (line 2): cannot read ${join(dir, 'missing.html')} (ENOENT)`);
    expect(errorOf(`middlewares:\n  r: { respond: { status: 503, bodyFile: ${dir} } }\n`, config).message).toContain(`middlewares.r.respond.bodyFile (line 2): cannot read ${dir} (EISDIR)`);
    writeFileSync(join(dir, 'big.html'), Buffer.alloc(1024 * 1024 + 1, 'a'));
    expect(errorOf('middlewares:\n  r: { respond: { status: 200, bodyFile: big.html } }\n', config).message).toContain(`middlewares.r.respond.bodyFile (line 2): ${join(dir, 'big.html')}: 1048577 bytes, more than a body file may hold (1048576)`);
  });

  it('reads errors pages at load, relative to the configuration file, refuses one it cannot read with its key, and reloads on a page change', () => {
    writeFileSync(join(dir, '5xx.html'), '<h1>oops</h1>');
    const config = join(dir, 'gateway.yaml');
    const text = 'middlewares:\n  e: { errors: { pages: { "5xx": 5xx.html, "404": /nonexistent/404.html } } }\n';
    expect(errorOf(text, config).message).toContain('middlewares.e.errors.pages.404 (line 2): cannot read /nonexistent/404.html (ENOENT)');
    const readable = 'middlewares:\n  e: { errors: { pages: { "5xx": 5xx.html } } }\n';
    const definition = parseConfig(config, readable).middlewares.get('e');
    expect(definition?.kind === 'errors' && definition.settings.pages[0]?.body?.bytes.toString('utf8')).toBe('<h1>oops</h1>');
    expect(filesReadOnLoad(config, readable)).toEqual([join(dir, '5xx.html')]);
  });

  it('refuses a bodyFile that is no regular file, whose size says nothing of what a read brings (a FIFO, /dev/zero)', () => {
    const config = join(dir, 'gateway.yaml');
    const fifo = join(dir, 'body.fifo');
    execFileSync('mkfifo', [fifo]);
    // A writer that sends 2 MiB: the FIFO's size (0) passes a size check, and a read would take them all.
    const writer = spawn(process.execPath, ['-e', `require('node:fs').writeFileSync(${JSON.stringify(fifo)}, Buffer.alloc(2 * 1024 * 1024, 'a'))`], { stdio: 'ignore' });
    try {
      expect(errorOf(`middlewares:\n  r: { respond: { status: 200, bodyFile: ${fifo} } }\n`, config).message).toContain(`middlewares.r.respond.bodyFile (line 2): ${fifo}: not a regular file`);
    } finally {
      writer.kill();
    }
  });

  it.each([
    ['{ status: 101 }', 'middlewares.r.respond.status (line 2): expected a final status from 200 to 599'],
    ['{ status: 199 }', 'middlewares.r.respond.status (line 2): expected a final status from 200 to 599'],
    ['{ status: 600 }', 'middlewares.r.respond.status (line 2): expected a final status from 200 to 599'],
    ['{ status: "200" }', 'middlewares.r.respond.status (line 2): expected a final status from 200 to 599'],
    ['{ body: down }', 'middlewares.r.respond.status (line 2)'],
    ['{ status: 200, body: a, bodyFile: a.txt }', 'middlewares.r.respond.bodyFile (line 2): cannot go with body'],
    ['{ status: 204, body: a }', 'middlewares.r.respond.body (line 2): a 204 answer has no body (RFC 9110)'],
    ['{ status: 304, bodyFile: a.txt }', 'middlewares.r.respond.bodyFile (line 2): a 304 answer has no body (RFC 9110)'],
    ['{ status: 205, body: "" }', 'middlewares.r.respond.body (line 2): a 205 answer has no body (RFC 9110)'],
    ['{ status: 200, contentType: text/html }', 'middlewares.r.respond.contentType (line 2): describes a body: give body or bodyFile'],
    ['{ status: 200, body: a, headers: { Content-Type: text/html } }', 'middlewares.r.respond.headers (line 2): set content-type with contentType'],
    ['{ status: 200, body: a, headers: { Content-Length: 5 } }', 'middlewares.r.respond.headers (line 2): cannot set content-length: the gateway frames the body itself'],
    ['{ status: 200, headers: { Connection: keep-alive } }', 'middlewares.r.respond.headers (line 2): cannot set connection to "keep-alive" on an answer, only to close'],
    ['{ status: 200, headers: { Trailer: x-sum } }', 'middlewares.r.respond.headers (line 2): cannot set trailer: a hop-by-hop header'],
    ['{ status: 200, headers: { Keep-Alive: "timeout=5" } }', 'middlewares.r.respond.headers (line 2): cannot set keep-alive on an answer'],
    ['{ status: 200, headers: { "bad name": a } }', 'middlewares.r.respond.headers.bad name (line 2)'],
    ['{ status: 200, headers: { X-A: "a\\nb" } }', 'middlewares.r.respond.headers.X-A (line 2): must not contain CR, LF or NUL'],
    ['{ status: 200, contentType: "text/日本", body: a }', 'middlewares.r.respond.contentType (line 2): must hold only tab, printable ASCII and Latin-1 characters'],
    ['{ status: 200, redirect: /x }', 'middlewares.r.respond.redirect (line 2): unknown field "redirect"'],
  ])('refuses respond %s with "%s"', (settings, expected) => {
    expectRefused(`middlewares:\n  r: { respond: ${settings} }\n`, expected, join(dir, 'gateway.yaml'));
  });
});
