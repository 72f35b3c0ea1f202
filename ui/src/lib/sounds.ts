// Ringtone and call-progress tones from the repository's assets/sounds (bundled by Vite as
// separate files: the CSP allows media from 'self').
import ringtoneUrl from "../../../assets/sounds/ringtone.wav";
import ringbackUrl from "../../../assets/sounds/ringback.wav";
import busyUrl from "../../../assets/sounds/busy.wav";
import callWaitingUrl from "../../../assets/sounds/call-waiting.wav";

export type Tone = "ringtone" | "call-waiting" | "ringback" | "busy" | null;

const URLS: Record<Exclude<Tone, null>, string> = {
  ringtone: ringtoneUrl,
  "call-waiting": callWaitingUrl,
  ringback: ringbackUrl,
  busy: busyUrl,
};

let current: Tone = null;
let element: HTMLAudioElement | null = null;

/** Plays `tone` (looping, except busy which plays once), or stops when null. */
export function playTone(tone: Tone): void {
  if (tone === current) return;
  current = tone;
  if (element) {
    element.pause();
    element = null;
  }
  if (tone === null || typeof Audio === "undefined") return;
  let audio: HTMLAudioElement;
  try {
    audio = new Audio(URLS[tone]);
    audio.loop = tone !== "busy";
    element = audio;
    // Autoplay rules or a missing audio backend must not break the call screen.
    void audio.play()?.catch(() => undefined);
  } catch {
    return;
  }
  if (tone === "busy") {
    audio.addEventListener("ended", () => {
      if (current === "busy") current = null;
    });
  }
}
