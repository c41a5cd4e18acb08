// @ts-check
// The page's screens and what it says: which screen shows, the message screen, the notice
// bar, and the live region a screen reader reads. No state of the session lives here.
import { $ } from "./dom.js";

/** @typedef {{ label: string, run: () => void }} Action */

/**
 * Shows one screen (`screen-<name>` in join.html) and moves focus to its heading.
 * @param {string} screen
 */
export function show(screen) {
  for (const section of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll(".screen"))) {
    section.hidden = section.id !== `screen-${screen}`;
  }
  const heading = /** @type {HTMLElement | null} */ (document.querySelector(`#screen-${screen} h1`));
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let announceTimer;
/** @type {string[]} */
let announcing = [];

/**
 * Said to a screen reader (politely).
 * @param {string} text
 */
export function announce(text) {
  const region = $("announce");
  region.textContent = "";
  clearTimeout(announceTimer);
  // Said together when they come together ("Alex joined." and what it did to recording),
  // rather than the second hiding the first.
  announcing.push(text);
  // A fresh node each time, so that the same words said twice are read twice.
  announceTimer = setTimeout(() => {
    region.textContent = announcing.join(" ");
    announcing = [];
  }, 50);
}

/**
 * A problem or a refusal: said at once to a screen reader, and shown where a sighted person
 * sees it (a bar that stays in view until dismissed or replaced); the screen stays as it is.
 * @param {string} text
 */
export function alertText(text) {
  $("alert").textContent = text;
  $("page-notice-text").textContent = text;
  $("page-notice").hidden = !text;
}

/**
 * The message screen: a title, a text and buttons.
 * @param {string} title
 * @param {string} text
 * @param {Action[]} [actions]
 */
export function showMessage(title, text, actions = []) {
  alertText(""); // a notice about the screen that is going away
  $("connection").hidden = true;
  $("message-title").textContent = title;
  $("message-text").textContent = text;
  $("message-list").hidden = true;
  $("message-note").hidden = true;
  const box = $("message-actions");
  box.replaceChildren();
  for (const { label, run } of actions) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "primary";
    button.textContent = label;
    button.addEventListener("click", run);
    box.append(button);
  }
  show("message");
}

/**
 * @param {number} seconds
 * @returns {string}
 */
export function minutesText(seconds) {
  const minutes = Math.floor(Math.max(0, seconds) / 60);
  if (minutes < 1) return "less than a minute";
  return minutes === 1 ? "1 minute" : `${minutes} minutes`;
}

/** The notice bar's dismiss button. */
export function wireNotice() {
  $("page-notice-dismiss").addEventListener("click", () => {
    $("page-notice").hidden = true;
    $("main").focus(); // the button that had focus is gone
  });
}
