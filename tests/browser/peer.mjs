#!/usr/bin/env node
// Reference browser peer: JsSIP running in Debian's headless Chromium, driven by JSON lines.
//
//   node peer.mjs --ws ws://127.0.0.1:PORT --uri sip:alice@localhost --password P
//                 [--fake-audio FILE.wav] [--auto-answer] [--name NAME] [--early-ice] [--debug]
//
// stdin:  one command per line, e.g. {"cmd":"call","target":"sip:bob@localhost"}
//         (register, call, answer, hangup, message, stats, unregister, quit;
//          hold, unhold, {"cmd":"dtmf","tones":"123","transport":"INFO"|"RFC2833"},
//          {"cmd":"refer","target":"sip:carol@localhost"}; see page.js)
// stdout: one event per line, each with "event" and "t" (wall-clock ms since the epoch,
//         sub-millisecond; see page.js)
// stderr: logs (driver, page console, JsSIP debug with --debug)
//
// The page is served from a throwaway HTTP server on 127.0.0.1 (a secure-enough origin for
// getUserMedia). JsSIP ships only CommonJS sources, so it is bundled for the page with esbuild
// at start-up, in memory.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const nowMs = () => performance.timeOrigin + performance.now();

function log(...parts) {
  process.stderr.write(`[peer ${new Date().toISOString()}] ${parts.join(' ')}\n`);
}

function emit(record) {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

function parseArgs(argv) {
  const options = { autoAnswer: false, earlyIce: false, debug: false, name: null, fakeAudio: null };
  const takesValue = { '--ws': 'ws', '--uri': 'uri', '--password': 'password', '--fake-audio': 'fakeAudio', '--name': 'name' };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (takesValue[arg]) {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      options[takesValue[arg]] = argv[i + 1];
      i += 1;
    } else if (arg === '--auto-answer') {
      options.autoAnswer = true;
    } else if (arg === '--early-ice') {
      options.earlyIce = true;
    } else if (arg === '--debug') {
      options.debug = true;
    } else {
      throw new Error(`unknown argument ${arg}`);
    }
  }
  for (const required of ['ws', 'uri', 'password']) {
    if (!options[required]) throw new Error(`--${required} is required`);
  }
  return options;
}

async function bundleJsSip() {
  const result = await build({
    entryPoints: [join(here, 'node_modules', 'jssip', 'lib', 'JsSIP.js')],
    bundle: true,
    format: 'iife',
    globalName: 'JsSIP',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

async function serve(files) {
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://127.0.0.1').pathname;
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    const file = files[path === '/' ? '/page.html' : path];
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

function chromiumArgs(options) {
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
  if (options.fakeAudio) {
    // Looped unless the path ends in %noloop.
    args.push(`--use-file-for-fake-audio-capture=${options.fakeAudio}`);
  }
  return args;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const [jssip, pageJs, pageHtml] = await Promise.all([
    bundleJsSip(),
    readFile(join(here, 'page.js'), 'utf8'),
    readFile(join(here, 'page.html'), 'utf8'),
  ]);
  const server = await serve({
    '/page.html': { type: 'text/html; charset=utf-8', body: pageHtml },
    '/page.js': { type: 'text/javascript; charset=utf-8', body: pageJs },
    '/jssip.js': { type: 'text/javascript; charset=utf-8', body: jssip },
  });
  const origin = `http://127.0.0.1:${server.address().port}`;

  const userDataDir = await mkdtemp(join(tmpdir(), 'lyrebird-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.LYREBIRD_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: chromiumArgs(options),
    // The Rust side owns signals: it sends SIGTERM and waits, so let us clean up ourselves.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });

  let closing = false;
  const shutdown = async (code) => {
    if (closing) return;
    closing = true;
    const hardStop = setTimeout(() => process.exit(code), 5000);
    hardStop.unref();
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
  const page = context.pages()[0] || (await context.newPage());
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
  await page.evaluate((pageOptions) => window.lyrebirdPeer.start(pageOptions), {
    ws: options.ws,
    uri: options.uri,
    password: options.password,
    name: options.name,
    autoAnswer: options.autoAnswer,
    earlyIce: options.earlyIce,
    debug: options.debug,
  });
  emit({
    event: 'started',
    t: nowMs(),
    browser: context.browser() ? context.browser().version() : null,
    userAgent: await page.evaluate(() => navigator.userAgent),
    fakeAudio: options.fakeAudio,
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
      await page.evaluate(() => window.lyrebirdPeer.stop()).catch(() => {});
      shutdown(0);
      return;
    }
    try {
      await page.evaluate((command) => window.lyrebirdPeer.command(command), cmd);
    } catch (error) {
      emit({ event: 'error', t: nowMs(), detail: `${cmd.cmd}: ${error.message}` });
    }
  });
  // The test process went away: do not leave a browser behind.
  lines.on('close', () => shutdown(0));
}

main().catch((error) => {
  log('fatal:', error && error.stack ? error.stack : error);
  emit({ event: 'error', t: nowMs(), detail: `fatal: ${error && error.message ? error.message : error}` });
  process.exit(1);
});
