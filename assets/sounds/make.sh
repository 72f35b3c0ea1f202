#!/bin/sh
# Regenerates the call sounds from nothing but sox (no recorded material, no third-party audio).
# Every file: 16 kHz, mono, signed 16-bit PCM WAV; each is one cycle the UI loops.
set -eu
cd "$(dirname "$0")"
fmt="-r 16000 -c 1 -b 16 -e signed-integer"
# Ringtone (2 s): two rising two-note chimes (G5 then B5, 0.2 s each, soft fades), then a pause.
sox -n -r 16000 -p synth 0.2 sine 784 sine 1568 remix - fade q 0.01 0.2 0.08 gain -6 > /tmp/lyrebird-g.sox
sox -n -r 16000 -p synth 0.2 sine 988 sine 1976 remix - fade q 0.01 0.2 0.08 gain -6 > /tmp/lyrebird-b.sox
sox /tmp/lyrebird-g.sox /tmp/lyrebird-b.sox /tmp/lyrebird-g.sox /tmp/lyrebird-b.sox $fmt ringtone.wav \
    norm -3 pad 0 1.2
rm -f /tmp/lyrebird-g.sox /tmp/lyrebird-b.sox
# Ringback (5 s): 425 Hz, 1 s on, 4 s off (the ETSI/CEPT ringing tone, one cadence).
sox -n $fmt ringback.wav synth 1 sine 425 fade q 0.005 1 0.005 gain -9 pad 0 4
# Busy (1 s): 425 Hz, 0.5 s on, 0.5 s off.
sox -n $fmt busy.wav synth 0.5 sine 425 fade q 0.005 0.5 0.005 gain -9 pad 0 0.5
