// @ts-check
// The chat panel. Chat lives in this page's memory only, never in web storage (Chromium
// writes even sessionStorage to the profile on disk): a reload starts with an empty chat.
import { $ } from "./dom.js";

/**
 * @typedef {object} ChatOptions
 * @property {(message: object) => void} send sends a message to the server
 * @property {(text: string) => void} announce says something to a screen reader
 * @property {(id: string) => string | undefined} nameOf the name of someone in the call now
 */

export class Chat {
  /** @param {ChatOptions} options */
  constructor({ send, announce, nameOf }) {
    this.send = send;
    this.announce = announce;
    this.nameOf = nameOf;
    this.unread = 0;
    this.seq = 0;
    this.noteShown = false;
    /** @type {Map<string, string>} participant id -> name, kept after they leave ("Not delivered") */
    this.names = new Map();
  }

  /**
   * Someone's name, for the messages that may name them after they left.
   * @param {string} id
   * @param {string} name
   */
  remember(id, name) {
    this.names.set(id, name);
  }

  wire() {
    $("toggle-chat").addEventListener("click", () => {
      if ($("chat-panel").hidden) this.open(true);
      else {
        $("chat-panel").hidden = true;
        $("toggle-chat").setAttribute("aria-pressed", "false");
      }
    });
    $("chat-form").addEventListener("submit", (/** @type {SubmitEvent} */ e) => {
      e.preventDefault();
      const input = $("chat-input");
      const text = input.value.trim();
      if (!text) return;
      // An id of this page's own: a recipient who never gets the message is named with it.
      const id = `c-${Date.now().toString(36)}-${++this.seq}`;
      this.send({ type: "chat", text, id });
      this.append("You", text, id);
      input.value = "";
    });
    $("chat-input").addEventListener("keydown", (/** @type {KeyboardEvent} */ e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        $("chat-form").requestSubmit();
      }
    });
  }

  /** @param {boolean} focus */
  open(focus) {
    $("chat-panel").hidden = false;
    $("toggle-chat").setAttribute("aria-pressed", "true");
    this.unread = 0;
    $("toggle-chat").textContent = "Chat";
    if (focus) $("chat-input").focus();
  }

  /**
   * @param {string} who
   * @param {string} text
   * @param {string} [id]
   */
  append(who, text, id = "") {
    const item = document.createElement("li");
    if (id) item.dataset.chatId = id;
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = `${who}:`;
    item.append(name, document.createTextNode(text));
    $("chat-log").append(item);
    item.scrollIntoView({ block: "nearest" });
  }

  /**
   * One of our messages never reached someone (they left, or their connection did not come
   * back in time): said calmly beside it, once per person.
   * @param {{ to: string, id: string }} msg
   */
  undelivered(msg) {
    const name = this.names.get(msg.to) || "Participant";
    const text = `Not delivered: ${name} had left`;
    const sent = [...$("chat-log").children].find((li) => li.dataset.chatId === msg.id);
    const note = document.createElement("span");
    note.className = "chat-undelivered";
    note.textContent = text;
    if (sent) sent.append(note);
    else this.appendNote(text);
    this.announce(`${text}.`);
  }

  /** Once, after a reload: the chat of before is gone on purpose. */
  notKept() {
    if (this.noteShown) return;
    this.noteShown = true;
    this.appendNote("Earlier messages are not kept, for privacy.");
  }

  /** @param {string} text */
  appendNote(text) {
    const item = document.createElement("li");
    item.className = "chat-note";
    item.textContent = text;
    $("chat-log").append(item);
  }

  /** @param {{ from: string, text: string }} msg */
  received(msg) {
    const name = this.nameOf(msg.from) || "Participant";
    this.append(name, msg.text);
    if ($("chat-panel").hidden) {
      this.unread += 1;
      $("toggle-chat").textContent = `Chat (${this.unread} new)`;
      this.announce(`New message from ${name}.`);
    }
  }
}
