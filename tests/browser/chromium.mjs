// What the reference browser peers share (peer.mjs: JsSIP; jingle-peer.mjs: stanza): a page
// script bundled with esbuild, served from a throwaway HTTP server on 127.0.0.1 (a secure-enough
// origin for getUserMedia), loaded in Debian's headless Chromium through playwright-core, and
// driven in JSON lines.
//
// stdin:  one command per line, handed to the page object's `command(cmd)`; `quit` ends the peer.
// stdout: one event per line, each with "event" and "t" (wall-clock ms since the epoch,
//         sub-millisecond): `started` here, `error {detail}` for driver and page failures, the
//         rest from the page through `window.lyrebirdEmit`.
// stderr: logs (driver, page console).

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';

// The npm package's directory (tests/browser).
export const here = dirname(fileURLToPath(import.meta.url));
export const nowMs = () => performance.timeOrigin + performance.now();

// A logger to stderr whose lines start with `[tag <ISO time>]`.
export function logger(tag) {
  return (...parts) => process.stderr.write(`[${tag} ${new Date().toISOString()}] ${parts.join(' ')}\n`);
}

export function emit(record) {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

// Command-line options: `values` maps an option that takes a value to its field, `switches` a
// flag to the field it sets to true; `defaults` holds the fields' starting values and
// `required` the fields that must be given (named as their option, `--<field>`).
export function parseArgs(argv, { defaults, values, switches, required }) {
  const options = { ...defaults };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (values[arg]) {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      options[values[arg]] = argv[i + 1];
      i += 1;
    } else if (switches[arg]) {
      options[switches[arg]] = true;
    } else {
      throw new Error(`unknown argument ${arg}`);
    }
  }
  for (const field of required) {
    if (!options[field]) throw new Error(`--${field} is required`);
  }
  return options;
}

// One script for the page, bundled in memory (`options` adds to esbuild's, e.g. globalName).
export async function bundle(entryPoint, options = {}) {
  const result = await build({
    entryPoints: [entryPoint],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
    ...options,
  });
  return result.outputFiles[0].text;
}

// The page: an <audio> element for the remote audio and `scripts`, in order.
export function pageHtml(title, scripts) {
  const tags = scripts.map((src) => `    <script src="${src}"></script>\n`).join('');
  return `<!doctype html>
<html>
  <head>
    <meta charset="utf-8" />
    <title>${title}</title>
  </head>
  <body>
    <!-- Remote audio must play through an element: Chromium decodes it only then. -->
    <audio id="remote-audio" autoplay></audio>
${tags}  </body>
</html>
`;
}

// `files` maps a path to { type, body }; `/` is `index`.
async function serve(files, index) {
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://127.0.0.1').pathname;
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    const file = files[path === '/' ? index : path];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': file.type, 'Cache-Control': 'no-store' }).end(file.body);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return server;
}

// INTEROP.md, "Browser peers".
export function chromiumArgs(fakeAudio) {
  const args = [
    '--no-sandbox',
    '--disable-gpu',
    // Without this Chromium gathers no ICE candidates on loopback.
    '--allow-loopback-in-peer-connection',
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
    // mDNS host candidates (*.local) cannot be resolved in a loopback-only namespace.
    '--disable-features=WebRtcHideLocalIpsWithMdns',
    // Nothing may try to leave the machine.
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ];
  if (fakeAudio) {
    // Looped unless the path ends in %noloop.
    args.push(`--use-file-for-fake-audio-capture=${fakeAudio}`);
  }
  return args;
}

// Serves `files` (`/` is `index`), starts Chromium with a fresh profile under `profilePrefix`,
// loads the page, calls `window[pageObject].start(startOptions)`, emits `started`, then hands
// every stdin line to `window[pageObject].command(cmd)` until `quit`, a signal or the end of
// stdin. `onQuit(page)` runs on `quit` before shutting down; `beforeClose(page)` on every
// shutdown once the page exists, before Chromium closes.
export async function runPeer({
  log,
  files,
  index,
  profilePrefix,
  fakeAudio,
  pageObject,
  startOptions,
  onQuit = null,
  beforeClose = null,
}) {
  const server = await serve(files, index);
  const origin = `http://127.0.0.1:${server.address().port}`;

  const userDataDir = await mkdtemp(join(tmpdir(), profilePrefix));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.LYREBIRD_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: chromiumArgs(fakeAudio),
    // The Rust side owns signals: it sends SIGTERM and waits, so let us clean up ourselves.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });

  let closing = false;
  let page = null;
  const shutdown = async (code) => {
    if (closing) return;
    closing = true;
    const hardStop = setTimeout(() => process.exit(code), 5000);
    hardStop.unref();
    if (page && beforeClose) await beforeClose(page);
    try {
      await context.close();
    } catch (error) {
      log('closing chromium failed:', error);
    }
    server.close();
    await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
    process.exit(code);
  };
  process.on('SIGTERM', () => shutdown(0));
  process.on('SIGINT', () => shutdown(0));
  process.on('SIGHUP', () => shutdown(0));
  context.on('close', () => {
    if (!closing) {
      log('chromium went away');
      emit({ event: 'error', t: nowMs(), detail: 'chromium exited' });
      shutdown(1);
    }
  });

  await context.grantPermissions(['microphone'], { origin });
  page = context.pages()[0] || (await context.newPage());
  page.on('console', (message) => log(`page ${message.type()}:`, message.text()));
  page.on('pageerror', (error) => {
    log('page error:', error);
    emit({ event: 'error', t: nowMs(), detail: `page error: ${error.message}` });
  });
  page.on('crash', () => {
    emit({ event: 'error', t: nowMs(), detail: 'page crashed' });
    shutdown(1);
  });
  await page.exposeFunction('lyrebirdEmit', (record) => emit(record));
  await page.goto(origin, { waitUntil: 'load' });
  await page.evaluate(({ name, options }) => window[name].start(options), {
    name: pageObject,
    options: startOptions,
  });
  emit({
    event: 'started',
    t: nowMs(),
    browser: context.browser() ? context.browser().version() : null,
    userAgent: await page.evaluate(() => navigator.userAgent),
    fakeAudio,
  });

  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on('line', async (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (error) {
      emit({ event: 'error', t: nowMs(), detail: `bad command line: ${error.message}` });
      return;
    }
    if (cmd.cmd === 'quit') {
      if (onQuit) await onQuit(page);
      shutdown(0);
      return;
    }
    try {
      await page.evaluate(({ name, command }) => window[name].command(command), {
        name: pageObject,
        command: cmd,
      });
    } catch (error) {
      emit({ event: 'error', t: nowMs(), detail: `${cmd.cmd}: ${error.message}` });
    }
  });
  // The test process went away: do not leave a browser behind.
  lines.on('close', () => shutdown(0));
}

// Runs `main`; a failure is logged, reported as an `error` event and ends the process.
export function runMain(log, main) {
  main().catch((error) => {
    log('fatal:', error && error.stack ? error.stack : error);
    emit({ event: 'error', t: nowMs(), detail: `fatal: ${error && error.message ? error.message : error}` });
    process.exit(1);
  });
}
