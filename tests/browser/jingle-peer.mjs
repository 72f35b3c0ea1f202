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
// getUserMedia; see chromium.mjs, shared with peer.mjs). stanza is CommonJS with Node built-ins (`events`), so the page script is bundled
// with esbuild at start-up, in memory, for the browser (stanza's `browser` field picks its
// browser platform shims).

import { join } from 'node:path';
import { bundle, here, logger, pageHtml, parseArgs, runMain, runPeer } from './chromium.mjs';

const log = logger('jingle-peer');

async function main() {
  const options = parseArgs(process.argv.slice(2), {
    defaults: { autoAnswer: false, debug: false, resource: null, fakeAudio: null, codecs: null },
    values: {
      '--ws': 'ws',
      '--jid': 'jid',
      '--password': 'password',
      '--resource': 'resource',
      '--fake-audio': 'fakeAudio',
      '--codecs': 'codecs',
    },
    switches: { '--auto-answer': 'autoAnswer', '--debug': 'debug' },
    required: ['ws', 'jid', 'password'],
  });
  const pageJs = await bundle(join(here, 'jingle-page.js'));
  await runPeer({
    log,
    files: {
      '/index.html': {
        type: 'text/html; charset=utf-8',
        body: pageHtml('Lyrebird reference Jingle peer (stanza)', ['/jingle-page.js']),
      },
      '/jingle-page.js': { type: 'text/javascript; charset=utf-8', body: pageJs },
    },
    index: '/index.html',
    profilePrefix: 'lyrebird-chromium-jingle-',
    fakeAudio: options.fakeAudio,
    pageObject: 'lyrebirdJingle',
    startOptions: {
      ws: options.ws,
      jid: options.jid,
      password: options.password,
      resource: options.resource,
      autoAnswer: options.autoAnswer,
      codecs: options.codecs ? options.codecs.split(',').map((name) => name.trim()).filter(Boolean) : null,
      debug: options.debug,
    },
    // Hang up and leave the server cleanly (bounded: the page may be gone).
    beforeClose: (page) =>
      Promise.race([
        page.evaluate(() => window.lyrebirdJingle && window.lyrebirdJingle.stop()).catch(() => {}),
        new Promise((resolve) => setTimeout(resolve, 1500)),
      ]),
  });
}

runMain(log, main);
