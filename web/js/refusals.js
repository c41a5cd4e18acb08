// @ts-check
// Every error code the server sends (docs/protocol.md, "Errors"), and what the page says for
// each: the one list of them in the page. A test checks it against the protocol's table.
//
// Whether a refusal ends the session is decided by the socket, not by this list: only when
// the server closes the socket (with the code as the close reason) is the session over
// (signaling.js). Every other refusal is a notice to whoever acted, and they carry on.
//
// `closed`: the server may close the socket with this code (the table's "socket" column says
//   "closed"); what the page does then: connect again with backoff (`retry`), or end with a
//   screen (`title`, `text`; a null `text` shows the server's `message`, the therapist's own
//   words for `denied`).
// `notice`: what the person is told while the socket stays open; a function of the refusal
//   and of what they did (`acting`: `{type, name}` of their last message), or null for a
//   refusal that is not worth saying then.

/** @typedef {{ type: string, name: string | null } | null} Acting */
/** @typedef {{ code: string, message?: string }} Refusal */
// `joinHere`: the end screen offers "Join here instead" (the link is open elsewhere).
// `afterSession`: the session itself is over: a therapist finds the recordings there.
/** @typedef {{ title?: string, text?: string | null, retry?: boolean, joinHere?: boolean, afterSession?: boolean }} Closed */
/** @typedef {{ closed?: Closed, notice?: (msg: Refusal, acting: Acting) => string | null }} Entry */

// Messages (not refusals) after which the server closes the socket on purpose: the session is
// over for this page, and the socket does not connect again.
export const FINAL_MESSAGES = new Set(["ended", "denied", "left"]);

const CONNECT_TITLE = "We could not connect you";
const UNAVAILABLE =
  "The service is temporarily unavailable. We keep trying and will carry on as soon as it is back.";

/** @type {Record<string, Entry>} */
export const REFUSALS = {
  join_timeout: { closed: { retry: true } },
  invalid_token: {
    closed: {
      title: "This link does not work",
      text: "Please check that you opened the whole link you were sent, or ask for a new one.",
    },
  },
  token_expired: {
    closed: {
      title: "This link has expired",
      text: "The appointment window for this link has passed. Please ask for a new link.",
    },
  },
  token_not_yet_valid: {
    closed: {
      title: "It is a little early",
      text: "This link opens at the time of your appointment. Please come back then.",
    },
  },
  link_in_use: {
    closed: {
      title: "This link is already open",
      text: "It is open in another window or on another device. You can join here instead: your therapist will let you in from the waiting room, and the other window then closes. Your therapist has been told.",
      joinHere: true,
    },
  },
  room_ended: {
    closed: {
      title: "This session has ended",
      text: "Thank you. You can close this window.",
      afterSession: true,
    },
  },
  room_full: {
    // Closed: joining a room without a waiting room that is full. Open: admitting past it.
    closed: { title: "The room is full", text: "Please contact your therapist." },
    notice: (_msg, acting) =>
      acting?.type === "admit" && acting.name
        ? `The room is full: ${acting.name} is still waiting. Let someone leave first, or raise the room's client limit.`
        : "The room is full. Let someone leave first, or raise the room's client limit.",
  },
  replaced: {
    closed: {
      title: "Continued elsewhere",
      text: "This session continued in another window. You can close this one.",
    },
  },
  denied: { closed: { title: "You were not let in", text: null } },
  bad_message: {
    closed: { title: CONNECT_TITLE, text: "Please reload the page, or ask for a new link." },
    notice: () => "The server could not read something this page sent, so it did not go through. You can carry on.",
  },
  message_too_large: {
    notice: () => "That was too large to send, so it was not sent. Please send something shorter.",
  },
  chat_too_long: {
    notice: () => "That message is too long to send (2,000 characters at most), so it was not sent.",
  },
  not_allowed: {
    closed: { title: CONNECT_TITLE, text: "Please reload the page, or ask for a new link." },
    notice: () => "That cannot be done right now.",
  },
  forbidden: { notice: () => "Your link does not allow that." },
  not_found: {
    // A WebRTC signal to someone who has just left is harmless: nothing to say then.
    notice: (_msg, acting) => {
      const name = acting?.name || "That person";
      if (acting?.type === "allow") return `${name} is no longer among those turned away.`;
      if (acting?.type !== "admit" && acting?.type !== "deny") return null;
      return `${name} is no longer here.`;
    },
  },
  conflict: {
    notice: (_msg, acting) => {
      if (acting?.type === "admit" || acting?.type === "deny") {
        return `${acting.name || "That person"} was already let in or turned away: someone acted first.`;
      }
      if (acting?.type === "recording_request") return "A request to record is already open.";
      return "Someone acted on this first, so nothing changed.";
    },
  },
  recording_disabled: { notice: () => "Recording is off for this room." },
  recording_not_active: {
    notice: () => "Your part of the session could not be added to the recording. The call goes on.",
  },
  recording_codec_unsupported: {
    notice: () =>
      "This browser cannot send video in a format the recorder keeps, so your part is not being recorded. The call goes on.",
  },
  rate_limited: {
    notice: () => "You are sending too fast, so the last message was not sent. Please wait a moment and try again.",
  },
  too_many_connections: {
    closed: { retry: true },
    notice: () => "Too many connections from your network right now. We keep trying.",
  },
  service_unavailable: {
    // Closed for `join` (we keep trying) and for a place lost with the store (we join again).
    closed: { retry: true },
    notice: () => UNAVAILABLE,
  },
  internal_error: {
    notice: () => "Something went wrong on the server, so that did not go through. Please try again.",
  },
};

/**
 * What a refusal that closed the socket means: connect again, or the session is over.
 * @param {string} code
 * @returns {Closed | null}
 */
export function closedBy(code) {
  return Object.hasOwn(REFUSALS, code) ? REFUSALS[code].closed ?? null : null;
}

/**
 * The notice for a refusal while the socket stays open, or null when there is nothing to
 * say. An unknown code says the server's own words.
 * @param {Refusal} msg
 * @param {Acting} acting
 * @returns {string | null}
 */
export function noticeText(msg, acting) {
  const entry = Object.hasOwn(REFUSALS, msg.code) ? REFUSALS[msg.code] : null;
  if (!entry) return msg.message || "That did not go through.";
  if (!entry.notice) return null;
  return entry.notice(msg, acting);
}

/**
 * Whether the page says this refusal as a notice while the socket stays open.
 * @param {string} code
 */
export function isNotice(code) {
  return !Object.hasOwn(REFUSALS, code) || Boolean(REFUSALS[code].notice);
}
