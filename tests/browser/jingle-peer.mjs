#!/usr/bin/env node
// Reference Jingle peer: the `stanza` XMPP library in Debian's headless Chromium, making and
// taking Jingle audio calls over WebRTC, driven by JSON lines (as peer.mjs drives JsSIP).
//
//   node jingle-peer.mjs --ws ws://127.0.0.1:PORT/xmpp-websocket --jid alice@localhost
//                        --password P [--resource R] [--fake-audio FILE.wav] [--auto-answer]
//                        [--codecs opus,PCMU,...] [--debug]
//
// --codecs limits (and orders) the audio codecs offered or answered, through
// RTCRtpTransceiver.setCodecPreferences; by default Chromium offers opus, red, G722, PCMU, PCMA,
// CN and telephone-event.
//
// stdin:  one command per line:
//           {"cmd":"call","to":"bob@localhost"}       bare JID: XEP-0353 <propose/> to every
//                                                      device; full JID: session-initiate
//           {"cmd":"answer"} {"cmd":"reject"} {"cmd":"hangup"}   the current call
//           {"cmd":"stats"}                            getStats of the current call
//           {"cmd":"add_contact","jid":"bob@localhost"}   roster item + subscribe
//           {"cmd":"disco","jid":"bob@localhost/res"}  disco#info of an entity
//           {"cmd":"quit"}
// stdout: one event per line, each with "event" and "t" (wall-clock ms since the epoch,
//         sub-millisecond): started, online {jid}, presence, subscription_approved, subscribed,
//         contact_added, dialing {to,sid,via}, ringing, proceed, incoming {from,sid,media,via},
//         accepted {direction,sid,peer,via}, ice_state, first_audio, remote_audio_playing,
//         ended {sid,reason,text,by}, stats, disco_info, jingle_message, jingle_error
//         {sid,action,condition} (the peer answered a Jingle request with an IQ error), offline,
//         error {detail}
//         (see jingle-page.js)
// stderr: logs (driver, page console; every XMPP stanza and stanza's Jingle log with --debug)
//
// The page is served from a throwaway HTTP server on 127.0.0.1 (a secure-enough origin for
// getUserMedia). stanza is CommonJS with Node built-ins (`events`), so the page script is bundled
// with esbuild at start-up, in memory, for the browser (stanza's `browser` field picks its
// browser platform shims).

import { mkdtemp, rm } from 'node:fs/promises';
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
  process.stderr.write(`[jingle-peer ${new Date().toISOString()}] ${parts.join(' ')}\n`);
}

function emit(record) {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

function parseArgs(argv) {
  const options = { autoAnswer: false, debug: false, resource: null, fakeAudio: null, codecs: null };
  const takesValue = {
    '--ws': 'ws',
    '--jid': 'jid',
    '--password': 'password',
    '--resource': 'resource',
    '--fake-audio': 'fakeAudio',
    '--codecs': 'codecs',
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (takesValue[arg]) {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      options[takesValue[arg]] = argv[i + 1];
      i += 1;
    } else if (arg === '--auto-answer') {
      options.autoAnswer = true;
    } else if (arg === '--debug') {
      options.debug = true;
    } else {
      throw new Error(`unknown argument ${arg}`);
    }
  }
  for (const required of ['ws', 'jid', 'password']) {
    if (!options[required]) throw new Error(`--${required} is required`);
  }
  return options;
}

const PAGE_HTML = `<!doctype html>
<html>
  <head>
    <meta charset="utf-8" />
    <title>Lyrebird reference Jingle peer (stanza)</title>
  </head>
  <body>
    <!-- Remote audio must play through an element: Chromium decodes it only then. -->
    <audio id="remote-audio" autoplay></audio>
    <script src="/jingle-page.js"></script>
  </body>
</html>
`;

async function bundlePage() {
  const result = await build({
    entryPoints: [join(here, 'jingle-page.js')],
    bundle: true,
    format: 'iife',
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
    const file = files[path === '/' ? '/index.html' : path];
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

// The same flags as peer.mjs (INTEROP.md, "Browser peers").
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
  const pageJs = await bundlePage();
  const server = await serve({
    '/index.html': { type: 'text/html; charset=utf-8', body: PAGE_HTML },
    '/jingle-page.js': { type: 'text/javascript; charset=utf-8', body: pageJs },
  });
  const origin = `http://127.0.0.1:${server.address().port}`;

  const userDataDir = await mkdtemp(join(tmpdir(), 'lyrebird-chromium-jingle-'));
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
  let page = null;
  const shutdown = async (code) => {
    if (closing) return;
    closing = true;
    const hardStop = setTimeout(() => process.exit(code), 5000);
    hardStop.unref();
    // Hang up and leave the server cleanly (bounded: the page may be gone).
    if (page) {
      await Promise.race([
        page.evaluate(() => window.lyrebirdJingle && window.lyrebirdJingle.stop()).catch(() => {}),
        new Promise((resolve) => setTimeout(resolve, 1500)),
      ]);
    }
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
  await page.evaluate((pageOptions) => window.lyrebirdJingle.start(pageOptions), {
    ws: options.ws,
    jid: options.jid,
    password: options.password,
    resource: options.resource,
    autoAnswer: options.autoAnswer,
    codecs: options.codecs ? options.codecs.split(',').map((name) => name.trim()).filter(Boolean) : null,
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
      shutdown(0);
      return;
    }
    try {
      await page.evaluate((command) => window.lyrebirdJingle.command(command), cmd);
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
