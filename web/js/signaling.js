// The WebSocket to the server: join, then messages both ways. A dropped socket reconnects
// with backoff and resumes with the resume token, so the participant keeps its place and
// the peer connections (which do not depend on this socket) keep their media.

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 10000];
const QUEUE_LIMIT = 200;
// Retries after `link_in_use`, about 45 s in all: longer than the server takes to notice a
// dead socket (WebSocket heartbeats every 20 s).
const LINK_RETRY_MS = [3000, 6000, 12000, 24000];
// Refusals after which trying again cannot help.
const FINAL_ERRORS = new Set([
  "invalid_token",
  "token_expired",
  "token_not_yet_valid",
  "link_in_use",
  "room_ended",
  "room_full",
  "replaced",
  "denied",
]);
// Messages after which the server closes the socket on purpose.
const FINAL_MESSAGES = new Set(["ended", "denied", "left"]);

export class Signaling {
  constructor({ url, token, onMessage, onStatus, onFinal }) {
    this.url = url;
    this.token = token;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.onFinal = onFinal;
    this.resume = null;
    this.ws = null;
    this.joined = false;
    this.done = false;
    this.attempt = 0;
    this.queue = [];
    this.retryTimer = null;
    this.linkRetries = LINK_RETRY_MS.length;
    this.pausedForLink = false;
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
      ws.send(JSON.stringify(join));
    });
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.joined = false;
      if (this.done) return;
      if (this.pausedForLink) {
        this.pausedForLink = false; // the quiet retry is already scheduled
        return;
      }
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
      // After a lost place, what was queued for the old one no longer applies.
      if (!message.resumed) this.queue = [];
      this.onStatus("open");
      this.onMessage(message);
      this.flush();
      return;
    }
    if (message.type === "error" && message.code === "link_in_use" && this.linkRetries > 0) {
      // Often the "other device" is this person's own earlier page (a reload, a network
      // change) whose socket the server has not yet seen die: try again quietly for a while.
      const delay = LINK_RETRY_MS[LINK_RETRY_MS.length - this.linkRetries];
      this.linkRetries -= 1;
      this.onStatus("waiting_for_link");
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.open(), delay);
      this.pausedForLink = true;
      return;
    }
    if (message.type === "error" && FINAL_ERRORS.has(message.code)) {
      this.finish(message);
      return;
    }
    if (FINAL_MESSAGES.has(message.type)) {
      this.done = true;
    }
    this.onMessage(message);
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
