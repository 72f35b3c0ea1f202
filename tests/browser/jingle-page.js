// The browser side of the Jingle reference peer: one stanza client in a Chromium page that makes
// and takes Jingle audio calls (XEP-0166/0167/0176/0320 over WebRTC, XEP-0353 to ring devices).
//
// Bundled by jingle-peer.mjs with esbuild (stanza is CommonJS and needs `events`; page-common.js
// is shared with page.js); the driver
// calls `lyrebirdJingle.start(options)` once and `lyrebirdJingle.command(cmd)` per stdin line.
// Everything is reported through `window.lyrebirdEmit(record)`, one JSON line on stdout, each
// with `t`: wall-clock ms since the epoch, comparable across pages, Node and the Rust tests.
//
// One call at a time (a fixture, not a phone). A call is either
//   - proposed (XEP-0353, what Conversations does to a bare JID): <propose/> to every device,
//     the callee's devices answer <ringing/>, one answers <proceed/>, then the caller sends
//     session-initiate to that device with the proposal id as the Jingle sid; or
//   - direct: session-initiate to a full JID, the callee answers session-info <ringing/>.

import { createClient, JID } from 'stanza';
import { NS_JINGLE_MESSAGE, defineJingleMessages } from './jingle-message.js';
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

// How long a callee that sent <proceed/> waits for the caller's session-initiate.
const PROCEED_TIMEOUT_MS = 30000;
const FIRST_AUDIO_POLL_MS = 10;

class JinglePeer {
  constructor() {
    this.client = null;
    this.options = null;
    this.audioElement = null;
    // The current call: { sid, peer, direction, via, stage, session, stream, since, ... }.
    this.call = null;
  }

  start(options) {
    this.options = options;
    this.audioElement = document.getElementById('remote-audio');
    const client = createClient({
      jid: options.jid,
      password: options.password,
      resource: options.resource || undefined,
      transports: { websocket: options.ws, bosh: false },
      // A restarted server should find the peer again, like a phone.
      autoReconnect: true,
      capsNode: 'https://lyrebird.invalid/jingle-peer',
      jingle: {
        // stanza's default is Google's public STUN server; tests stay on loopback, where host
        // candidates are all there is.
        iceServers: [],
        advertiseAudio: true,
        advertiseVideo: false,
        advertiseFileTransfer: false,
        trickleIce: true,
      },
    });
    this.client = client;
    defineJingleMessages(client.stanzas);
    // Conversations and Dino look for this feature before proposing a call (XEP-0353 §5).
    client.disco.addFeature(NS_JINGLE_MESSAGE);

    if (options.debug) {
      client.on('raw:incoming', (xml) => console.log(`<< ${xml}`));
      client.on('raw:outgoing', (xml) => console.log(`>> ${xml}`));
      client.jingle.on('log', (level, message) => console.log(`jingle ${level}: ${message}`));
    }
    client.on('session:started', () => this.onOnline());
    client.on('disconnected', () => emit('offline'));
    client.on('stream:error', (error) => emit('error', { detail: `stream error: ${JSON.stringify(error)}` }));
    client.on('auth:failed', () => emit('error', { detail: 'authentication failed' }));

    client.on('subscribe', (presence) => {
      // Auto-approve, so whoever adds this peer sees its presence and caps.
      client.acceptSubscription(JID.toBare(presence.from));
      emit('subscription_approved', { from: JID.toBare(presence.from) });
    });
    client.on('subscribed', (presence) => emit('subscribed', { from: JID.toBare(presence.from) }));
    client.on('available', (presence) =>
      emit('presence', {
        from: presence.from,
        type: 'available',
        show: presence.show || null,
        caps: presence.legacyCapabilities ? presence.legacyCapabilities.map((c) => c.node) : [],
      }),
    );
    client.on('unavailable', (presence) => emit('presence', { from: presence.from, type: 'unavailable' }));

    client.on('message', (message) => {
      if (message.jingleMessage && message.type !== 'error') this.onJingleMessage(message);
    });
    // A proposal to an account with no device online bounces (offline storage is off).
    client.on('message:error', (message) => this.onMessageError(message));
    client.on('jingle:incoming', (session) => this.onIncomingSession(session));
    client.on('jingle:ringing', (session) => this.onRinging(session.sid, session.peerID));
    client.on('jingle:accepted', (session) => {
      if (this.call && this.call.session === session) this.onActive('outgoing');
    });
    client.on('jingle:terminated', (session, reason) => this.onTerminated(session, reason));
    // stanza leaves a session pending forever when the peer answers its session-initiate (or
    // session-accept) with an IQ error other than tie-break / unknown-session: watch the errors
    // it processes, so such a call ends instead of hanging.
    const processJingle = client.jingle.process.bind(client.jingle);
    client.jingle.process = (request) => {
      processJingle(request);
      if (request.type === 'error') this.onJingleError(request);
    };
    client.jingle.on('peerTrackAdded', (session, track, stream) => {
      if (!this.call || this.call.session !== session || track.kind !== 'audio') return;
      play(this.audioElement, stream || new MediaStream([track]));
    });

    client.connect();
  }

  async onOnline() {
    const client = this.client;
    try {
      // RFC 6121: fetch the roster first so this resource is "interested" and gets roster
      // pushes and subscription state.
      await client.getRoster();
    } catch (error) {
      emit('error', { detail: `roster: ${errorText(error)}` });
    }
    client.updateCaps();
    // Entity capabilities in the presence let a caller see Jingle audio without asking.
    client.sendPresence({ legacyCapabilities: client.disco.getCaps() });
    emit('online', { jid: client.jid });
  }

  // ----------------------------------------------------------------- XEP-0353 signalling

  // Returns the message id.
  sendJingleMessage(to, jingleMessage) {
    // type=chat and a store hint, as Conversations sends them: the server archives them and
    // delivers a bare-JID message to every device.
    return this.client.sendMessage({ to, type: 'chat', jingleMessage, processingHints: { store: true } });
  }

  onJingleMessage(message) {
    const jm = message.jingleMessage;
    const from = message.from || '';
    const ownBare = JID.toBare(this.client.jid);
    const fromOwnAccount = JID.toBare(from) === ownBare;
    // Delayed (offline/archived) proposals are history, not calls.
    if (message.delay) {
      emit('jingle_message', { kind: jm.type, from, sid: jm.id, delayed: true });
      return;
    }
    const call = this.call;
    const current = call && call.sid === jm.id ? call : null;
    switch (jm.type) {
      case 'propose':
        if (from === this.client.jid) return;
        this.onProposal(from, jm);
        return;
      case 'ringing':
        if (current && current.direction === 'outgoing') this.onRinging(jm.id, from);
        return;
      case 'proceed':
        if (current && current.direction === 'outgoing' && current.stage === 'proposing' && !fromOwnAccount) {
          this.onProceed(current, from);
        } else if (current && current.direction === 'incoming' && fromOwnAccount && from !== this.client.jid) {
          this.endCall(current, { condition: 'success', text: 'answered on another device' }, 'remote');
        }
        return;
      case 'accept':
        // Another of our devices took the call.
        if (current && current.direction === 'incoming' && fromOwnAccount && from !== this.client.jid) {
          this.endCall(current, { condition: 'success', text: 'answered on another device' }, 'remote');
        }
        return;
      case 'reject':
        if (!current) return;
        if (current.direction === 'outgoing' && current.stage === 'proposing' && !fromOwnAccount) {
          this.endCall(current, jm.reason || { condition: 'decline' }, 'remote');
        } else if (current.direction === 'incoming' && fromOwnAccount && from !== this.client.jid) {
          this.endCall(current, jm.reason || { condition: 'decline', text: 'declined on another device' }, 'remote');
        }
        return;
      case 'retract':
        if (current && current.direction === 'incoming' && !current.session) {
          this.endCall(current, jm.reason || { condition: 'cancel' }, 'remote');
        }
        return;
      default:
        // <finish/> and whatever else: informational, the Jingle session-terminate ends calls.
        emit('jingle_message', { kind: jm.type, from, sid: jm.id, reason: jm.reason || null });
    }
  }

  onMessageError(message) {
    const call = this.call;
    if (!call || call.direction !== 'outgoing' || call.stage !== 'proposing') return;
    if (message.id !== call.proposeMessageId) return;
    const condition = message.error ? message.error.condition : 'unknown';
    this.endCall(call, { condition: 'connectivity-error', text: `proposal bounced: ${condition}` }, 'remote');
  }

  onProposal(from, jm) {
    const media = jm.media || [];
    if (this.call) {
      if (this.call.sid === jm.id) return;
      this.sendJingleMessage(from, { type: 'reject', id: jm.id, reason: { condition: 'busy' } });
      emit('incoming_rejected', { from, sid: jm.id, reason: 'busy' });
      return;
    }
    if (!media.includes('audio')) {
      this.sendJingleMessage(from, {
        type: 'reject',
        id: jm.id,
        reason: { condition: 'unsupported-applications', text: 'audio only' },
      });
      emit('incoming_rejected', { from, sid: jm.id, media, reason: 'unsupported-applications' });
      return;
    }
    this.call = {
      sid: jm.id,
      peer: from,
      direction: 'incoming',
      via: 'propose',
      stage: 'proposed',
      session: null,
      stream: null,
      since: nowMs(),
    };
    this.sendJingleMessage(from, { type: 'ringing', id: jm.id });
    emit('incoming', { from, sid: jm.id, media, via: 'propose' });
    if (this.options.autoAnswer) this.command({ cmd: 'answer' });
  }

  onRinging(sid, from) {
    const call = this.call;
    if (!call || call.sid !== sid || call.direction !== 'outgoing' || call.rang) return;
    call.rang = true;
    emit('ringing', { from, sid });
  }

  async onProceed(call, from) {
    call.stage = 'pending';
    call.peer = from;
    emit('proceed', { from, sid: call.sid });
    try {
      await this.initiate(call, from);
    } catch (error) {
      emit('error', { detail: `starting the session after proceed: ${errorText(error)}` });
      this.hangupCall(call);
    }
  }

  // session-initiate to a full JID with the call's sid.
  async initiate(call, to) {
    const stream = await this.localStream(call);
    if (this.call !== call) return;
    const session = this.client.jingle.createMediaSession(to, call.sid);
    this.attachSession(call, session);
    for (const track of stream.getTracks()) await session.addTrack(track, stream);
    this.preferCodecs(session.pc);
    await session.start();
  }

  // --codecs: offer/answer only these (by name, e.g. opus,PCMU), in this order. Without it,
  // Chromium's own list (opus, red, G722, PCMU, PCMA, CN, telephone-event).
  preferCodecs(pc) {
    const wanted = this.options.codecs;
    if (!wanted || wanted.length === 0) return;
    const available = RTCRtpReceiver.getCapabilities('audio').codecs;
    const codecs = wanted.flatMap((name) =>
      available.filter((codec) => codec.mimeType.toLowerCase() === `audio/${name.toLowerCase()}`),
    );
    if (codecs.length === 0) throw new Error(`none of the codecs ${wanted.join(',')} is available`);
    for (const transceiver of pc.getTransceivers()) {
      if (transceiver.receiver.track && transceiver.receiver.track.kind === 'audio') {
        transceiver.setCodecPreferences(codecs);
      }
    }
  }

  // ----------------------------------------------------------------- Jingle sessions

  onIncomingSession(session) {
    // For the set-up benchmark's breakdown of the answering side.
    emit('session_initiate', { sid: session.sid, from: session.peerID });
    const call = this.call;
    if (call && call.via === 'propose' && call.direction === 'incoming' && call.sid === session.sid) {
      if (call.stage !== 'proceeded' || session.peerID !== call.peer) {
        session.end({ condition: 'connectivity-error', text: 'unexpected session-initiate' });
        return;
      }
      // The user already answered (the <proceed/>): accept at once.
      clearTimeout(call.proceedTimer);
      this.attachSession(call, session);
      this.acceptSession(call);
      return;
    }
    if (call) {
      session.end({ condition: 'busy' });
      emit('incoming_rejected', { from: session.peerID, sid: session.sid, reason: 'busy' });
      return;
    }
    const media = [];
    if (session.includesAudio) media.push('audio');
    if (session.includesVideo) media.push('video');
    const fresh = {
      sid: session.sid,
      peer: session.peerID,
      direction: 'incoming',
      via: 'jingle',
      stage: 'pending',
      session: null,
      stream: null,
      since: nowMs(),
    };
    this.call = fresh;
    this.attachSession(fresh, session);
    session.ring();
    emit('incoming', { from: session.peerID, sid: session.sid, media, via: 'jingle' });
    if (this.options.autoAnswer) this.command({ cmd: 'answer' });
  }

  attachSession(call, session) {
    call.session = session;
    const pc = session.pc;
    // A callee's remote track arrives while stanza applies the offer, before the session is
    // handed to us: play what the connection already receives.
    playReceived(this.audioElement, pc);
    pc.addEventListener('iceconnectionstatechange', () =>
      emit('ice_state', { state: pc.iceConnectionState, sid: call.sid }),
    );
    // first_audio: the first moment getStats shows inbound audio packets, for set-up timing.
    pollFirstAudio(
      pc,
      FIRST_AUDIO_POLL_MS,
      () => this.call !== call,
      (packetsReceived) =>
        emit('first_audio', { sid: call.sid, packetsReceived, sinceMs: nowMs() - call.since }),
    );
  }

  async acceptSession(call) {
    const session = call.session;
    try {
      const stream = await this.localStream(call);
      if (this.call !== call) return;
      for (const track of stream.getTracks()) await session.addTrack(track, stream);
      this.preferCodecs(session.pc);
      await session.accept();
      emit('answer_sent', { sid: call.sid });
      if (this.call === call && session.state === 'active') this.onActive('incoming');
    } catch (error) {
      emit('error', { detail: `accepting: ${errorText(error)}` });
      this.hangupCall(call);
    }
  }

  onActive(direction) {
    const call = this.call;
    if (!call || call.stage === 'active') return;
    call.stage = 'active';
    emit('accepted', { direction, sid: call.sid, peer: call.peer, via: call.via });
  }

  onTerminated(session, reason) {
    const call = this.call;
    if (!call || call.session !== session) return;
    const by = call.endingLocally ? 'local' : 'remote';
    this.endCall(call, reason || {}, by);
  }

  // An IQ error the peer answered one of our Jingle requests with (the plugin copies the
  // request's jingle element, with its action, into the error when the reply has none).
  onJingleError(response) {
    const jingle = response.jingle || {};
    const condition = response.error ? response.error.condition : null;
    emit('jingle_error', { sid: jingle.sid || null, action: jingle.action || null, condition, from: response.from });
    const call = this.call;
    if (!call || !call.session || call.session.sid !== jingle.sid || call.session.state === 'ended') return;
    if (jingle.action !== 'session-initiate' && jingle.action !== 'session-accept') return;
    // The peer refused the session: nothing to terminate on its side, but a proposed call
    // is still open there (it sent <proceed/>): close it the XEP-0353 way.
    const reason = { condition: 'failed-application', text: `${jingle.action} refused: ${condition}` };
    this.endCall(call, reason, 'remote', true);
    if (call.via === 'propose') this.sendJingleMessage(call.peer, { type: 'finish', id: call.sid, reason });
  }

  // `silent`: do not send session-terminate (the peer has no session to end).
  endCall(call, reason, by, silent = false) {
    if (this.call !== call) return;
    this.call = null;
    clearTimeout(call.proceedTimer);
    if (call.session && call.session.state !== 'ended') {
      call.endingLocally = true;
      call.session.end(reason.condition || 'success', silent);
    }
    // Conversations tells the other device how a proposed call ended (XEP-0353 <finish/>).
    if (call.via === 'propose' && call.session && by === 'local') {
      this.sendJingleMessage(call.peer, {
        type: 'finish',
        id: call.sid,
        reason: { condition: reason.condition || 'success' },
      });
    }
    if (call.stream) for (const track of call.stream.getTracks()) track.stop();
    if (this.audioElement) this.audioElement.srcObject = null;
    emit('ended', {
      sid: call.sid,
      peer: call.peer,
      reason: reason.condition || null,
      text: reason.text || null,
      by,
    });
  }

  // Ends the current call in whatever stage it is, the way a person's hang-up would.
  hangupCall(call) {
    if (!call || this.call !== call) return;
    call.endingLocally = true;
    if (call.session && call.session.state !== 'ended') {
      const pending = call.session.state === 'pending' || call.session.state === 'starting';
      const condition = pending ? (call.direction === 'outgoing' ? 'cancel' : 'decline') : 'success';
      this.endCall(call, { condition }, 'local');
      return;
    }
    if (call.direction === 'outgoing') {
      // Still proposing: withdraw the proposal from every device.
      this.sendJingleMessage(call.peer, { type: 'retract', id: call.sid, reason: { condition: 'cancel' } });
      this.endCall(call, { condition: 'cancel' }, 'local');
    } else {
      this.rejectProposal(call);
    }
  }

  rejectProposal(call) {
    this.sendJingleMessage(call.peer, { type: 'reject', id: call.sid, reason: { condition: 'decline' } });
    // Our other devices stop ringing.
    this.sendJingleMessage(JID.toBare(this.client.jid), { type: 'reject', id: call.sid });
    this.endCall(call, { condition: 'decline' }, 'local');
  }

  async localStream(call) {
    if (!call.stream) call.stream = await navigator.mediaDevices.getUserMedia(audioConstraints);
    return call.stream;
  }

  // ----------------------------------------------------------------- Media

  async stats() {
    const fields = {
      sid: this.call ? this.call.sid : null,
      stage: this.call ? this.call.stage : null,
      ...noAudioStats(),
      iceState: null,
      candidatePairState: null,
      localCandidateType: null,
      remoteCandidateType: null,
      localAddress: null,
      remoteAddress: null,
    };
    const pc = this.call && this.call.session ? this.call.session.pc : null;
    if (!pc) return fields;
    fields.iceState = pc.iceConnectionState;
    const report = await pc.getStats();
    const pairId = readAudioStats(report, fields);
    const pair = pairId ? report.get(pairId) : null;
    if (pair) {
      fields.candidatePairState = pair.state || null;
      const local = report.get(pair.localCandidateId);
      const remote = report.get(pair.remoteCandidateId);
      if (local) {
        fields.localCandidateType = local.candidateType || null;
        fields.localAddress = `${local.address || local.ip}:${local.port}/${local.protocol}`;
      }
      if (remote) {
        fields.remoteCandidateType = remote.candidateType || null;
        fields.remoteAddress = `${remote.address || remote.ip}:${remote.port}/${remote.protocol}`;
      }
    }
    return fields;
  }

  // ----------------------------------------------------------------- Commands

  dial(to) {
    if (this.call) throw new Error('a call is already in progress');
    const full = Boolean(JID.getResource(to));
    const sid = this.client.nextId();
    const call = {
      sid,
      peer: to,
      direction: 'outgoing',
      via: full ? 'jingle' : 'propose',
      stage: full ? 'pending' : 'proposing',
      session: null,
      stream: null,
      since: nowMs(),
    };
    this.call = call;
    emit('dialing', { to, sid, via: call.via });
    if (!full) {
      call.proposeMessageId = this.sendJingleMessage(to, { type: 'propose', id: sid, media: ['audio'] });
      // The microphone is opened meanwhile, as a phone would, so proceed → initiate is quick.
      this.localStream(call).catch((error) => emit('error', { detail: `getUserMedia: ${errorText(error)}` }));
      return;
    }
    this.initiate(call, to)
      .catch((error) => {
        emit('error', { detail: `calling ${to}: ${errorText(error)}` });
        this.hangupCall(call);
      });
  }

  answer() {
    const call = this.call;
    if (!call || call.direction !== 'incoming') throw new Error('no incoming call to answer');
    if (call.via === 'propose') {
      if (call.stage !== 'proposed') throw new Error(`cannot answer in stage ${call.stage}`);
      call.stage = 'proceeded';
      this.sendJingleMessage(call.peer, { type: 'proceed', id: call.sid });
      // Our other devices stop ringing (XEP-0353: <accept/> to our own bare JID).
      this.sendJingleMessage(JID.toBare(this.client.jid), { type: 'accept', id: call.sid });
      this.localStream(call).catch((error) => emit('error', { detail: `getUserMedia: ${errorText(error)}` }));
      call.proceedTimer = setTimeout(() => {
        if (this.call === call && !call.session) {
          this.endCall(call, { condition: 'timeout', text: 'no session-initiate after proceed' }, 'local');
        }
      }, PROCEED_TIMEOUT_MS);
      return;
    }
    if (call.stage !== 'pending' || !call.session) throw new Error(`cannot answer in stage ${call.stage}`);
    call.stage = 'accepting';
    this.acceptSession(call);
  }

  reject() {
    const call = this.call;
    if (!call || call.direction !== 'incoming') throw new Error('no incoming call to reject');
    if (call.session) {
      call.endingLocally = true;
      this.endCall(call, { condition: 'decline' }, 'local');
    } else {
      this.rejectProposal(call);
    }
  }

  async disco(jid) {
    const info = await this.client.getDiscoInfo(jid);
    emit('disco_info', {
      jid,
      features: info.features || [],
      identities: (info.identities || []).map((i) => `${i.category}/${i.type}`),
    });
  }

  // One command from the driver (see runCommand).
  async command(cmd) {
    await runCommand(cmd, {
      call: () => this.dial(String(cmd.to)),
      answer: () => this.answer(),
      reject: () => this.reject(),
      hangup: () => {
        if (!this.call) throw new Error('no call to hang up');
        this.hangupCall(this.call);
      },
      stats: async () => emit('stats', await this.stats()),
      add_contact: async () => {
        const jid = JID.toBare(String(cmd.jid));
        await this.client.updateRosterItem({ jid, name: cmd.name || undefined });
        this.client.subscribe(jid);
        emit('contact_added', { jid });
      },
      disco: () => this.disco(String(cmd.jid)),
    });
  }

  async stop() {
    if (this.call) this.hangupCall(this.call);
    if (!this.client) return;
    this.client.config.autoReconnect = false;
    this.client.sendPresence({ type: 'unavailable' });
    await this.client.disconnect();
  }
}

window.lyrebirdJingle = new JinglePeer();
