// @ts-check
// A peer's tile in the call: its name, its video and sound, and the words on it (camera off,
// muted, connection quality, chat only). The words for each are here, once.
import { $ } from "./dom.js";

/** What the connection indicator and a peer's tile say for each quality. */
export const QUALITY_TEXT = {
  connecting: "Connecting",
  connected: "Connected",
  poor: "Poor connection",
  reconnecting: "Reconnecting…",
};

// A peer with no audio and video between us (its link or ours is chat only): its tile says
// so, calmly, instead of "Connecting".
const CHAT_ONLY = "Chat only";

/** @typedef {{ audio: boolean, video: boolean, wantsVideo: boolean }} Remote */

/**
 * A new tile for a peer, added to the call's grid.
 * @param {{ id: string, name: string }} info
 * @param {string | null} speakerId the speaker chosen before joining, if any
 * @returns {HTMLElement}
 */
export function newTile(info, speakerId) {
  const tile = $("peer-template").content.firstElementChild.cloneNode(true);
  tile.dataset.peerId = info.id;
  nameTile(tile, info.name);
  tile.querySelector("video").muted = true; // sound plays through the <audio> element
  if (speakerId) tile.querySelector("audio").setSinkId?.(speakerId);
  $("peers").append(tile);
  return tile;
}

/**
 * @param {HTMLElement} tile
 * @param {string} name
 */
export function nameTile(tile, name) {
  tile.querySelector(".peer-name").textContent = name;
  tile.querySelector("video").setAttribute("aria-label", `Video of ${name}`);
}

/**
 * The tile of a peer with no audio or video between us: its name and "Chat only".
 * @param {HTMLElement} tile
 */
export function chatTile(tile) {
  tile.dataset.quality = "chat";
  tile.dataset.media = "false";
  /** @type {HTMLElement} */ (tile.querySelector("video")).hidden = true;
  /** @type {HTMLElement} */ (tile.querySelector("audio")).hidden = true;
  const note = /** @type {HTMLElement} */ (tile.querySelector(".peer-off"));
  note.textContent = CHAT_ONLY;
  note.hidden = false;
  const line = /** @type {HTMLElement} */ (tile.querySelector(".peer-quality"));
  line.hidden = true;
  line.textContent = ""; // never "Connecting"
}

/**
 * Whether the peer's video shows, and if not, why.
 * @param {HTMLElement} tile
 * @param {Remote} remote what the peer sends
 * @param {boolean} audioOnly this person chose audio only
 */
export function videoNote(tile, remote, audioOnly) {
  const off = /** @type {HTMLElement} */ (tile.querySelector(".peer-off"));
  off.hidden = remote.video && !audioOnly;
  off.textContent = audioOnly ? "Video paused (audio only)" : "Camera is off";
}

/**
 * The peer's microphone and camera state, as the peer told it.
 * @param {HTMLElement} tile
 * @param {Remote} remote
 * @param {boolean} audioOnly
 */
export function remoteNote(tile, remote, audioOnly) {
  /** @type {HTMLElement} */ (tile.querySelector(".peer-muted")).hidden = remote.audio;
  videoNote(tile, remote, audioOnly);
}

/**
 * The connection's quality on a tile with media between us.
 * @param {HTMLElement} tile
 * @param {keyof typeof QUALITY_TEXT} quality
 */
export function qualityNote(tile, quality) {
  tile.dataset.quality = quality;
  tile.querySelector(".peer-quality").textContent = QUALITY_TEXT[quality];
}

/**
 * A chat-only peer's socket away: said on its tile, not counted by the indicator.
 * @param {HTMLElement} tile
 * @param {boolean} away
 */
export function chatPeerAway(tile, away) {
  const line = /** @type {HTMLElement} */ (tile.querySelector(".peer-quality"));
  line.hidden = !away;
  line.textContent = QUALITY_TEXT.reconnecting;
}
