// The browser side of the reference peer: one JsSIP user agent in a Chromium page.
//
// The Node driver (peer.mjs) loads this page, calls `lyrebirdPeer.start(options)` once and then
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

const nowMs = () => performance.timeOrigin + performance.now();

function emit(event, fields = {}) {
  const record = { event, t: nowMs(), ...fields };
  try {
    window.lyrebirdEmit(record);
  } catch (error) {
    console.error('lyrebirdEmit failed', error);
  }
}

// Echo cancellation, noise suppression and gain control would alter the speech that quality
// tests compare, so the capture is taken raw.
const audioConstraints = {
  audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  video: false,
};

// No STUN or TURN: tests run on loopback only, and host candidates are all that is needed.
const pcConfig = { iceServers: [] };

const FIRST_AUDIO_POLL_MS = 5;

class Peer {
  constructor() {
    this.ua = null;
    this.session = null;
    this.options = null;
    this.audioElement = null;
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
      emit('progress', { status: e.response ? e.response.status_code : null, originator: e.originator }),
    );
    session.on('accepted', (e) => emit('accepted', { originator: e.originator }));
    session.on('confirmed', (e) => emit('confirmed', { originator: e.originator }));
    session.on('ended', (e) => {
      emit('ended', { cause: e.cause, originator: e.originator });
      this.detachAudio();
    });
    session.on('failed', (e) => {
      emit('failed', { cause: e.cause, originator: e.originator, status: e.message ? e.message.status_code : null });
      this.detachAudio();
    });
  }

  attachConnection(session, pc, since) {
    if (pc._lyrebirdAttached) return;
    pc._lyrebirdAttached = true;
    pc.addEventListener('track', (e) => {
      if (e.track.kind !== 'audio') return;
      // Chromium decodes remote audio (and reports audioLevel / totalAudioEnergy) only when it
      // plays through a media element.
      const stream = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
      this.audioElement.srcObject = stream;
      this.audioElement.play().then(
        () => emit('remote_audio_playing'),
        (error) => emit('error', { detail: `remote audio play() failed: ${error}` }),
      );
    });
    pc.addEventListener('iceconnectionstatechange', () =>
      emit('ice_state', { state: pc.iceConnectionState }),
    );
    this.pollFirstAudio(session, pc, since);
  }

  // first_audio: the first moment getStats shows inbound audio packets. Polled every 5 ms from
  // the start of the call until seen or the session ends.
  pollFirstAudio(session, pc, since) {
    const poll = async () => {
      if (session.isEnded() || pc.signalingState === 'closed') return;
      try {
        const report = await pc.getStats();
        for (const stat of report.values()) {
          if (stat.type === 'inbound-rtp' && stat.kind === 'audio' && stat.packetsReceived > 0) {
            emit('first_audio', { packetsReceived: stat.packetsReceived, sinceMs: nowMs() - since });
            return;
          }
        }
      } catch (error) {
        // getStats on a closing connection rejects; the session end is reported separately.
        return;
      }
      setTimeout(poll, FIRST_AUDIO_POLL_MS);
    };
    setTimeout(poll, 0);
  }

  detachAudio() {
    if (this.audioElement) this.audioElement.srcObject = null;
  }

  call(target) {
    if (this.session && !this.session.isEnded()) {
      throw new Error('a call is already in progress');
    }
    const dialAt = nowMs();
    emit('dialing', { target, dialT: dialAt });
    const session = this.ua.call(target, {
      mediaConstraints: audioConstraints,
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
    this.session.answer({ mediaConstraints: audioConstraints, pcConfig });
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

  async stats() {
    const fields = {
      packetsReceived: 0,
      bytesReceived: 0,
      totalAudioEnergy: 0,
      audioLevel: 0,
      packetsSent: 0,
      codec: null,
    };
    const pc = this.session ? this.session.connection : null;
    if (!pc) return fields;
    const report = await pc.getStats();
    let codecId = null;
    for (const stat of report.values()) {
      if (stat.type === 'inbound-rtp' && stat.kind === 'audio') {
        fields.packetsReceived = stat.packetsReceived || 0;
        fields.bytesReceived = stat.bytesReceived || 0;
        fields.totalAudioEnergy = stat.totalAudioEnergy || 0;
        fields.audioLevel = stat.audioLevel || 0;
        codecId = stat.codecId || null;
      } else if (stat.type === 'outbound-rtp' && stat.kind === 'audio') {
        fields.packetsSent = stat.packetsSent || 0;
        codecId = codecId || stat.codecId || null;
      }
    }
    if (codecId && report.get(codecId)) {
      const codec = report.get(codecId);
      fields.codec = `${codec.mimeType}/${codec.clockRate}${codec.channels ? `/${codec.channels}` : ''}`;
    }
    return fields;
  }

  // One command from the driver. Failures become `error` events, never exceptions, so one bad
  // command cannot wedge the peer.
  async command(cmd) {
    try {
      switch (cmd.cmd) {
        case 'register':
          this.ua.register();
          break;
        case 'call':
          this.call(String(cmd.target));
          break;
        case 'answer':
          this.answer();
          break;
        case 'hangup':
          this.hangup();
          break;
        case 'message':
          this.message(String(cmd.target), String(cmd.body));
          break;
        case 'stats':
          emit('stats', await this.stats());
          break;
        case 'unregister':
          this.ua.unregister();
          break;
        default:
          emit('error', { detail: `unknown command ${JSON.stringify(cmd.cmd)}` });
      }
    } catch (error) {
      emit('error', { detail: `${cmd.cmd}: ${error && error.message ? error.message : error}` });
    }
  }

  stop() {
    if (this.ua) this.ua.stop();
  }
}

window.lyrebirdPeer = new Peer();
