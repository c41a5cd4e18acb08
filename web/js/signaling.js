// @ts-check
// The WebSocket to the server: join, then messages both ways. A dropped socket reconnects
// with backoff and resumes with the resume token, so the participant keeps its place and
// the peer connections (which do not depend on this socket) keep their media.
//
// One rule for refusals: only the server closing the socket (with the refusal's code as the
// close reason) can end the session. Any other refusal is passed on as a message, for the
// page to say as a notice; the person carries on. What each code says: refusals.js.
import { closedBy, FINAL_MESSAGES, isNotice } from "./refusals.js";
import { storedResume, storeResume } from "./token.js";

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 10000];
const QUEUE_LIMIT = 200;

export class Signaling {
  // `newDevice`: join as a new device of a link open elsewhere ("Join here instead").
  constructor({ url, token, newDevice = false, onMessage, onStatus, onFinal }) {
    this.url = url;
    this.token = token;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.onFinal = onFinal;
    // Kept in this tab's storage, so that a reload resumes too; a new one at every join.
    this.resume = storedResume();
    this.newDevice = newDevice;
    this.ws = null;
    this.joined = false;
    this.done = false;
    this.attempt = 0;
    this.queue = [];
    this.retryTimer = null;
    // A refusal not passed on yet: one said only if the server closes the socket on it.
    this.held = null;
  }

  start() {
    this.done = false;
    this.open();
  }

  open() {
    this.joined = false;
    this.onStatus(this.attempt === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      const join = { type: "join", token: this.token };
      if (this.resume) join.resume = this.resume;
      if (this.newDevice) join.new_device = true;
      ws.send(JSON.stringify(join));
    });
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.joined = false;
      const held = this.held;
      this.held = null;
      if (this.done) return;
      if (this.closedByServer(event, held)) return;
      this.scheduleReconnect();
    });
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type === "joined") {
      this.joined = true;
      this.attempt = 0;
      this.resume = message.resume;
      storeResume(message.resume);
      this.newDevice = false;
      // After a lost place, what was queued for the old one no longer applies.
      if (!message.resumed) this.queue = [];
      this.onStatus("open");
      this.onMessage(message);
      this.flush();
      return;
    }
    if (message.type === "error" && (!this.joined || !isNotice(message.code))) {
      // Before `joined` every refusal closes the socket; after it, some only ever come with
      // a close (`replaced`, `room_ended`...). Either way the close decides what it means.
      this.held = message;
      return;
    }
    if (FINAL_MESSAGES.has(message.type)) {
      this.done = true;
    }
    this.onMessage(message);
  }

  // The server closed the socket on a refusal (its code is the close reason): the session is
  // over, or (`service_unavailable`, `too_many_connections`...) we say why and connect again.
  // True when handled here.
  closedByServer(event, held) {
    const code = event.reason && closedBy(event.reason) ? event.reason : held?.code;
    const closed = code ? closedBy(code) : null;
    if (!closed) {
      if (held) this.onMessage(held); // not one that ends anything: say it, then reconnect
      return false;
    }
    const refusal = held?.code === code ? held : { type: "error", code, message: "" };
    if (!closed.retry) {
      this.finish(refusal);
      return true;
    }
    if (refusal === held) this.onMessage(refusal); // not said yet: why we connect again
    return false;
  }

  scheduleReconnect() {
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.onStatus("reconnecting");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  // Messages sent while the socket is away wait here and go out after the resume, except
  // WebRTC signals: stale ones would only confuse, and an ICE restart recovers instead.
  send(message) {
    if (this.joined && this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return;
    }
    if (message.type !== "signal" && this.queue.length < QUEUE_LIMIT) this.queue.push(message);
  }

  get isOpen() {
    return this.joined && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  flush() {
    const pending = this.queue;
    this.queue = [];
    for (const message of pending) this.send(message);
  }

  finish(error) {
    this.done = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close();
    this.onFinal(error);
  }

  close() {
    this.done = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000);
  }
}
