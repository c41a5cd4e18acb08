// @ts-check
// What this browser must have for a session, checked when the page loads, before anything is
// asked of it (no camera prompt, no socket): a WebSocket for everyone, and for a link that
// takes part in audio and video also RTCPeerConnection and getUserMedia. Some browsers have
// none of WebRTC (Debian's WebKitGTK and WPE builds, some embedded views); without this check
// the page would let the person wait and then fail with nothing on screen.

/**
 * @typedef {{ title: string, text: string, browsers: string[], note: string, chat: boolean }} Words
 * `chat`: the page can still offer to continue with chat only (it can connect and receive the
 * call, only not send a camera or microphone).
 */

const UNTOUCHED = "Your camera and microphone have not been used.";

/** What the page says when this browser cannot take part: which browsers do, and what to do. */
export const UNSUPPORTED = {
  title: "Please open your link in another browser",
  text:
    "This browser cannot make video calls, so your session cannot start here. Please open " +
    "the same link from your message in a current version of one of these browsers, on this " +
    "device or another one:",
  browsers: ["Chrome", "Edge", "Firefox", "Safari"],
  note: UNTOUCHED,
  chat: false,
};

/** The browser can make the call but cannot reach a camera: it can still take part by chat. */
export const NO_CAMERA = {
  title: "Please open your link in another browser",
  text:
    "This browser cannot use a camera or microphone, so nobody in your session could see or " +
    "hear you. To be seen and heard, please open the same link from your message in a current " +
    "version of one of these browsers, on this device or another one:",
  browsers: ["Chrome", "Edge", "Firefox", "Safari"],
  note:
    "Or continue here with chat only: you will see and hear your therapist and can type to " +
    "them. " +
    UNTOUCHED,
  chat: true,
};

/** The camera is missing only because the page is not on https: no browser would help. */
export const INSECURE = {
  title: "This link needs a secure connection",
  text:
    "Browsers let a page use your camera and microphone only over a secure connection, and " +
    "this page was opened without one. Please tell your therapist or practice, so that they " +
    "can send you a link that starts with https.",
  browsers: [],
  note:
    "Or continue here with chat only: you will see and hear your therapist and can type to " +
    "them. " +
    UNTOUCHED,
  chat: true,
};

/**
 * The features this browser lacks for this link, by the names developers know them by.
 * @param {Window & typeof globalThis} win
 * @param {boolean} media the link takes part in audio and video (not chat only)
 * @returns {string[]} empty when the session can run here
 */
export function missingFeatures(win, media) {
  const missing = [];
  if (typeof win.WebSocket !== "function") missing.push("WebSocket");
  if (media) {
    if (typeof win.RTCPeerConnection !== "function") missing.push("RTCPeerConnection");
    if (typeof win.navigator.mediaDevices?.getUserMedia !== "function") missing.push("getUserMedia");
  }
  return missing;
}

/**
 * What to tell the person, or null when nothing is missing.
 * @param {Window & typeof globalThis} win
 * @param {boolean} media
 * @returns {(Words & { missing: string[] }) | null}
 */
export function supportProblem(win, media) {
  const missing = missingFeatures(win, media);
  if (missing.length === 0) return null;
  // On plain http (other than localhost) every browser hides the camera: saying "use another
  // browser" would send the person round in circles.
  const onlyCamera = missing.length === 1 && missing[0] === "getUserMedia";
  const words = onlyCamera ? (win.isSecureContext ? NO_CAMERA : INSECURE) : UNSUPPORTED;
  return { ...words, missing };
}
