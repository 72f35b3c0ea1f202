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
# Call waiting (4 s): 425 Hz, 0.2 s on, 0.2 s off, 0.2 s on, then a pause (ITU-T E.180's
# call-waiting cadence), quieter than the ringtone: it plays over a call in progress.
sox -n -r 16000 -p synth 0.2 sine 425 fade q 0.005 0.2 0.005 gain -18 > /tmp/lyrebird-cw.sox
sox /tmp/lyrebird-cw.sox -p pad 0 0.2 > /tmp/lyrebird-cw-gap.sox
sox /tmp/lyrebird-cw-gap.sox /tmp/lyrebird-cw.sox $fmt call-waiting.wav pad 0 3.4
rm -f /tmp/lyrebird-cw.sox /tmp/lyrebird-cw-gap.sox
# Music on hold (8 s, looped while we hold a call): a slow arpeggio over C, A minor, F and G,
# each chord four 0.5 s notes with soft attacks and long releases, quiet enough to talk over.
notes="523 659 784 659  440 523 659 523  349 440 523 440  392 494 587 494"
parts=""
i=0
for hz in $notes; do
    sox -n -r 16000 -p synth 0.5 sine "$hz" sine "$((hz * 2))" remix - \
        fade q 0.03 0.5 0.3 gain -12 > "/tmp/lyrebird-moh-$i.sox"
    parts="$parts /tmp/lyrebird-moh-$i.sox"
    i=$((i + 1))
done
# shellcheck disable=SC2086
sox $parts $fmt hold-music.wav norm -9
rm -f /tmp/lyrebird-moh-*.sox
