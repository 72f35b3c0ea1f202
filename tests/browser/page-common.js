// What the two reference pages share (page.js: JsSIP; jingle-page.js: stanza), bundled into each
// by esbuild: the event channel to the Node driver and the audio side of a call.

// Wall-clock milliseconds since the Unix epoch with sub-millisecond resolution, comparable
// across pages, Node and the Rust tests.
export const nowMs = () => performance.timeOrigin + performance.now();

// Reports an event through the function the driver exposes (one JSON line on its stdout).
export function emit(event, fields = {}) {
  const record = { event, t: nowMs(), ...fields };
  try {
    window.lyrebirdEmit(record);
  } catch (error) {
    console.error('lyrebirdEmit failed', error);
  }
}

export const errorText = (error) => (error && error.message ? error.message : String(error));

// One command from the driver, run by `handlers[cmd.cmd]` (which may be async). Failures and
// unknown commands become `error` events, never exceptions, so one bad command cannot wedge the
// peer.
export async function runCommand(cmd, handlers) {
  try {
    if (!Object.hasOwn(handlers, cmd.cmd)) {
      emit('error', { detail: `unknown command ${JSON.stringify(cmd.cmd)}` });
      return;
    }
    await handlers[cmd.cmd]();
  } catch (error) {
    emit('error', { detail: `${cmd.cmd}: ${errorText(error)}` });
  }
}

// Raw capture: echo cancellation, noise suppression and gain control would alter the speech
// that quality tests compare.
export const audioConstraints = {
  audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  video: false,
};

// Plays `stream` through `element`: Chromium decodes remote audio (and reports audioLevel /
// totalAudioEnergy) only when it plays through a media element.
export function play(element, stream) {
  element.srcObject = stream;
  element.play().then(
    () => emit('remote_audio_playing'),
    (error) => emit('error', { detail: `remote audio play() failed: ${error}` }),
  );
}

// Plays what a connection already receives, if anything.
export function playReceived(element, pc) {
  const tracks = pc
    .getReceivers()
    .map((receiver) => receiver.track)
    .filter((track) => track && track.kind === 'audio');
  if (tracks.length > 0) play(element, new MediaStream(tracks));
}

// first_audio: the first moment getStats shows inbound audio packets. Polls `pc` every
// `intervalMs` until `over()` or the connection closes; `found(packetsReceived)` reports it.
export function pollFirstAudio(pc, intervalMs, over, found) {
  const poll = async () => {
    if (over() || pc.signalingState === 'closed') return;
    try {
      const report = await pc.getStats();
      for (const stat of report.values()) {
        if (stat.type === 'inbound-rtp' && stat.kind === 'audio' && stat.packetsReceived > 0) {
          found(stat.packetsReceived);
          return;
        }
      }
    } catch (error) {
      // getStats on a closing connection rejects; the call's end is reported separately.
      return;
    }
    setTimeout(poll, intervalMs);
  };
  setTimeout(poll, 0);
}

// The audio counters and codec of a `stats` event before any media (readAudioStats fills them).
export const noAudioStats = () => ({
  videoFramesDecoded: 0,
  videoWidth: 0,
  videoHeight: 0,
  videoFramesEncoded: 0,
  packetsReceived: 0,
  bytesReceived: 0,
  totalAudioEnergy: 0,
  audioLevel: 0,
  packetsSent: 0,
  codec: null,
});

// Fills the audio counters and codec of `fields` (see noAudioStats) from a getStats `report`;
// returns the id of the selected candidate pair, if any.
export function readAudioStats(report, fields) {
  let codecId = null;
  let pairId = null;
  for (const stat of report.values()) {
    if (stat.type === 'inbound-rtp' && stat.kind === 'audio') {
      fields.packetsReceived = stat.packetsReceived || 0;
      fields.bytesReceived = stat.bytesReceived || 0;
      fields.totalAudioEnergy = stat.totalAudioEnergy || 0;
      fields.audioLevel = stat.audioLevel || 0;
      codecId = stat.codecId || null;
    } else if (stat.type === 'inbound-rtp' && stat.kind === 'video') {
      fields.videoFramesDecoded = stat.framesDecoded || 0;
      fields.videoWidth = stat.frameWidth || 0;
      fields.videoHeight = stat.frameHeight || 0;
    } else if (stat.type === 'outbound-rtp' && stat.kind === 'video') {
      fields.videoFramesEncoded = stat.framesEncoded || 0;
    } else if (stat.type === 'outbound-rtp' && stat.kind === 'audio') {
      fields.packetsSent = stat.packetsSent || 0;
      codecId = codecId || stat.codecId || null;
    } else if (stat.type === 'transport' && stat.selectedCandidatePairId) {
      pairId = stat.selectedCandidatePairId;
    }
  }
  if (codecId && report.get(codecId)) {
    const codec = report.get(codecId);
    fields.codec = `${codec.mimeType}/${codec.clockRate}${codec.channels ? `/${codec.channels}` : ''}`;
  }
  return pairId;
}
