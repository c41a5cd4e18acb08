// @ts-check
// The therapist's waiting list, and those turned away this session. Updated in place, so that
// an update (someone's connection flickering) never moves keyboard focus or loses a
// half-typed deny message.
import { $ } from "./dom.js";
import { minutesText } from "./screens.js";

/**
 * @typedef {object} LobbyOptions
 * @property {(message: object) => void} send sends a message to the server
 * @property {(text: string) => void} announce says something to a screen reader
 */

/** @typedef {{ id: string, name: string, since: number, connected: boolean, media?: boolean, new_device?: boolean }} Waiting */
/** @typedef {{ id: string, name: string, at: number }} Denied */

export class Lobby {
  /** @param {LobbyOptions} options */
  constructor({ send, announce }) {
    this.send = send;
    this.announce = announce;
  }

  /**
   * The name of someone on the waiting list, if they are on it.
   * @param {string} id
   * @returns {string | null}
   */
  nameOf(id) {
    const item = document.querySelector(`.lobby-item[data-participant-id="${CSS.escape(id)}"]`);
    return item?.querySelector(".lobby-name")?.textContent || null;
  }

  /** How long each has waited, said again. */
  tick() {
    for (const item of $("lobby-list").children) this.since(item);
  }

  /** @param {HTMLElement} item */
  since(item) {
    const waited = minutesText(Date.now() / 1000 - Number(item.dataset.since));
    item.querySelector(".lobby-since").textContent =
      item.dataset.connected === "true" ? `Waiting ${waited}` : `Reconnecting (waiting ${waited})`;
  }

  /**
   * @param {Waiting} person
   * @returns {HTMLElement}
   */
  item(person) {
    const item = $("lobby-item-template").content.firstElementChild.cloneNode(true);
    item.dataset.participantId = person.id;
    item.querySelector(".lobby-name").textContent = person.name;
    item.querySelector(".lobby-media").hidden = person.media !== false;
    item.querySelector(".admit").setAttribute("aria-label", `Admit ${person.name}`);
    item.querySelector(".deny").setAttribute("aria-label", `Deny ${person.name}`);
    item.querySelector(".admit").addEventListener("click", () => {
      this.send({ type: "admit", participant: person.id });
    });
    const form = item.querySelector(".deny-form");
    item.querySelector(".deny").addEventListener("click", () => {
      form.hidden = false;
      form.querySelector(".deny-message").focus();
    });
    item.querySelector(".deny-cancel").addEventListener("click", () => {
      form.hidden = true;
      item.querySelector(".deny").focus();
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const note = form.querySelector(".deny-message").value.trim();
      this.send({ type: "deny", participant: person.id, message: note });
    });
    return item;
  }

  // Updates the list in place, so that an update (someone's connection flickering) never
  // moves keyboard focus or loses a half-typed deny message.
  /** @param {Waiting[]} waiting */
  render(waiting) {
    const list = $("lobby-list");
    const items = new Map([...list.children].map((li) => [li.dataset.participantId, li]));
    const focused = document.activeElement?.closest?.(".lobby-item") ?? null;
    const order = [...items.keys()];
    const ids = new Set(waiting.map((p) => p.id));
    for (const [id, item] of items) {
      if (ids.has(id)) continue;
      if (item === focused) {
        // Focus goes to the next person waiting, or to the list's heading.
        const next = order.slice(order.indexOf(id) + 1).find((other) => ids.has(other));
        if (next) {
          items.get(next).querySelector(".admit").focus();
        } else {
          $("lobby-title").tabIndex = -1;
          $("lobby-title").focus();
        }
      }
      item.remove();
    }
    for (const person of waiting) {
      let item = items.get(person.id);
      if (!item) {
        item = this.item(person);
        list.append(item);
        this.announce(
          person.new_device
            ? `${person.name} is waiting, joining from a new device.`
            : `${person.name} is waiting.`,
        );
      }
      item.dataset.since = String(person.since);
      item.dataset.connected = String(person.connected);
      item.dataset.newDevice = String(person.new_device === true);
      item.querySelector(".lobby-new-device").hidden = person.new_device !== true;
      this.since(item);
    }
    $("lobby-empty").hidden = waiting.length > 0;
  }

  // Those turned away this session (their link stays closed), each with "Allow again".
  /**
   * @param {Denied} person
   * @returns {HTMLElement}
   */
  deniedItem(person) {
    const item = $("denied-item-template").content.firstElementChild.cloneNode(true);
    item.dataset.participantId = person.id;
    item.querySelector(".denied-name").textContent = person.name;
    const at = new Date(Number(person.at) * 1000);
    item.querySelector(".denied-at").textContent =
      `Not let in at ${at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
    const button = item.querySelector(".allow-again");
    // The visible words first, so that voice control finds the button by what it shows.
    button.setAttribute("aria-label", `Allow again: ${person.name}`);
    button.addEventListener("click", () => {
      item.dataset.allowing = "true";
      this.send({ type: "allow", participant: person.id });
    });
    return item;
  }

  // Updated in place, like the waiting list, so that focus never jumps on an update.
  /** @param {Denied[]} denied */
  renderDenied(denied) {
    const list = $("denied-list");
    const items = new Map([...list.children].map((li) => [li.dataset.participantId, li]));
    const focused = document.activeElement?.closest?.(".denied-item") ?? null;
    const order = [...items.keys()];
    const ids = new Set(denied.map((p) => p.id));
    for (const [id, item] of items) {
      if (ids.has(id)) continue;
      if (item === focused) {
        const next = order.slice(order.indexOf(id) + 1).find((other) => ids.has(other));
        if (next) {
          items.get(next).querySelector(".allow-again").focus();
        } else {
          $("lobby-title").tabIndex = -1;
          $("lobby-title").focus();
        }
      }
      if (item.dataset.allowing === "true") {
        const name = item.querySelector(".denied-name").textContent;
        this.announce(`${name} may join again: opening their link brings them to the waiting room.`);
      }
      item.remove();
    }
    for (const person of denied) {
      if (!items.has(person.id)) list.append(this.deniedItem(person));
    }
    $("denied-section").hidden = denied.length === 0;
  }
}
