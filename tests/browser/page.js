// The browser side of the reference peer: one JsSIP user agent in a Chromium page.
//
// Bundled by peer.mjs with esbuild (with page-common.js, shared with jingle-page.js; JsSIP comes
// as its own script, the global `JsSIP`). The Node driver (peer.mjs) loads this page, calls `lyrebirdPeer.start(options)` once and then
// `lyrebirdPeer.command(cmd)` for every JSON line it reads on stdin. Everything that happens is
// reported through `window.lyrebirdEmit(event)`, a function the driver exposes, which prints the
// event as one JSON line on stdout.
//
// Every event carries `t`: wall-clock milliseconds since the Unix epoch with sub-millisecond
// resolution (performance.timeOrigin + performance.now()), so the Rust side can compare times
// taken in two pages, in Node and in its own process on the same machine.
//
// This peer is the *reference* Lyrebird is measured against, so JsSIP keeps its default
// behaviour: in particular it does not send its offer or answer until ICE gathering completes
// (JsSIP RTCSession._createLocalDescription waits for the null candidate or
// iceGatheringState 'complete'; an application may cut that short by calling the `ready()`
// passed with each 'icecandidate' event, which we only do when `earlyIce` is set).
/* global JsSIP */

import {
  audioConstraints,
  emit,
  errorText,
  noAudioStats,
  nowMs,
  play,
  playReceived,
  pollFirstAudio,
  readAudioStats,
  runCommand,
} from './page-common.js';

// No STUN or TURN: tests run on loopback only, and host candidates are all that is needed.
const pcConfig = { iceServers: [] };

const FIRST_AUDIO_POLL_MS = 5;

class Peer {
  constructor() {
    this.ua = null;
    // The call commands act on: the latest one, or the one a failed transfer left us in.
    this.session = null;
    this.options = null;
    this.audioElement = null;
    // Sessions are numbered in the order this peer saw them; session events carry the number
    // as `call`, so a test can tell a transferred call from the one it replaced.
    this.sessionCount = 0;
  }

  start(options) {
    this.options = options;
    this.audioElement = document.getElementById('remote-audio');
    if (options.debug) {
      JsSIP.debug.enable('JsSIP:*');
    }
    const socket = new JsSIP.WebSocketInterface(options.ws);
    this.ua = new JsSIP.UA({
      sockets: [socket],
      uri: options.uri,
      password: options.password,
      display_name: options.name || undefined,
      // Register as soon as the WebSocket is up (an explicit register() before that fails
      // with 'Connection Error').
      register: true,
      // Keep reconnection fast and bounded on loopback so a restarted proxy is found again.
      connection_recovery_min_interval: 1,
      connection_recovery_max_interval: 4,
    });
    this.ua.on('connected', () => emit('ws_connected'));
    this.ua.on('disconnected', (e) => emit('ws_disconnected', { error: Boolean(e && e.error) }));
    this.ua.on('registered', () => emit('registered'));
    this.ua.on('unregistered', () => emit('unregistered'));
    this.ua.on('registrationFailed', (e) =>
      emit('registration_failed', { cause: e.cause, status: e.response ? e.response.status_code : null }),
    );
    this.ua.on('newRTCSession', (e) => this.onNewSession(e));
    this.ua.on('newMessage', (e) => {
      if (e.originator !== 'remote') return;
      emit('message', {
        from: e.request.from.uri.toString(),
        body: e.request.body,
        contentType: e.request.getHeader('Content-Type'),
      });
    });
    this.ua.start();
  }

  onNewSession(e) {
    if (e.originator !== 'remote') return;
    const session = e.session;
    if (this.session && !this.session.isEnded()) {
      // One call at a time: this peer is a test fixture, not a phone.
      session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      emit('incoming_call_rejected', { from: e.request.from.uri.toString() });
      return;
    }
    this.session = session;
    this.attachSession(session, nowMs());
    emit('incoming_call', { from: e.request.from.uri.toString() });
    if (this.options.autoAnswer) {
      this.answer();
    }
  }

  // Hooks for both directions. `since` is when this peer started waiting for audio: the dial
  // for a caller, the arrival of the INVITE for a callee.
  attachSession(session, since) {
    this.sessionCount += 1;
    const call = this.sessionCount;
    session._lyrebirdCall = call;
    session.on('peerconnection', (e) => this.attachConnection(session, e.peerconnection, since));
    if (session.connection) this.attachConnection(session, session.connection, since);
    session.on('icecandidate', (e) => {
      if (!session._lyrebirdFirstCandidate) {
        session._lyrebirdFirstCandidate = true;
        emit('ice_first_candidate', { type: e.candidate.type || null });
      }
      if (this.options.earlyIce) e.ready();
    });
    session.on('sdp', (e) => {
      if (e.originator !== 'local') return;
      const candidates = (e.sdp.match(/^a=candidate:/gm) || []).length;
      emit('local_sdp', { type: e.type, candidates });
    });
    session.on('progress', (e) =>
      emit('progress', { status: e.response ? e.response.status_code : null, originator: e.originator, call }),
    );
    session.on('accepted', (e) => emit('accepted', { originator: e.originator, call }));
    session.on('confirmed', (e) => emit('confirmed', { originator: e.originator, call }));
    session.on('ended', (e) => {
      emit('ended', { cause: e.cause, originator: e.originator, call });
      this.detachAudio(session);
    });
    session.on('failed', (e) => {
      emit('failed', {
        cause: e.cause,
        originator: e.originator,
        status: e.message ? e.message.status_code : null,
        call,
      });
      this.detachAudio(session);
    });
    // originator 'local': this page asked for it; 'remote': the other side did (RFC 6337).
    session.on('hold', (e) => emit('hold', { originator: e.originator, call }));
    session.on('unhold', (e) => emit('unhold', { originator: e.originator, call }));
    // Key presses: received as SIP INFO (application/dtmf-relay) from the other side, or sent
    // as INFO by this page. Chromium does not surface received RFC 4733 events.
    session.on('newDTMF', (e) => {
      const fields = { tone: e.dtmf.tone, duration: e.dtmf.duration, transport: 'INFO', call };
      emit(e.originator === 'remote' ? 'dtmf' : 'dtmf_sent', fields);
    });
    session.on('refer', (e) => this.onRefer(session, e));
  }

  // The other side transfers us (RFC 3515): like a phone, follow it. JsSIP answers 202, calls
  // the Refer-To target with a new session and NOTIFYs the referrer of its progress; ending
  // the old call is up to the referrer. Should the new call fail, commands go back to the old
  // one.
  onRefer(session, e) {
    const previous = session;
    emit('referred', { target: e.request.refer_to.uri.toString(), call: session._lyrebirdCall });
    const since = nowMs();
    e.accept(
      (transferred) => {
        this.session = transferred;
        this.attachSession(transferred, since);
        emit('transfer_call', { call: transferred._lyrebirdCall, from: previous._lyrebirdCall });
        transferred.on('failed', () => {
          if (this.session === transferred && !previous.isEnded()) {
            this.session = previous;
            this.playRemote(previous.connection);
            emit('transfer_call_failed', { call: previous._lyrebirdCall });
          }
        });
      },
      { mediaConstraints: this.mediaConstraints(), pcConfig },
    );
  }

  // With --video: Chromium's fake camera beside the microphone, 640x480 at 30 fps unless
  // --video-size WxH says otherwise.
  mediaConstraints() {
    if (!this.options.video) return audioConstraints;
    const [width, height] = (this.options.videoSize || '640x480').split('x').map(Number);
    return { ...audioConstraints, video: { width, height, frameRate: 30 } };
  }

  attachConnection(session, pc, since) {
    if (pc._lyrebirdAttached) return;
    pc._lyrebirdAttached = true;
    pc.addEventListener('track', (e) => {
      if (e.track.kind === 'video') {
        // Shown in a video element, as a person would see it (Chromium decodes for it).
        const video = document.getElementById('remote-video') || document.createElement('video');
        video.id = 'remote-video';
        video.muted = true;
        video.autoplay = true;
        video.playsInline = true;
        if (!video.parentNode) document.body.appendChild(video);
        video.srcObject = new MediaStream([e.track]);
        video.play().catch((error) => emit('error', { detail: `remote video play() failed: ${error}` }));
        return;
      }
      if (e.track.kind !== 'audio') return;
      if (session !== this.session) return;
      // Chromium decodes remote audio (and reports audioLevel / totalAudioEnergy) only when it
      // plays through a media element.
      const stream = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
      play(this.audioElement, stream);
    });
    pc.addEventListener('iceconnectionstatechange', () =>
      emit('ice_state', { state: pc.iceConnectionState, call: session._lyrebirdCall }),
    );
    // --hold-resolution: the video keeps its size when Chromium is short of CPU or bandwidth
    // (it lowers the frame rate instead), so a benchmark compares equal pictures.
    if (this.options.holdResolution) {
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState !== 'connected') return;
        for (const sender of pc.getSenders()) {
          if (!sender.track || sender.track.kind !== 'video') continue;
          sender.track.contentHint = 'detail';
          const parameters = sender.getParameters();
          parameters.degradationPreference = 'maintain-resolution';
          sender.setParameters(parameters).catch((error) =>
            emit('error', { detail: `degradationPreference: ${errorText(error)}` }),
          );
        }
      });
    }
    // first_audio: the first moment getStats shows inbound audio packets. Polled every 5 ms
    // from the start of the call until seen or the session ends.
    pollFirstAudio(
      pc,
      FIRST_AUDIO_POLL_MS,
      () => session.isEnded(),
      (packetsReceived) =>
        emit('first_audio', { packetsReceived, sinceMs: nowMs() - since, call: session._lyrebirdCall }),
    );
  }

  // Plays what a connection already receives (a call that becomes current again).
  playRemote(pc) {
    if (pc) playReceived(this.audioElement, pc);
  }

  // Only the current call's end silences the element: an old call ending after a transfer
  // must not cut off the new one.
  detachAudio(session) {
    if (this.audioElement && session === this.session) this.audioElement.srcObject = null;
  }

  live() {
    if (!this.session || this.session.isEnded()) throw new Error('no call in progress');
    return this.session;
  }

  hold() {
    // JsSIP returns false when it cannot re-offer now (not confirmed, already held, an
    // offer/answer in progress).
    if (!this.live().hold()) throw new Error('JsSIP did not start a hold');
  }

  unhold() {
    if (!this.live().unhold()) throw new Error('JsSIP did not start a resume');
  }

  // `transport`: 'INFO' (JsSIP's default, SIP INFO with application/dtmf-relay) or 'RFC2833'
  // (RFC 4733 events in the audio stream, through Chromium's RTCDTMFSender).
  dtmf(tones, transport, duration, gap) {
    const session = this.live();
    const transportType = transport || 'INFO';
    if (transportType === 'RFC2833') this.watchDtmfSender(session);
    session.sendDTMF(tones, {
      transportType,
      duration: duration || undefined,
      interToneGap: gap || undefined,
    });
  }

  watchDtmfSender(session) {
    const pc = session.connection;
    const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === 'audio');
    if (!sender || !sender.dtmf) throw new Error('the call has no DTMF sender (no telephone-event?)');
    if (sender.dtmf._lyrebirdWatched) return;
    sender.dtmf._lyrebirdWatched = true;
    sender.dtmf.addEventListener('tonechange', (e) => {
      if (e.tone) emit('dtmf_sent', { tone: e.tone, transport: 'RFC2833', call: session._lyrebirdCall });
    });
  }

  // Asks the other side to call `target` instead (blind transfer, RFC 3515), and reports the
  // REFER's answer and every NOTIFY of its progress.
  refer(target) {
    const session = this.live();
    const call = session._lyrebirdCall;
    const notified = (kind) => (e) =>
      emit('refer_notify', {
        kind,
        status: e.status_line ? e.status_line.status_code : null,
        reason: e.status_line ? e.status_line.reason_phrase : null,
        call,
      });
    session.refer(target, {
      eventHandlers: {
        requestSucceeded: (e) => emit('refer_request', { ok: true, status: e.response.status_code, call }),
        requestFailed: (e) =>
          emit('refer_request', {
            ok: false,
            status: e.response ? e.response.status_code : null,
            cause: e.cause,
            call,
          }),
        trying: notified('trying'),
        progress: notified('progress'),
        accepted: notified('accepted'),
        failed: notified('failed'),
      },
    });
  }

  call(target) {
    if (this.session && !this.session.isEnded()) {
      throw new Error('a call is already in progress');
    }
    const dialAt = nowMs();
    emit('dialing', { target, dialT: dialAt });
    const session = this.ua.call(target, {
      mediaConstraints: this.mediaConstraints(),
      pcConfig,
    });
    this.session = session;
    // JsSIP has already created the RTCPeerConnection (attachSession picks up
    // session.connection); offer creation, ICE gathering and remote tracks all happen after
    // this synchronous return, so no event is missed.
    this.attachSession(session, dialAt);
  }

  answer() {
    if (!this.session || this.session.isEnded()) throw new Error('no session to answer');
    if (this.session.direction !== 'incoming') throw new Error('the current session is outgoing');
    this.session.answer({ mediaConstraints: this.mediaConstraints(), pcConfig });
  }

  hangup() {
    if (!this.session || this.session.isEnded()) throw new Error('no session to hang up');
    this.session.terminate();
  }

  message(target, body) {
    this.ua.sendMessage(target, body, {
      contentType: 'text/plain',
      eventHandlers: {
        succeeded: () => emit('message_sent', { target }),
        failed: (e) =>
          emit('message_failed', { target, cause: e.cause, status: e.response ? e.response.status_code : null }),
      },
    });
  }

  // The received audio's power at `frequencies` (dB, Web Audio's scale), averaged over `ms`:
  // what a listener would hear of each tone. Read from the remote stream through an analyser,
  // beside the media element that plays it.
  async spectrum(frequencies, ms) {
    const stream = this.audioElement.srcObject;
    if (!stream) return { frequencies, db: [] };
    const context = new AudioContext();
    await context.resume();
    const analyser = context.createAnalyser();
    analyser.fftSize = 8192;
    analyser.smoothingTimeConstant = 0;
    context.createMediaStreamSource(stream).connect(analyser);
    const bins = new Float32Array(analyser.frequencyBinCount);
    const sums = frequencies.map(() => 0);
    let reads = 0;
    const until = nowMs() + ms;
    while (nowMs() < until) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      analyser.getFloatFrequencyData(bins);
      frequencies.forEach((hz, i) => {
        const bin = Math.round((hz / context.sampleRate) * analyser.fftSize);
        // The strongest of the tone's bin and its neighbours, in linear power.
        const peak = Math.max(bins[bin - 1], bins[bin], bins[bin + 1]);
        sums[i] += Math.pow(10, peak / 10);
      });
      reads += 1;
    }
    await context.close();
    const db = sums.map((sum) => (reads > 0 && sum > 0 ? 10 * Math.log10(sum / reads) : -200));
    return { frequencies, db };
  }

  async stats() {
    const fields = noAudioStats();
    const pc = this.session ? this.session.connection : null;
    fields.call = this.session ? this.session._lyrebirdCall : null;
    if (!pc) return fields;
    readAudioStats(await pc.getStats(), fields);
    return fields;
  }

  // One command from the driver (see runCommand).
  async command(cmd) {
    await runCommand(cmd, {
      register: () => this.ua.register(),
      call: () => this.call(String(cmd.target)),
      answer: () => this.answer(),
      hangup: () => this.hangup(),
      hold: () => this.hold(),
      unhold: () => this.unhold(),
      dtmf: () => this.dtmf(String(cmd.tones), cmd.transport, cmd.duration, cmd.gap),
      refer: () => this.refer(String(cmd.target)),
      message: () => this.message(String(cmd.target), String(cmd.body)),
      stats: async () => emit('stats', await this.stats()),
      spectrum: async () =>
        emit('spectrum', await this.spectrum((cmd.frequencies || []).map(Number), Number(cmd.ms) || 1000)),
      unregister: () => this.ua.unregister(),
    });
  }

  stop() {
    if (this.ua) this.ua.stop();
  }
}

window.lyrebirdPeer = new Peer();
