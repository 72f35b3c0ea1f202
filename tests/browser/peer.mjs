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
// getUserMedia; see chromium.mjs, shared with jingle-peer.mjs). JsSIP ships only CommonJS
// sources, so it is bundled for the page with esbuild at start-up, in memory, as is page.js
// (with page-common.js).

import { join } from 'node:path';
import { bundle, here, logger, pageHtml, parseArgs, runMain, runPeer } from './chromium.mjs';

const log = logger('peer');

async function main() {
  const options = parseArgs(process.argv.slice(2), {
    defaults: { autoAnswer: false, earlyIce: false, debug: false, video: false, holdResolution: false, videoSize: null, name: null, fakeAudio: null },
    values: { '--ws': 'ws', '--uri': 'uri', '--password': 'password', '--fake-audio': 'fakeAudio', '--name': 'name', '--video-size': 'videoSize' },
    switches: { '--auto-answer': 'autoAnswer', '--early-ice': 'earlyIce', '--debug': 'debug', '--video': 'video', '--hold-resolution': 'holdResolution' },
    required: ['ws', 'uri', 'password'],
  });
  const [jssip, pageJs] = await Promise.all([
    bundle(join(here, 'node_modules', 'jssip', 'lib', 'JsSIP.js'), { globalName: 'JsSIP' }),
    bundle(join(here, 'page.js')),
  ]);
  await runPeer({
    log,
    files: {
      '/page.html': {
        type: 'text/html; charset=utf-8',
        body: pageHtml('Lyrebird reference browser peer (JsSIP)', ['/jssip.js', '/page.js']),
      },
      '/page.js': { type: 'text/javascript; charset=utf-8', body: pageJs },
      '/jssip.js': { type: 'text/javascript; charset=utf-8', body: jssip },
    },
    index: '/page.html',
    profilePrefix: 'lyrebird-chromium-',
    fakeAudio: options.fakeAudio,
    pageObject: 'lyrebirdPeer',
    startOptions: {
      ws: options.ws,
      uri: options.uri,
      password: options.password,
      name: options.name,
      autoAnswer: options.autoAnswer,
      earlyIce: options.earlyIce,
      debug: options.debug,
      video: options.video || options.videoSize !== null,
      videoSize: options.videoSize,
      holdResolution: options.holdResolution,
    },
    // Unregister before Chromium closes.
    onQuit: (page) => page.evaluate(() => window.lyrebirdPeer.stop()).catch(() => {}),
  });
}

runMain(log, main);
