// @ts-check
// Consent-gated recording on the page (docs/recordings.md): the therapist's Record button,
// the consent dialog everyone answers, the indicator everyone sees, and this participant's
// recording leg, a send-only peer connection to the server that exists only while the gate
// is open and this participant said yes.

import { $ } from "./dom.js";
import { noticeText } from "./refusals.js";
import { permits } from "./token.js";


// The server's aiortc peer takes no trickled candidates: the offer waits for them all, but
// not for ever (a candidate that never comes must not hold the recording up).
const GATHER_CAP_MS = 3000;
// An offer not answered in this time (lost on the way) is made again.
const ANSWER_TIMEOUT_MS = 10000;
// A leg whose connection fails is opened again, this many times, this far apart.
const LEG_RETRIES = 2;
const LEG_RETRY_MS = 2000;
// How long the line saying why recording stopped stays on screen (it is also announced).
const STOPPED_NOTE_MS = 12000;
// While the Record button waits for the server's answer, further clicks are ignored.
const BUSY_MS = 3000;
// A refusal this soon after a recording act, which the state has since made pointless, is
// not shown (see moot()).
const MOOT_MS = 5000;

const OPEN = new Set(["pending", "recording"]);

// The words for the server's refusals of an offer are in refusals.js, with every other code's.
const NOTE_TEXT = {
  failed: "Your part of the session could not reach the recorder because of the connection. The call goes on.",
};

// Why recording stopped, in plain words. `was` is the status before the stop.
function stoppedText(gate, was, selfId) {
  const byMe = gate.by !== null && gate.by === selfId;
  const wasRecording = was === "recording";
  switch (gate.reason) {
    case "declined":
      return "Recording did not start: not everyone agreed.";
    case "withdrawn":
      return byMe
        ? "Recording stopped: you withdrew your consent."
        : "Recording stopped: consent was withdrawn.";
    case "participant_left":
      return wasRecording
        ? "Recording stopped: a participant left."
        : "Recording did not start: a participant left.";
    case "participant_joined":
      return "Recording paused: a new participant needs to agree.";
    case "stopped_by_therapist":
      if (wasRecording) return byMe ? "You stopped the recording." : "The therapist stopped the recording.";
      return byMe ? "You cancelled the recording request." : "The therapist cancelled the recording request.";
    case "session_ended":
      return "Recording stopped: the session ended.";
    case "server_stopped":
      return "Recording stopped: the server is restarting. The call goes on.";
    default:
      return "Recording stopped.";
  }
}

function whereText(where) {
  const text = (where || "").trim() || "on this practice's own server";
  return /[.!?]$/.test(text) ? `Recordings are kept ${text}` : `Recordings are kept ${text}.`;
}

// VP8 first (the recorder keeps VP8 and nothing else), then the rest as the browser ranks
// them. Some browsers take only the receiver's list here, so that is the second try.
function preferVp8(transceiver) {
  if (typeof transceiver.setCodecPreferences !== "function") return;
  for (const source of [RTCRtpSender, RTCRtpReceiver]) {
    const codecs = source.getCapabilities?.("video")?.codecs;
    if (!codecs) continue;
    const isVp8 = (c) => c.mimeType.toLowerCase() === "video/vp8";
    const vp8 = codecs.filter(isVp8);
    if (vp8.length === 0) return; // nothing to prefer: the server will say so
    try {
      transceiver.setCodecPreferences([...vp8, ...codecs.filter((c) => !isVp8(c))]);
      return;
    } catch {
      // try the next list
    }
  }
}

function gatheringDone(pc, capMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve(undefined);
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") finish();
    };
    const timer = setTimeout(finish, capMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// One recording leg: this participant's microphone and camera, sent to the server only.
export class RecordingLeg {
  constructor({ recordingId, iceServers, tracks, onState }) {
    this.recordingId = recordingId;
    this.onState = onState; // (connectionState) => void
    this.closed = false;
    this.awaitingAnswer = false;
    this.retries = 0;
    this.senders = { audio: null, video: null };
    this.pc = new RTCPeerConnection({ iceServers });
    const stream = new MediaStream();
    for (const kind of ["audio", "video"]) {
      const track = tracks[kind];
      if (!track) continue;
      const transceiver = this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      if (kind === "video") preferVp8(transceiver);
      this.senders[kind] = transceiver.sender;
    }
    this.pc.addEventListener("connectionstatechange", () => {
      if (!this.closed) this.onState(this.pc.connectionState);
    });
  }

  // The offer's SDP, with all its candidates.
  async offer() {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await gatheringDone(this.pc, GATHER_CAP_MS);
    this.awaitingAnswer = !this.closed;
    return this.pc.localDescription.sdp;
  }

  async accept(sdp) {
    if (this.closed || !this.awaitingAnswer) return;
    this.awaitingAnswer = false;
    await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  // Sends this track (or nothing) from now on. False when the leg has no sender for this
  // kind and a new leg is needed to add it.
  async setTrack(kind, track) {
    const sender = this.senders[kind];
    if (!sender) return !track;
    if (sender.track !== track) await sender.replaceTrack(track);
    return true;
  }

  get state() {
    return this.closed ? "closed" : this.pc.connectionState;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.awaitingAnswer = false;
    this.pc.close();
  }
}

// Everything the page does about recording. `tracks()` gives the local {audio, video} to
// record; `canSend()` says whether the socket is up (an offer made while it is away would be
// stale by the time it went: the leg is made again after the resume instead).
export class Recording {
  constructor({ send, announce, tracks, canSend }) {
    this.send = send;
    this.announce = announce;
    this.tracks = tracks;
    this.canSend = canSend;
    this.selfId = null;
    this.role = "client";
    this.mayRecord = false; // the link's `record` permission (a therapist's, by default)
    this.mode = "off";
    this.iceServers = [];
    this.gate = null; // the last recording state
    this.leg = null;
    this.offers = []; // [{recording, leg}] sent on this socket and not yet answered
    this.asking = null; // the request the open dialog asks about
    this.returnFocus = null;
    this.busy = false;
    this.busyTimer = null;
    this.lastAct = null; // {type, request, at}: the last recording message sent
    this.stoppedTimer = null;
    this.noteFor = null; // the recording a note is about
    this.answerTimer = null;
    this.retryTimer = null;
    document.body.dataset.recording = "idle";
    document.body.dataset.recLeg = "none";
    this.wire();
  }

  wire() {
    $("record").addEventListener("click", () => {
      if (this.busy) return;
      this.busy = true;
      clearTimeout(this.busyTimer);
      this.busyTimer = setTimeout(() => {
        this.busy = false;
      }, BUSY_MS);
      this.sendAct({ type: OPEN.has(this.gate?.status) ? "recording_stop" : "recording_request" });
    });
    $("withdraw-consent").addEventListener("click", () => {
      if (!this.gate?.request) return;
      this.sendAct({ type: "consent", request: this.gate.request, granted: false });
    });
    const dialog = $("consent-dialog");
    $("consent-yes").addEventListener("click", () => this.respond(true));
    $("consent-no").addEventListener("click", () => this.respond(false));
    // Escape, or anything else that closes the dialog without "Yes, record", counts as No:
    // recording needs a yes that was given, never one assumed.
    dialog.addEventListener("close", () => this.dialogClosed());
    // Tab and Shift+Tab go round the dialog's buttons and never leave it.
    dialog.addEventListener("keydown", (e) => {
      if (e.key !== "Tab") return;
      const buttons = [...dialog.querySelectorAll("button:not([disabled])")];
      const first = buttons[0];
      const last = buttons[buttons.length - 1];
      const active = document.activeElement;
      if (e.shiftKey && (active === first || !buttons.includes(active))) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && (active === last || !buttons.includes(active))) {
        e.preventDefault();
        first.focus();
      }
    });
  }

  // ---------- messages ----------

  joined(msg) {
    this.selfId = msg.participant.id;
    this.role = msg.participant.role;
    // A therapist link minted without `record` cannot ask to record: no button that could
    // only be refused.
    this.mayRecord = permits(msg.participant.permissions, "record");
    this.mode = msg.room?.settings?.recording || "off";
    this.iceServers = msg.ice_servers || [];
    this.offers = []; // the old socket's offers are answered there or not at all
    if (msg.resumed && this.leg) {
      // The page was away: whatever the leg was doing, a fresh one replaces it.
      this.closeLeg();
    }
    this.apply(msg.state === "in_room" ? msg.recording || null : null, { fromJoin: true });
  }

  state(msg) {
    this.apply(msg, { fromJoin: false });
  }

  ask(msg) {
    const dialog = $("consent-dialog");
    this.settleClosed();
    if (dialog.open && this.asking === msg.request) return; // asked again after a resume
    if (this.gate?.request === msg.request && this.answerOf(this.gate) != null) return;
    if (dialog.open) this.closeDialog();
    this.asking = msg.request;
    $("consent-by").textContent = msg.by?.name || "Your therapist";
    $("consent-where").textContent = whereText(msg.where);
    const active = document.activeElement;
    // (Kept if a dialog just closed has not given it back yet.)
    if (!this.returnFocus) this.returnFocus = active && active !== document.body ? active : null;
    dialog.showModal();
    $("consent-title").focus();
  }

  answered(msg) {
    const index = this.offers.findIndex((o) => o.recording === msg.recording);
    if (index < 0) return;
    // Offers are answered in order: any before this one were refused.
    const [offer] = this.offers.splice(0, index + 1).slice(-1);
    if (offer.leg !== this.leg) return;
    clearTimeout(this.answerTimer);
    offer.leg.accept(msg.sdp).catch((error) => {
      console.warn("recording answer failed", error);
      this.legFailed(offer.leg);
    });
  }

  // A refusal of a recording message. True when it was handled here.
  error(msg) {
    if ((msg.code === "not_allowed" || msg.code === "conflict") && this.moot()) {
      // Crossed on the way with a change that made it pointless (the request ended as the
      // answer went, someone else asked first): nothing worth saying.
      return true;
    }
    if (msg.code === "recording_codec_unsupported" || msg.code === "recording_not_active") {
      // Offers are answered in order: this refusal is for the oldest one still open.
      const offer = this.offers.shift();
      if (offer && offer.leg === this.leg) {
        this.closeLeg();
        this.note(noticeText(msg, null));
      }
      return true;
    }
    if (msg.code === "recording_disabled" || msg.code === "conflict") {
      this.busy = false;
    }
    return false;
  }

  // Therapist: someone's part cannot be recorded (their browser sends no VP8); the
  // recording goes on for everyone else.
  issue(name) {
    this.note(`${name}'s browser cannot send video in a format the recorder keeps, so their part is not being recorded.`);
  }

  // The microphone or camera changed: the leg sends what there is now.
  async tracksChanged() {
    if (!this.wantsLeg(this.gate)) return;
    if (!this.leg) {
      this.openLeg(this.gate.recording);
      return;
    }
    const leg = this.leg;
    const tracks = this.tracks();
    for (const kind of ["audio", "video"]) {
      const ok = await leg.setTrack(kind, tracks[kind] || null).catch(() => false);
      if (!ok && leg === this.leg) {
        // Something to send that this leg was not set up for: a new leg replaces it.
        this.closeLeg();
        this.openLeg(this.gate.recording);
        return;
      }
    }
  }

  // Leaving, or the session ending: nothing of recording stays open.
  reset() {
    this.closeLeg();
    this.closeDialog();
    this.gate = null;
    clearTimeout(this.stoppedTimer);
    this.clearNote();
    $("rec-status").hidden = true;
    $("rec-bar").hidden = true;
    document.body.dataset.recording = "idle";
  }

  // ---------- the state ----------

  answerOf(gate) {
    const answer = gate?.answers?.[this.selfId];
    return answer === undefined ? null : answer;
  }

  wantsLeg(gate) {
    return gate?.status === "recording" && Boolean(gate.recording) && this.answerOf(gate) === true;
  }

  apply(gate, { fromJoin }) {
    const before = this.gate;
    const was = before?.status || "idle";
    this.gate = gate;
    const status = gate?.status || "idle";
    document.body.dataset.recording = status;
    document.body.dataset.recordingId = gate?.recording || "";
    this.busy = false;

    // A question no longer open (or already answered) is taken away unanswered.
    if (
      this.asking !== null &&
      (!OPEN.has(status) || gate.request !== this.asking || this.answerOf(gate) !== null)
    ) {
      this.closeDialog();
    }

    if (this.wantsLeg(gate)) {
      if (!this.leg || this.leg.recordingId !== gate.recording) {
        this.closeLeg();
        this.openLeg(gate.recording);
      }
    } else {
      this.closeLeg();
    }

    this.render(gate, was, fromJoin);
    if (fromJoin) {
      if (status === "recording") this.announce("This session is being recorded.");
      return;
    }
    if (status === "recording" && (was !== "recording" || before?.recording !== gate.recording)) {
      this.announce("Recording started: everyone agreed.");
    } else if (status === "pending" && gate.reason === "participant_joined" && was === "recording") {
      this.announce(stoppedText(gate, was, this.selfId));
    } else if (status === "stopped" && OPEN.has(was)) {
      this.announce(stoppedText(gate, was, this.selfId));
    }
  }

  render(gate, was, fromJoin) {
    const status = gate?.status || "idle";
    const record = $("record");
    record.hidden = !(this.role === "therapist" && this.mode === "consent" && this.mayRecord);
    record.textContent = OPEN.has(status) ? "Stop recording" : "Record";
    $("withdraw-consent").hidden = !(OPEN.has(status) && this.answerOf(gate) === true);

    let text = "";
    clearTimeout(this.stoppedTimer);
    if (status === "recording") {
      text = "Recording";
    } else if (status === "pending") {
      text =
        gate.reason === "participant_joined"
          ? "Recording paused: a new participant needs to agree."
          : "Waiting for everyone to agree to recording…";
    } else if (status === "stopped" && OPEN.has(was) && !fromJoin) {
      text = stoppedText(gate, was, this.selfId);
      this.stoppedTimer = setTimeout(() => {
        $("rec-status").hidden = true;
        this.showBar();
      }, STOPPED_NOTE_MS);
    }
    $("rec-bar").dataset.status = status;
    $("rec-status-text").textContent = text;
    $("rec-status").hidden = !text;
    // A note about an earlier recording leg is over with it.
    if (this.noteFor !== (gate?.recording || null)) this.clearNote();
    this.showBar();
  }

  showBar() {
    $("rec-bar").hidden = $("rec-status").hidden && $("rec-note").hidden;
  }

  // A calm line about this participant's own part (the call goes on regardless).
  note(text) {
    this.noteFor = this.gate?.recording || null;
    $("rec-note").textContent = text;
    $("rec-note").hidden = false;
    this.showBar();
    this.announce(text);
  }

  clearNote() {
    this.noteFor = null;
    $("rec-note").hidden = true;
    $("rec-note").textContent = "";
  }

  // ---------- the dialog ----------

  respond(granted) {
    const dialog = $("consent-dialog");
    const request = this.asking;
    this.asking = null;
    if (request !== null) {
      this.sendAct({ type: "consent", request, granted });
      if (granted && this.gate?.status === "pending") {
        this.announce("Thank you. Waiting for everyone to agree to recording…");
      }
    }
    if (dialog.open) dialog.close();
  }

  // The dialog closed without a button (Escape): that is a No.
  settleClosed() {
    if (this.asking !== null && !$("consent-dialog").open) this.respond(false);
  }

  dialogClosed() {
    if ($("consent-dialog").open) return; // already asking again
    this.settleClosed();
    const back = this.returnFocus;
    this.returnFocus = null;
    if (back && back.isConnected && back.getClientRects().length > 0) /** @type {HTMLElement} */ (back).focus();
  }

  // Sends a recording act, remembered for a while in case the server refuses it.
  sendAct(message) {
    this.lastAct = { type: message.type, request: message.request ?? null, at: Date.now() };
    this.send(message);
  }

  // Whether the last act, if recent, no longer makes sense in the current state.
  moot() {
    const act = this.lastAct;
    if (!act || Date.now() - act.at > MOOT_MS) return false;
    const open = OPEN.has(this.gate?.status);
    const moot =
      act.type === "recording_request"
        ? open
        : !open || (act.type === "consent" && this.gate.request !== act.request);
    if (moot) {
      this.lastAct = null;
      this.busy = false;
    }
    return moot;
  }

  // Closes the dialog without answering (the question is over).
  closeDialog() {
    this.asking = null;
    const dialog = $("consent-dialog");
    if (dialog.open) dialog.close();
  }

  // ---------- the leg ----------

  async openLeg(recordingId, retries = 0) {
    const tracks = this.tracks();
    if (!tracks.audio && !tracks.video) return; // chat only: nothing to record of me
    if (!this.canSend()) return; // made after the resume instead
    const leg = new RecordingLeg({
      recordingId,
      iceServers: this.iceServers,
      tracks,
      onState: (state) => this.legState(leg, state),
    });
    leg.retries = retries;
    this.leg = leg;
    document.body.dataset.recLeg = leg.state;
    let sdp;
    try {
      sdp = await leg.offer();
    } catch (error) {
      console.warn("recording offer failed", error);
      if (leg === this.leg) {
        this.closeLeg();
        this.note(NOTE_TEXT.failed);
      }
      return;
    }
    if (leg !== this.leg || leg.closed) return;
    if (!this.canSend()) {
      this.closeLeg(); // the socket went away meanwhile: the resume makes a new leg
      return;
    }
    this.offers.push({ recording: recordingId, leg });
    this.send({ type: "rec_offer", recording: recordingId, sdp });
    clearTimeout(this.answerTimer);
    this.answerTimer = setTimeout(() => {
      if (leg === this.leg && leg.awaitingAnswer) this.legFailed(leg);
    }, ANSWER_TIMEOUT_MS);
  }

  legState(leg, state) {
    if (leg !== this.leg) return;
    document.body.dataset.recLeg = state;
    if (state === "failed") this.legFailed(leg);
  }

  legFailed(leg) {
    if (leg !== this.leg) return;
    const retries = leg.retries + 1;
    const recordingId = leg.recordingId;
    this.closeLeg();
    if (retries > LEG_RETRIES) {
      this.note(NOTE_TEXT.failed);
      return;
    }
    this.retryTimer = setTimeout(() => {
      if (!this.leg && this.wantsLeg(this.gate) && this.gate.recording === recordingId) {
        this.openLeg(recordingId, retries);
      }
    }, LEG_RETRY_MS);
  }

  closeLeg() {
    clearTimeout(this.answerTimer);
    clearTimeout(this.retryTimer);
    if (this.leg) this.leg.close();
    this.leg = null;
    document.body.dataset.recLeg = "none";
  }
}
