// @ts-check
// The room page: check devices, join, wait, talk, chat, leave. Plain DOM, no framework.
import { Chat } from "./chat.js";
import { fillDevicePickers, showPreview } from "./devices.js";
import { $ } from "./dom.js";
import { Lobby } from "./lobby.js";
import { LocalMedia } from "./media.js";
import { PeerLink } from "./peers.js";
import { Recording } from "./recording.js";
import { RecordingsPanel } from "./recordings.js";
import { closedBy, noticeText } from "./refusals.js";
import { alertText, announce, minutesText, show, showMessage, wireNotice } from "./screens.js";
import { Signaling } from "./signaling.js";
import { supportProblem } from "./support.js";
import { chatPeerAway, chatTile, nameTile, newTile, QUALITY_TEXT, qualityNote, remoteNote, videoNote } from "./tiles.js";
import { markNewDevice, permits, readClaims, takeNewDevice, takeToken } from "./token.js";

const STATS_INTERVAL_MS = 1000;
const ACTING_MS = 5000; // how long a refusal may take to answer what this person did

const state = {
  token: null,
  newDevice: false, // "Join here instead": the next join is as a new device
  claims: null,
  role: "client",
  selfId: null,
  iceServers: [],
  signaling: null,
  media: new LocalMedia(),
  micOn: true,
  cameraOn: true,
  audioOnly: false,
  // This link has no `signal` permission: no camera, microphone or peer connections at all.
  // Known from the token's `perms` before joining, and confirmed by `joined`.
  chatOnly: false,
  // id -> { info, link (null with no media between us), tile, remote: {audio, video, wantsVideo} }
  peers: new Map(),
  waitingSince: null,
  waitTimer: null,
  statsTimer: null,
  socketStatus: "idle",
  joining: false,
  busy: false,
  choices: { videoId: null, audioId: null, speakerId: null },
  recording: null, // the Recording controller (recording.js), made in main()
  recordings: null, // the therapist's recordings panel (recordings.js), made in main()
  acting: null, // { type, name, at } of this person's last message, for a refusal's words
};

const lobby = new Lobby({ send, announce });
const chat = new Chat({ send, announce, nameOf: (id) => state.peers.get(id)?.info.name });

// ---------- small UI helpers ----------

/**
 * The message screen, with the session's timers and the recordings panel away.
 * @param {string} title
 * @param {string} text
 * @param {import("./screens.js").Action[]} [actions]
 */
function message(title, text, actions = []) {
  stopTimers();
  state.recordings?.hide();
  showMessage(title, text, actions);
}

function stopTimers() {
  clearInterval(state.waitTimer);
  clearInterval(state.statsTimer);
  state.waitTimer = null;
  state.statsTimer = null;
}

function rejoin() {
  // The token is in this tab's storage: reloading starts again from the device check.
  window.location.reload();
}

// The link is open elsewhere: join again from here as a new device, through the waiting
// room (the therapist admits it, and the other window is then closed).
function joinHereInstead() {
  markNewDevice();
  window.location.reload();
}

// ---------- before joining ----------

async function openDevices() {
  $("join").disabled = true; // until we know what we have
  const result = await state.media.open({
    audioId: state.choices.audioId,
    videoId: state.choices.videoId,
    video: !state.audioOnly,
  });
  if (state.joining) return result; // a choice made meanwhile (chat only) stands
  $("join").disabled = false;
  state.cameraOn = result.video;
  state.micOn = result.audio;
  showPreview(state.media);
  state.media.startMeter($("mic-level"));
  const problem = $("device-problem");
  problem.hidden = !result.problem;
  $("device-problem-text").textContent = result.problem || "";
  $("join").hidden = !result.audio && !result.video;
  if (result.problem) alertText(result.problem);
  await fillDevicePickers(state.media, state.choices.speakerId);
  return result;
}

async function prejoin() {
  show("prejoin");
  $("prejoin-name").textContent = state.claims?.name || "Guest";
  await openDevices();
}

// A chat-only link (becomeChatOnly() first): nothing to check, and the camera and
// microphone are never asked for.
function chatOnlyPrejoin() {
  $("prejoin-title").textContent = "Join your session";
  show("prejoin");
  $("prejoin-name").textContent = state.claims?.name || "Guest";
  $("join").hidden = false;
  $("join").disabled = false;
}

// Chat only, for this page: devices off (the camera light too), media controls away with
// the reason on screen, no peer connection or recording leg from here on.
function becomeChatOnly() {
  state.chatOnly = true;
  state.media.stop();
  state.micOn = false;
  state.cameraOn = false;
  document.body.dataset.media = "false";
  $("prejoin-chat-only").hidden = false;
  $("prejoin-devices").hidden = true;
  $("device-problem").hidden = true;
  $("waiting-preview-wrap").hidden = true;
  $("self-view").hidden = true;
  $("chat-only-note").hidden = false;
  for (const id of ["toggle-mic", "toggle-camera", "toggle-audio-only"]) $(id).hidden = true;
  showPreview(state.media);
}

function wirePrejoin() {
  $("join").addEventListener("click", () => join());
  $("retry-devices").addEventListener("click", () => openDevices());
  $("join-audio-only").addEventListener("click", async () => {
    state.audioOnly = true;
    state.media.stop();
    await openDevices(); // the microphone alone
    join();
  });
  $("join-chat-only").addEventListener("click", () => {
    state.media.stop();
    state.micOn = false;
    state.cameraOn = false;
    showPreview(state.media);
    join();
  });
  $("camera-select").addEventListener("change", (e) => {
    state.choices.videoId = e.target.value;
    openDevices();
  });
  $("mic-select").addEventListener("change", (e) => {
    state.choices.audioId = e.target.value;
    openDevices();
  });
  $("speaker-select").addEventListener("change", (e) => {
    state.choices.speakerId = e.target.value;
    for (const audio of document.querySelectorAll("audio")) audio.setSinkId?.(e.target.value);
  });
}

// ---------- joining and the socket ----------

function join() {
  if (state.joining) return;
  state.joining = true;
  for (const control of /** @type {NodeListOf<HTMLButtonElement | HTMLSelectElement>} */ (
    document.querySelectorAll("#screen-prejoin button, #screen-prejoin select")
  )) {
    control.disabled = true;
  }
  $("join").textContent = "Connecting…";
  state.media.stopMeter();
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  state.signaling = new Signaling({
    url: `${scheme}//${window.location.host}/ws`,
    token: state.token,
    newDevice: state.newDevice,
    onMessage: handle,
    onStatus: socketStatus,
    // Only a server close ends the session (signaling.js); what it says is in refusals.js.
    onFinal: (error) => {
      const closed = closedBy(error.code);
      endSession(
        closed?.title || "We could not connect you",
        closed?.text ?? error.message,
        closed?.joinHere ? [{ label: "Join here instead", run: joinHereInstead }] : [],
        { afterSession: Boolean(closed?.afterSession) },
      );
    },
  });
  state.signaling.start();
}

function socketStatus(status) {
  if (status === state.socketStatus) return;
  state.socketStatus = status;
  if (status === "reconnecting") announce("Connection lost. Reconnecting…");
  updateConnection();
}

function send(message) {
  // What this person last did, for the words of a refusal that answers it.
  if (message.type !== "signal") {
    const id = message.participant;
    const name = (id && lobby.nameOf(id)) || state.peers.get(id)?.info.name || null;
    state.acting = { type: message.type, name, at: Date.now() };
  }
  state.signaling?.send(message);
}

function handle(msg) {
  switch (msg.type) {
    case "joined":
      return joined(msg);
    case "lobby":
      lobby.renderDenied(msg.denied || []);
      return lobby.render(msg.waiting);
    case "admitted":
      announce("You have been let in.");
      return enterCall(msg.peers);
    case "denied":
      return endSession(
        "You were not let in",
        msg.message || "Your therapist could not let you in to this session. Please contact them if you have questions.",
      );
    case "lobby_notice":
      $("lobby-notice").hidden = !msg.text;
      $("lobby-notice-text").textContent = msg.text;
      if (msg.text) announce(`Message from your therapist: ${msg.text}`);
      return undefined;
    case "waiting_status":
      return presence(msg.therapist_present, true);
    case "peer_joined":
      announce(`${msg.participant.name} joined.`);
      return addPeer(msg.participant);
    case "peer_left":
      return removePeer(msg.participant, msg.reason);
    case "peer_reconnecting":
      return peerQuality(msg.participant, "reconnecting", true);
    case "peer_resumed":
      return peerQuality(msg.participant, "connected", true);
    case "signal":
      return onSignal(msg);
    case "chat":
      return chat.received(msg);
    case "chat_undelivered":
      return chat.undelivered(msg);
    case "ended":
      return endSession("The session has ended", "Thank you. You can close this window.", [], {
        afterSession: true,
      });
    case "left":
      return undefined; // leaveNow() already showed the left screen
    case "link_in_use":
      return alertText(
        "A client's link was opened on a second device. If they join there, they wait in the waiting room as a new device.",
      );
    case "server_shutdown":
      return undefined; // the socket closes next and reconnects by itself
    case "consent_request":
      return state.recording.ask(msg);
    case "recording_state":
      state.recordings.recordingState(msg);
      return state.recording.state(msg);
    case "rec_answer":
      return state.recording.answered(msg);
    case "recording_issue":
      return state.recording.issue(state.peers.get(msg.participant)?.info.name || "A participant");
    case "error":
      return serverError(msg);
    default:
      return undefined;
  }
}

function onSignal(msg) {
  if (state.chatOnly) return undefined; // no media here: nothing to negotiate
  if (!state.peers.has(msg.from)) {
    // A peer we have not heard of yet (its peer_joined may still be on its way).
    addPeer({ id: msg.from, name: "Participant", role: "client" }, { offerer: false });
  }
  const entry = state.peers.get(msg.from);
  if (!entry?.link) return undefined;
  // `state` signals carry the peer's microphone and camera state; the rest is WebRTC's.
  if (msg.data && msg.data.kind === "state") return remoteState(entry, msg.data);
  return entry.link.handleSignal(msg.data);
}

// A refusal while the socket stays open: a notice to whoever acted, who stays where they are
// (only a server close ends a session). Its words are in refusals.js.
function serverError(msg) {
  if (state.recording.error(msg)) return;
  // A refusal answers at once: an older act is not what it is about.
  const acting = state.acting && Date.now() - state.acting.at < ACTING_MS ? state.acting : null;
  state.acting = null;
  const text = noticeText(msg, acting);
  if (!text) return; // a signal to a peer who just left: harmless
  if (msg.code === "service_unavailable" && state.selfId === null) {
    // Not in yet and the service is briefly away: say so where the Join button is, since
    // the page keeps trying by itself.
    $("join-status").textContent =
      "The service is briefly unavailable. We keep trying and will let you in as soon as it is back.";
    $("join-status").hidden = false;
  }
  alertText(text);
}

function joined(msg) {
  $("join-status").hidden = true;
  const first = state.selfId === null;
  if (first && (msg.resumed || pageWasReloaded())) chat.notKept();
  const placeLost = !first && !msg.resumed;
  state.selfId = msg.participant.id;
  state.role = msg.participant.role;
  state.iceServers = msg.ice_servers || [];
  document.body.dataset.participant = state.selfId;
  document.body.dataset.role = state.role;
  // The server's word on this link's permissions: without `signal`, chat only (the token's
  // claims normally said so already, before any device was opened).
  if (!permits(msg.participant.permissions, "signal") && !state.chatOnly) becomeChatOnly();
  if (!first && msg.resumed) {
    announce("Reconnected.");
    state.recording.joined(msg);
    state.recordings.recordingState(msg.recording);
    return;
  }
  if (placeLost) {
    closeAllPeers();
    announce("Reconnected, but the session had moved on: starting again.");
  }
  $("therapist-panel").hidden = state.role !== "therapist";
  $("end-session").hidden = state.role !== "therapist";
  if (state.role === "therapist") {
    lobby.render(msg.lobby || []);
    lobby.renderDenied(msg.denied || []);
  }
  state.recordings.joined(msg);
  if (msg.state === "waiting") {
    enterWaiting(msg);
  } else {
    enterCall(msg.peers || []);
  }
  state.recording.joined(msg);
}

function presence(present, say) {
  $("therapist-presence").textContent = present
    ? "Your therapist is here."
    : "Your therapist has not arrived yet. You can wait here.";
  if (say) announce(present ? "Your therapist has arrived." : "Your therapist has stepped away.");
}

function enterWaiting(msg) {
  show("waiting");
  presence(msg.therapist_present, false);
  $("lobby-notice").hidden = !msg.notice;
  $("lobby-notice-text").textContent = msg.notice || "";
  state.waitingSince = Date.now();
  const tick = () => {
    $("waited").textContent = minutesText((Date.now() - state.waitingSince) / 1000);
  };
  tick();
  clearInterval(state.waitTimer);
  state.waitTimer = setInterval(tick, 1000);
  showPreview(state.media);
}

// ---------- the call ----------

function enterCall(peers) {
  clearInterval(state.waitTimer);
  // Peer connections first, so that they are ready when the offers arrive; the screen
  // change (layout, the self view starting) can follow.
  // Those already in the room make the offers to us.
  for (const peer of peers) addPeer(peer, { offerer: false });
  show("call");
  $("connection").hidden = false;
  if (state.chatOnly) chat.open(false);
  updateControls();
  clearInterval(state.statsTimer);
  state.statsTimer = setInterval(() => {
    pollStats();
    lobby.tick();
  }, STATS_INTERVAL_MS);
  updateConnection();
}

function localTracks() {
  return {
    audio: state.media.audioTrack,
    video: state.cameraOn ? state.media.videoTrack : null,
  };
}

function addPeer(info, { offerer = true } = {}) {
  chat.remember(info.id, info.name);
  const known = state.peers.get(info.id);
  if (known) {
    // Learned of this peer from its first signal; now we know its name, and whether it
    // joined after us (then we make the offer).
    known.info = info;
    if (offerer) known.link?.becomeOfferer();
    nameTile(known.tile, info.name);
    return;
  }
  if (info.id === state.selfId) return;
  const tile = newTile(info, state.choices.speakerId);
  $("alone").hidden = true;
  const entry = { info, tile, remote: { audio: true, video: true, wantsVideo: true }, link: null };
  if (state.chatOnly || info.media === false) {
    // No audio or video between us: no peer connection (which could only be refused and
    // rebuilt for ever), just the name and a calm note.
    chatTile(tile);
    state.peers.set(info.id, entry);
    updateConnection();
    return;
  }
  const remoteStream = new MediaStream();
  tile.querySelector("video").srcObject = remoteStream;
  tile.querySelector("audio").srcObject = remoteStream;
  entry.link = new PeerLink({
    peerId: info.id,
    // Each pair agrees on who yields when both offer at once.
    polite: state.selfId > info.id,
    offerer,
    iceServers: state.iceServers,
    tracks: localTracks(),
    send: (data) => send({ type: "signal", to: info.id, data }),
    onTrack: (track) => {
      for (const old of remoteStream.getTracks().filter((t) => t.kind === track.kind)) {
        remoteStream.removeTrack(old);
      }
      remoteStream.addTrack(track);
    },
    onState: (quality) => peerQuality(info.id, quality, false),
  });
  state.peers.set(info.id, entry);
  sendState(entry);
  updateConnection();
}

function removePeer(id, reason) {
  const entry = state.peers.get(id);
  if (!entry) return;
  entry.link?.close();
  entry.tile.remove();
  state.peers.delete(id);
  $("alone").hidden = state.peers.size > 0;
  announce(
    reason === "timeout"
      ? `${entry.info.name} lost their connection and left.`
      : `${entry.info.name} left.`,
  );
  updateConnection();
}

function closeAllPeers() {
  for (const entry of state.peers.values()) {
    entry.link?.close();
    entry.tile.remove();
  }
  state.peers.clear();
  clearInterval(state.statsTimer);
}

function peerQuality(id, quality, fromServer) {
  const entry = state.peers.get(id);
  if (!entry) return;
  if (fromServer && quality === "reconnecting") {
    announce(`${entry.info.name} is reconnecting.`);
  } else if (fromServer && quality === "connected") {
    announce(`${entry.info.name} is back.`);
    if (entry.link) quality = entry.link.quality;
  }
  if (!entry.link) {
    chatPeerAway(entry.tile, quality === "reconnecting");
    return;
  }
  qualityNote(entry.tile, quality);
  updateConnection();
}

function updateConnection() {
  const box = $("connection");
  let overall = "connecting";
  // Only peers we exchange media with count: a chat-only tile is never "connecting".
  const qualities = [...state.peers.values()].filter((p) => p.link).map((p) => p.tile.dataset.quality);
  if (state.socketStatus === "reconnecting") overall = "reconnecting";
  else if (qualities.includes("poor")) overall = "poor";
  else if (qualities.includes("reconnecting")) overall = "reconnecting";
  else if (qualities.includes("connected")) overall = "connected";
  else if (state.socketStatus === "open" && qualities.length === 0) overall = "connected";
  if (box.dataset.state !== overall) {
    box.dataset.state = overall;
    $("connection-text").textContent = QUALITY_TEXT[overall];
  }
}

async function pollStats() {
  for (const entry of state.peers.values()) {
    if (!entry.link) continue;
    const sample = await entry.link.sample().catch(() => null);
    if (!sample) continue;
    // Exposed on the tile so that what the indicator is based on can be checked.
    entry.tile.dataset.framesDecoded = String(sample.framesDecoded);
    entry.tile.dataset.audioEnergy = String(sample.audioEnergy);
    entry.tile.dataset.iceRestarts = String(entry.link.iceRestarts);
    entry.tile.dataset.rebuilds = String(entry.link.rebuilds);
  }
}

// Tells peers our microphone and camera state, and whether we want their video.
function sendState(entry) {
  const data = {
    kind: "state",
    audio: state.micOn && Boolean(state.media.audioTrack),
    video: state.cameraOn && Boolean(state.media.videoTrack),
    wantsVideo: !state.audioOnly,
  };
  if (state.chatOnly) return; // this link may not signal: nothing to tell
  const targets = entry ? [entry] : state.peers.values();
  for (const e of targets) if (e.link) send({ type: "signal", to: e.info.id, data });
}

function remoteState(entry, data) {
  entry.remote = { audio: Boolean(data.audio), video: Boolean(data.video), wantsVideo: data.wantsVideo !== false };
  remoteNote(entry.tile, entry.remote, state.audioOnly);
  // Someone on audio only does not want our video: stop sending it to them.
  entry.link.setTrack("video", entry.remote.wantsVideo && state.cameraOn ? state.media.videoTrack : null);
}

function updateControls() {
  const mic = $("toggle-mic");
  mic.setAttribute("aria-pressed", String(!state.micOn));
  mic.textContent = state.micOn ? "Mute" : "Unmute";
  const cam = $("toggle-camera");
  cam.setAttribute("aria-pressed", String(!state.cameraOn));
  cam.textContent = state.cameraOn ? "Camera off" : "Camera on";
  cam.disabled = state.audioOnly;
  $("toggle-audio-only").setAttribute("aria-pressed", String(state.audioOnly));
  showPreview(state.media);
  for (const entry of state.peers.values()) {
    if (!entry.link) continue; // a chat-only tile keeps its note
    videoNote(entry.tile, entry.remote, state.audioOnly);
  }
}

async function setCamera(on) {
  if (state.busy) return;
  if (on && !state.media.videoTrack) {
    state.busy = true; // one camera request at a time, or a second one would leak a track
    $("toggle-camera").disabled = true;
    try {
      await state.media.startVideo(state.choices.videoId);
    } catch {
      alertText("We could not start your camera.");
      return;
    } finally {
      state.busy = false;
      $("toggle-camera").disabled = state.audioOnly;
    }
  }
  if (!on) state.media.stopVideo();
  state.cameraOn = on;
  for (const entry of state.peers.values()) {
    await entry.link?.setTrack("video", on && entry.remote.wantsVideo ? state.media.videoTrack : null);
  }
  sendState();
  updateControls();
  state.recording.tracksChanged();
}

function wireCall() {
  $("toggle-mic").addEventListener("click", async () => {
    if (state.busy) return;
    if (!state.media.audioTrack) {
      state.busy = true;
      try {
        const track = await state.media.startAudio();
        for (const entry of state.peers.values()) await entry.link?.setTrack("audio", track);
        state.recording.tracksChanged();
      } catch {
        alertText("We could not start your microphone.");
        return;
      } finally {
        state.busy = false;
      }
      state.micOn = true;
    } else {
      state.micOn = !state.micOn;
      state.media.audioTrack.enabled = state.micOn;
    }
    announce(state.micOn ? "Microphone on." : "Microphone muted.");
    sendState();
    updateControls();
  });
  $("toggle-camera").addEventListener("click", async () => {
    await setCamera(!state.cameraOn);
    announce(state.cameraOn ? "Camera on." : "Camera off.");
  });
  $("toggle-audio-only").addEventListener("click", async () => {
    state.audioOnly = !state.audioOnly;
    await setCamera(!state.audioOnly);
    announce(state.audioOnly ? "Audio only: video is paused both ways." : "Video is back on.");
  });
  chat.wire();
  $("leave").addEventListener("click", leaveNow);
  $("waiting-leave").addEventListener("click", leaveNow);
  $("end-session").addEventListener("click", () => {
    if (window.confirm("End the session for everyone?")) send({ type: "end" });
  });
  $("notice-form").addEventListener("submit", (e) => {
    e.preventDefault();
    send({ type: "lobby_notice", text: $("notice-text").value.trim() });
    announce("Notice posted to the waiting room.");
  });
}

// Leaving happens at once on this side, connected or not: media off, the left screen.
function leaveNow() {
  const signaling = state.signaling;
  if (signaling?.isOpen) {
    signaling.send({ type: "leave" }); // the server answers `left` and closes the socket
  } else {
    signaling?.close(); // away: the server lets the place go when its grace period ends
  }
  endSession(
    "You have left the session",
    "If you left by mistake, you can join again.",
    [{ label: "Join again", run: rejoin }],
    { afterSession: true },
  );
}

/**
 * The one teardown: recording, peer connections, camera and microphone, timers; then the
 * screen that says why, and (when the session itself is over) the recordings after it.
 * @param {string} title
 * @param {string} text
 * @param {{ label: string, run: () => void }[]} [actions]
 * @param {{ afterSession?: boolean }} [options]
 */
function endSession(title, text, actions = [], { afterSession = false } = {}) {
  state.recording.reset();
  closeAllPeers();
  state.media.stop();
  message(title, text, actions);
  if (afterSession) recordingsAfterSession();
}

// A therapist of a room that records finds the recordings on the screen after the session,
// also when that screen comes from opening the link again after the end (the link's own
// settings say whether the room records then: the page never joined).
function recordingsAfterSession() {
  const claims = state.claims;
  if (
    !state.recordings.enabled &&
    claims?.role === "therapist" &&
    claims.settings?.recording === "consent" &&
    permits(claims.perms, "record")
  ) {
    state.recordings.enable(claims.room);
  }
  state.recordings.afterSession();
}

function pageWasReloaded() {
  const nav = /** @type {PerformanceNavigationTiming | undefined} */ (performance.getEntriesByType?.("navigation")?.[0]);
  return nav?.type === "reload";
}

// ---------- start ----------

async function main() {
  state.token = takeToken(window.location, window.history);
  state.newDevice = takeNewDevice();
  state.claims = state.token ? readClaims(state.token) : null;
  // Signed, not secret: the claims say before joining whether this link takes part in audio
  // and video. The server enforces it regardless; this only spares a pointless camera prompt.
  state.chatOnly = Boolean(state.claims) && !permits(state.claims.perms, "signal");
  if (!state.token) {
    // A bookmark of /join, or a tab opened afresh: the link is kept only in the tab it was
    // opened in.
    message("Please open the link from your message again.", "");
    return;
  }
  if (!state.claims) {
    message(
      "This link is incomplete",
      "Please open the full link you were sent. If it still does not work, ask for a new one.",
    );
    return;
  }
  // Before anything is asked of the browser (camera, socket): can it take part at all?
  const problem = supportProblem(window, !state.chatOnly);
  if (problem) {
    document.body.dataset.missing = problem.missing.join(" ");
    console.warn(`This browser lacks ${problem.missing.join(", ")}.`);
    const chatOnly = { label: "Continue with chat only", run: () => start(true) };
    message(problem.title, problem.text, problem.chat ? [chatOnly] : []);
    const list = $("message-list");
    for (const name of problem.browsers) {
      const item = document.createElement("li");
      item.textContent = name;
      list.append(item);
    }
    list.hidden = problem.browsers.length === 0;
    $("message-note").textContent = problem.note;
    $("message-note").hidden = false;
    return;
  }
  await start(false);
}

/**
 * The device check, once the browser can take part.
 * @param {boolean} withoutCamera the browser cannot reach a camera or microphone, and the
 *   person chose to continue with chat only: they still see and hear the call.
 */
async function start(withoutCamera) {
  wirePrejoin();
  wireCall();
  state.recording = new Recording({
    send,
    announce,
    // The recording leg sends what the call sends: a muted microphone records silence.
    tracks: () => localTracks(),
    canSend: () => Boolean(state.signaling?.isOpen),
  });
  state.recordings = new RecordingsPanel({ token: () => state.token, announce });
  if (state.chatOnly) {
    becomeChatOnly();
    chatOnlyPrejoin(); // no camera or microphone is asked for: a WebSocket is all it needs
    return;
  }
  if (withoutCamera) {
    // Chosen on the message already: straight in, seeing and hearing the call, sending none.
    state.micOn = false;
    state.cameraOn = false;
    $("prejoin-title").textContent = "Join your session";
    show("prejoin");
    $("prejoin-name").textContent = state.claims?.name || "Guest";
    $("prejoin-devices").hidden = true;
    $("device-problem").hidden = false;
    $("device-problem-text").textContent =
      "This browser cannot use a camera or microphone, so you are joining with chat only: " +
      "you will see and hear your therapist and can type to them.";
    for (const id of ["retry-devices", "join-audio-only", "join-chat-only"]) $(id).hidden = true;
    for (const id of ["toggle-mic", "toggle-camera", "toggle-audio-only"]) $(id).hidden = true;
    $("waiting-preview-wrap").hidden = true; // no camera to preview
    $("self-view").hidden = true;
    join();
    return;
  }
  await prejoin();
}

wireNotice();
main();
