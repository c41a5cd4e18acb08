// @ts-check
// The therapist's "Recordings of this session" panel (docs/recordings.md, "REST"). It lists
// the room's recordings, downloads a file, and deletes a recording after an inline confirm,
// with the therapist's link token as a Bearer token. The token goes in the Authorization
// header only, never in a URL: a download is fetched here and handed to the browser as a
// Blob URL. Clients never get this panel (app.js enables it for a therapist in a room whose
// recording setting is "consent", with a link that may `record`).

import { $ } from "./dom.js";
import { permits } from "./token.js";


const API = "/api/v1/recordings";
// After a recording stops, its manifest says "recording" until the files are merged: the
// list is asked again this often, this many times, until it says otherwise.
const POLL_MS = 1000;
const POLLS = 10;
// A Blob URL lives long enough for the browser to take the download, then is let go.
const REVOKE_MS = 10000;

const EXPIRED =
  "Your link has expired, so recordings cannot be shown here. Your practice can still get them.";

// What went wrong, in plain words, for each thing the panel does. `status` is the HTTP status,
// or 0 when the server could not be reached.
const PROBLEMS = {
  list: {
    401: EXPIRED,
    403: "This link cannot show this room's recordings. Your practice can still get them.",
    404: "Recordings cannot be shown on this page. Your practice can still get them.",
    0: "The list of recordings could not be loaded: the server could not be reached. Please check your connection and try again.",
    other: "The list of recordings could not be loaded just now. Please try again in a moment.",
  },
  download: {
    401: "Your link has expired, so this file cannot be downloaded here. Your practice can still get it.",
    403: "This link cannot download this file. Your practice can still get it.",
    404: "This file is no longer there. The list has been refreshed.",
    0: "The download did not finish: the server could not be reached. Please try again.",
    other: "The download did not finish. Please try again in a moment.",
  },
  delete: {
    401: "Your link has expired, so this recording cannot be deleted here. Your practice can delete it.",
    403: "This link cannot delete this recording. Your practice can delete it.",
    404: "This recording had already been deleted. The list has been refreshed.",
    409: "This recording is still being made. Stop recording first, then delete it.",
    0: "The recording was not deleted: the server could not be reached. Please try again.",
    other: "The recording was not deleted. Please try again in a moment.",
  },
};

function problem(action, status) {
  const texts = PROBLEMS[action];
  return texts[status] ?? texts.other;
}

const WHEN = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function lengthText(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "Not known yet";
  const total = Math.round(seconds);
  if (total < 60) return plural(total, "second");
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const rest = total % 60;
  const parts = [];
  if (hours) parts.push(plural(hours, "hour"));
  if (minutes) parts.push(plural(minutes, "minute"));
  if (rest && !hours) parts.push(plural(rest, "second"));
  return parts.join(" ");
}

function sizeText(bytes) {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/**
 * @param {string} tag
 * @param {{ className?: string, text?: string, [prop: string]: any }} [options]
 */
function element(tag, { className, text, ...props } = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  Object.assign(node, props);
  return node;
}

function button(label, className) {
  return element("button", { type: "button", className, text: label });
}

export class RecordingsPanel {
  // `token()` gives the link token held in memory; `announce(text)` says it politely.
  constructor({ token, announce }) {
    this.token = token;
    this.announce = announce;
    this.enabled = false;
    this.room = null;
    this.open = false;
    this.live = null; // the recording being made now, from the last recording_state
    this.seq = 0; // list requests; only the latest answer is shown
    this.pollsLeft = 0;
    this.pollTimer = null;
    this.shown = new Map(); // recording id -> what its item was built from
    this.panel = $("recordings-panel");
    this.home = this.panel.parentElement;
    this.toggleButton = $("toggle-recordings");
    this.toggleButton.addEventListener("click", () => (this.open ? this.close() : this.show()));
    $("recordings-close").addEventListener("click", () => this.close());
    $("recordings-refresh").addEventListener("click", () => {
      this.pollsLeft = POLLS;
      this.refresh();
    });
  }

  // ---------- what app.js tells it ----------

  // The page joined: a therapist of a room that records gets the panel; anyone else not,
  // nor a therapist whose link was minted without `record` (it has no Record button either).
  joined(msg) {
    const mode = msg.room?.settings?.recording || "off";
    this.live = msg.recording?.status === "recording" ? msg.recording.recording : null;
    const mayRecord = permits(msg.participant.permissions, "record");
    if (msg.participant.role === "therapist" && mode === "consent" && mayRecord) {
      this.enable(msg.room.id);
    } else {
      this.enabled = false;
      this.hide();
    }
    this.toggleButton.hidden = !this.enabled;
  }

  enable(room) {
    this.enabled = true;
    this.room = room;
  }

  recordingState(gate) {
    const was = this.live;
    this.live = gate?.status === "recording" ? gate.recording : null;
    if (!this.enabled || was === this.live) return;
    // A recording that just stopped is being finished: watch for its files.
    if (was) this.pollsLeft = POLLS;
    if (this.open) this.refresh();
  }

  // After the session (ended, or this therapist left): the panel is part of that screen.
  afterSession() {
    if (!this.enabled) return;
    this.live = null;
    const screen = $("screen-message");
    screen.append(this.panel);
    this.panel.classList.add("embedded");
    $("recordings-close").hidden = true;
    this.panel.hidden = false;
    this.open = true;
    this.pollsLeft = POLLS;
    this.refresh();
  }

  // Another screen: the panel goes away (and stops asking the server).
  hide() {
    this.open = false;
    this.panel.hidden = true;
    clearTimeout(this.pollTimer);
    this.seq += 1;
    this.toggleButton.setAttribute("aria-expanded", "false");
  }

  // ---------- in the call ----------

  show() {
    if (!this.enabled) return;
    this.home.append(this.panel);
    this.panel.classList.remove("embedded");
    $("recordings-close").hidden = false;
    this.panel.hidden = false;
    this.open = true;
    this.toggleButton.setAttribute("aria-expanded", "true");
    $("recordings-title").focus();
    this.pollsLeft = POLLS;
    this.refresh();
  }

  close() {
    this.hide();
    this.toggleButton.focus();
  }

  // ---------- the server ----------

  api(path, method = "GET") {
    // Never without the panel: a link without `record` is refused there, and has no business
    // asking (docs/recordings.md, "REST").
    if (!this.enabled) return Promise.reject(new Error("recordings are not available to this link"));
    return fetch(path, {
      method,
      headers: { Authorization: `Bearer ${this.token()}` },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  }

  async refresh() {
    clearTimeout(this.pollTimer);
    if (!this.enabled || !this.open) return;
    const seq = ++this.seq;
    if (this.shown.size === 0) this.status("Loading recordings…");
    let status = 0;
    let recordings = null;
    try {
      const response = await this.api(`${API}?room=${encodeURIComponent(this.room)}`);
      status = response.status;
      if (response.ok) recordings = (await response.json()).recordings;
    } catch {
      recordings = null;
    }
    if (seq !== this.seq) return; // a newer request, or the panel closed meanwhile
    if (!Array.isArray(recordings)) {
      this.status(problem("list", status), true);
      return;
    }
    this.render(recordings);
    const finishing = recordings.some((r) => r.status === "recording" && r.id !== this.live);
    if (finishing && this.pollsLeft > 0) {
      this.pollsLeft -= 1;
      this.pollTimer = setTimeout(() => this.refresh(), POLL_MS);
    }
  }

  // ---------- the list ----------

  status(text, isProblem = false) {
    const line = $("recordings-status");
    line.dataset.problem = String(isProblem);
    if (line.textContent !== text) line.textContent = text;
  }

  // Updates the list in place: an item is rebuilt only when its recording changed, so that
  // a refresh never moves the keyboard focus or closes a question being answered.
  render(recordings) {
    const list = $("recordings-list");
    const items = new Map([...list.children].map((li) => [li.dataset.recordingId, li]));
    const focused = document.activeElement?.closest?.(".rec-item") ?? null;
    const wanted = [];
    for (const rec of recordings) {
      const key = JSON.stringify([rec, rec.id === this.live]);
      let item = items.get(rec.id);
      if (!item || this.shown.get(rec.id) !== key) {
        const fresh = this.item(rec);
        if (item) {
          item.replaceWith(fresh);
          if (item === focused) fresh.querySelector("h3").focus();
        }
        item = fresh;
        this.shown.set(rec.id, key);
      }
      wanted.push(item);
    }
    const keep = new Set(wanted);
    for (const [id, item] of items) {
      if (keep.has(item)) continue;
      item.remove();
      this.shown.delete(id);
      if (item === focused) $("recordings-title").focus();
    }
    // Into order without moving what is already in place (a moved node loses focus).
    wanted.forEach((item, i) => {
      if (list.children[i] !== item) list.insertBefore(item, list.children[i] ?? null);
    });
    list.hidden = wanted.length === 0;
    this.status(
      wanted.length === 0
        ? "There are no recordings of this session."
        : `${plural(wanted.length, "recording")} of this session.`,
    );
  }

  statusText(rec) {
    if (rec.status === "complete") return "Complete";
    if (rec.status === "interrupted") {
      return "Interrupted: the server stopped while recording. What was recorded until then is kept.";
    }
    if (rec.id === this.live) return "Being recorded now";
    return "Still being finished. This takes a moment.";
  }

  item(rec) {
    const names = new Map((rec.participants || []).map((p) => [p.id, p.name]));
    const li = element("li", { className: "rec-item" });
    li.dataset.recordingId = rec.id;
    li.dataset.status = rec.status;
    const titleId = `${rec.id}-title`;
    const heading = element("h3", { id: titleId, tabIndex: -1, text: "Recording" });
    const started = new Date(rec.started_at * 1000);
    if (Number.isFinite(started.getTime())) {
      heading.textContent = "Recording started ";
      heading.append(element("time", { dateTime: started.toISOString(), text: WHEN.format(started) }));
    }
    li.append(heading);

    const facts = element("dl", { className: "rec-facts" });
    const length = rec.stopped_at == null ? NaN : rec.stopped_at - rec.started_at;
    for (const [term, value] of [
      ["Length", rec.status === "recording" ? "Not known yet" : lengthText(length)],
      ["Status", this.statusText(rec)],
      ["Participants", [...names.values()].join(", ") || "Not known"],
    ]) {
      const row = element("div");
      row.append(element("dt", { text: term }), element("dd", { text: value }));
      facts.append(row);
    }
    li.append(facts);

    const note = element("p", { className: "rec-note-line" });
    note.setAttribute("role", "status");
    const files = rec.files || [];
    if (rec.status === "recording") {
      li.append(element("p", { className: "rec-muted", text: "Its files will be here when it is finished." }));
    } else if (files.length === 0) {
      li.append(element("p", { className: "rec-muted", text: "No files were kept for this recording." }));
    } else {
      const list = element("ul", { className: "rec-files" });
      for (const file of files) {
        const who = names.get(file.participant);
        const fileItem = element("li");
        const what = (file.codecs || []).includes("vp8") ? "video and sound" : "sound only";
        const detail = element("span", {
          className: "rec-file-detail",
          text: `${file.name}, ${sizeText(file.bytes)}, ${what}`,
        });
        const download = button(who ? `Download ${who}'s part` : `Download ${file.name}`, "secondary");
        download.setAttribute("aria-describedby", `${titleId}`);
        download.addEventListener("click", () => this.download(rec, file, download, note));
        fileItem.append(download, detail);
        list.append(fileItem);
      }
      li.append(list);
    }

    if (rec.status !== "recording") li.append(this.deleteControls(rec, titleId, note));
    li.append(note);
    return li;
  }

  // "Delete recording", then, in place, "Delete this recording for good? Yes, delete / Keep it".
  deleteControls(rec, titleId, note) {
    const box = element("div", { className: "rec-delete" });
    const start = button("Delete recording", "danger");
    start.setAttribute("aria-describedby", titleId);
    const confirm = element("div", { className: "rec-confirm", hidden: true });
    confirm.setAttribute("role", "group");
    const questionId = `${rec.id}-confirm`;
    confirm.setAttribute("aria-labelledby", questionId);
    const question = element("p", { id: questionId, text: "Delete this recording for good?" });
    const detail = element("p", {
      className: "rec-muted",
      text: "Its files are removed from the server and cannot be brought back. The record of everyone's consent is kept.",
    });
    const yes = button("Yes, delete", "danger");
    const keep = button("Keep it", "primary");
    const actions = element("div", { className: "actions" });
    actions.append(yes, keep);
    confirm.append(question, detail, actions);
    box.append(start, confirm);

    const ask = () => {
      note.textContent = "";
      start.hidden = true;
      confirm.hidden = false;
      keep.focus();
    };
    const cancel = () => {
      confirm.hidden = true;
      start.hidden = false;
      start.focus();
    };
    start.addEventListener("click", ask);
    keep.addEventListener("click", () => {
      if (keep.getAttribute("aria-disabled") !== "true") cancel();
    });
    confirm.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        cancel();
      }
    });
    yes.addEventListener("click", () => this.remove(rec, { yes, keep, note, cancel }));
    return box;
  }

  // ---------- acting on a recording ----------

  async download(rec, file, control, note) {
    if (control.getAttribute("aria-disabled") === "true") return; // already on its way
    // Not `disabled`: a disabled button would lose the keyboard focus.
    control.setAttribute("aria-disabled", "true");
    const label = control.textContent;
    control.textContent = "Downloading…";
    note.textContent = `Downloading ${file.name}…`;
    let status = 0;
    try {
      const path = `${API}/${encodeURIComponent(rec.id)}/files/${encodeURIComponent(file.name)}`;
      const response = await this.api(path);
      status = response.status;
      if (!response.ok) throw new Error(`HTTP ${status}`);
      const blob = await response.blob();
      if (blob.size !== file.bytes) {
        status = 0;
        throw new Error("cut short");
      }
      const url = URL.createObjectURL(blob);
      const link = element("a", { href: url, download: file.name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), REVOKE_MS);
      note.textContent = `${file.name} is downloaded. Your browser has saved it on this device.`;
    } catch {
      note.textContent = problem("download", status);
      if (status === 404) this.refresh();
    } finally {
      control.textContent = label;
      control.removeAttribute("aria-disabled");
    }
  }

  async remove(rec, { yes, keep, note, cancel }) {
    if (yes.getAttribute("aria-disabled") === "true") return;
    for (const b of [yes, keep]) b.setAttribute("aria-disabled", "true");
    yes.textContent = "Deleting…";
    let status;
    try {
      status = (await this.api(`${API}/${encodeURIComponent(rec.id)}`, "DELETE")).status;
    } catch {
      status = 0;
    }
    for (const b of [yes, keep]) b.removeAttribute("aria-disabled");
    yes.textContent = "Yes, delete";
    if (status === 204) {
      this.announce("The recording is deleted.");
      $("recordings-title").focus();
      this.refresh();
      return;
    }
    cancel();
    note.textContent = problem("delete", status);
    if (status === 404) {
      this.announce(note.textContent);
      this.refresh();
    }
  }
}
