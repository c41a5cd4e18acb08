// @ts-check
// One RTCPeerConnection per remote participant, negotiated with the perfect-negotiation
// pattern (one side polite, the other not) over the server's `signal` relay, with trickle
// ICE. When ICE fails: an ICE restart first, then, if that does not bring it back, a fresh
// connection (started by the impolite side, so the two do not both rebuild).

// A connection "disconnected" this long gets an ICE restart without waiting for "failed"
// (which can take half a minute); one still down this long after a restart is rebuilt.
const DISCONNECTED_GRACE_MS = 4000;
const RESTART_GRACE_MS = 8000;
// A connection that has not come up this long after it was built is built afresh, by the
// impolite side: a lost offer or answer, a stuck negotiation, or ICE connected with DTLS
// never completing (the side that answered sees ICE connect while the offerer, which never
// got the answer, cannot finish the handshake) leave it "connecting" for good otherwise.
const CONNECT_GRACE_MS = 15000;
// One signal's handling that has not settled in this time is given up, so that the signals
// after it are still applied (a closed connection can leave an operation pending for ever).
const SIGNAL_STEP_MS = 10000;
// Round-trip time or packet loss above these shows "poor connection".
const POOR_RTT_S = 0.4;
const POOR_LOSS = 0.05;

export class PeerLink {
  constructor({ peerId, polite, offerer, iceServers, tracks, send, onTrack, onState }) {
    this.peerId = peerId;
    this.polite = polite;
    // The first offer comes from whoever was in the room first; the newcomer waits for it.
    // That avoids a glare on every join; perfect negotiation covers the rest.
    this.awaitingOffer = !offerer;
    this.iceServers = iceServers;
    this.sendRaw = send; // (data) => void, relayed to this peer only
    this.onTrack = onTrack; // (MediaStreamTrack) => void
    this.onState = onState; // (quality) => void
    this.tracks = { audio: tracks.audio || null, video: tracks.video || null };
    this.last = null; // previous stats sample, for rates
    this.quality = "connecting";
    this.closed = false;
    this.restartTimer = null;
    this.disconnectTimer = null;
    this.connectTimer = null;
    this.iceRestarts = 0;
    this.rebuilds = 0;
    // Each fresh connection is a new generation; signals of an older one are dropped, so a
    // late offer from a connection already torn down cannot confuse its successor.
    this.generation = 0;
    // Signals are applied one at a time, in arrival order: a candidate must not be added
    // while the description it belongs to is still being set.
    this.queue = Promise.resolve();
    this.build();
  }

  build() {
    // A candidate pool gathers while the offer and answer are on their way, not after.
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, iceCandidatePoolSize: 1 });
    this.pc = pc;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.senders = { audio: null, video: null };
    this.stream = new MediaStream();
    for (const kind of ["audio", "video"]) {
      const track = this.tracks[kind];
      if (track) {
        this.senders[kind] = pc.addTrack(track, this.stream);
      } else if (!this.awaitingOffer) {
        // With nothing to send (chat only), the offer must still ask for the peer's media;
        // addTrack reuses this transceiver if the camera or microphone comes on later.
        pc.addTransceiver(kind, { direction: "recvonly" });
      }
    }
    pc.addEventListener("negotiationneeded", async () => {
      if (this.awaitingOffer) return; // fires again once the first offer is answered
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        this.send({ kind: "description", description: pc.localDescription.toJSON() });
      } catch (error) {
        console.warn("negotiation failed", error);
      } finally {
        this.makingOffer = false;
      }
    });
    pc.addEventListener("icecandidate", ({ candidate }) => {
      if (candidate) this.send({ kind: "candidate", candidate: candidate.toJSON() });
    });
    pc.addEventListener("track", ({ track }) => this.onTrack(track));
    pc.addEventListener("iceconnectionstatechange", () => this.iceChanged());
    pc.addEventListener("connectionstatechange", () => this.report());
    clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      if (pc !== this.pc || this.closed || pc.connectionState === "connected") return;
      if (!this.polite) this.rebuild(true);
    }, CONNECT_GRACE_MS);
  }

  send(data) {
    this.sendRaw({ ...data, gen: this.generation });
  }

  handleSignal(data) {
    this.queue = this.queue.then(() => settleWithin(this.apply(data), SIGNAL_STEP_MS));
    return this.queue;
  }

  async apply(data) {
    if (this.closed || !data || typeof data !== "object") return;
    const gen = Number.isInteger(data.gen) ? data.gen : 0;
    if (gen < this.generation) return;
    if (gen > this.generation) {
      // The peer started a fresh connection (its "reset" says so; a later signal implies it).
      this.generation = gen;
      this.rebuild(false);
    }
    if (data.kind === "reset") return;
    const pc = this.pc;
    try {
      if (data.kind === "description") {
        const description = data.description;
        // An offer is welcome unless we are making one, or are mid-way through our own
        // offer/answer (an answer being applied counts as done).
        const ready =
          !this.makingOffer && (pc.signalingState === "stable" || this.settingRemoteAnswer);
        const collision = description.type === "offer" && !ready;
        this.ignoreOffer = !this.polite && collision;
        if (this.ignoreOffer) return;
        this.settingRemoteAnswer = description.type === "answer";
        try {
          await pc.setRemoteDescription(description);
        } finally {
          this.settingRemoteAnswer = false;
        }
        if (description.type === "offer") {
          await pc.setLocalDescription();
          this.send({ kind: "description", description: pc.localDescription.toJSON() });
          this.awaitingOffer = false;
        }
      } else if (data.kind === "candidate") {
        try {
          await pc.addIceCandidate(data.candidate);
        } catch (error) {
          if (!this.ignoreOffer) throw error;
        }
      }
    } catch (error) {
      console.warn("signal handling failed", error);
    }
  }

  // This side was waiting for the peer's offer, having heard the peer's signal before word
  // that it joined after us; the one already in the room offers, so this side does. Nothing
  // of this connection has reached the peer (candidates follow an offer), so it is built
  // again as the offering side.
  becomeOfferer() {
    if (this.closed || !this.awaitingOffer || this.pc.remoteDescription) return;
    this.awaitingOffer = false;
    this.pc.close();
    this.build();
    this.report();
  }

  // Sends this track (or nothing, with null) to this peer, renegotiating only if needed.
  async setTrack(kind, track) {
    this.tracks[kind] = track;
    const sender = this.senders[kind];
    if (sender) {
      await sender.replaceTrack(track);
    } else if (track) {
      this.senders[kind] = this.pc.addTrack(track, this.stream);
    }
  }

  iceChanged() {
    const state = this.pc.iceConnectionState;
    if (state === "failed") {
      this.restart();
    } else if (state === "disconnected") {
      clearTimeout(this.disconnectTimer);
      this.disconnectTimer = setTimeout(() => {
        if (this.pc.iceConnectionState === "disconnected") this.restart();
      }, DISCONNECTED_GRACE_MS);
    } else if (state === "connected" || state === "completed") {
      clearTimeout(this.disconnectTimer);
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
    }
    this.report();
  }

  restart() {
    if (this.closed || this.restartTimer) return;
    this.iceRestarts += 1;
    this.pc.restartIce();
    // Only the impolite side rebuilds, so that the two do not both start over.
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      const now = this.pc.iceConnectionState;
      if (now === "connected" || now === "completed") return;
      if (!this.polite) this.rebuild(true);
      else this.restart();
    }, RESTART_GRACE_MS);
  }

  rebuild(tellPeer) {
    if (this.closed) return;
    clearTimeout(this.restartTimer);
    clearTimeout(this.disconnectTimer);
    this.restartTimer = null;
    this.rebuilds += 1;
    this.pc.close();
    if (tellPeer) {
      this.generation += 1;
      this.send({ kind: "reset" });
      // A description being applied to the connection just closed never settles (closed
      // connections abandon their pending operations): start the queue afresh.
      this.queue = Promise.resolve();
    }
    this.awaitingOffer = !tellPeer;
    this.build();
    this.report();
  }

  report() {
    const state = this.pc.connectionState;
    let quality = this.quality;
    if (state === "new" || state === "connecting") quality = "connecting";
    else if (state === "disconnected" || state === "failed") quality = "reconnecting";
    else if (state === "connected" && quality !== "poor") quality = "connected";
    this.setQuality(quality);
  }

  setQuality(quality) {
    if (quality === this.quality) return;
    this.quality = quality;
    this.onState(quality);
  }

  // Reads getStats: frames decoded, audio energy received, round-trip time and packet loss.
  async sample() {
    if (this.closed) return null;
    const report = await this.pc.getStats();
    const now = { framesDecoded: 0, audioEnergy: 0, lost: 0, received: 0, rtt: null };
    report.forEach((s) => {
      if (s.type === "inbound-rtp") {
        now.lost += s.packetsLost || 0;
        now.received += s.packetsReceived || 0;
        if (s.kind === "video") now.framesDecoded += s.framesDecoded || 0;
        if (s.kind === "audio") now.audioEnergy += s.totalAudioEnergy || 0;
      } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
        if (typeof s.currentRoundTripTime === "number") now.rtt = s.currentRoundTripTime;
      }
    });
    const before = this.last;
    this.last = now;
    if (this.pc.connectionState === "connected" && before) {
      const lost = now.lost - before.lost;
      const received = now.received - before.received;
      const lossRate = lost + received > 0 ? lost / (lost + received) : 0;
      // Packets were arriving and have stopped: the connection is stalling, before ICE
      // itself notices.
      const stalled = received === 0 && before.received > 0;
      const poor =
        stalled || lossRate > POOR_LOSS || (now.rtt !== null && now.rtt > POOR_RTT_S);
      this.setQuality(poor ? "poor" : "connected");
    }
    return now;
  }

  close() {
    this.closed = true;
    clearTimeout(this.restartTimer);
    clearTimeout(this.disconnectTimer);
    clearTimeout(this.connectTimer);
    this.pc.close();
  }
}

// Resolves when `promise` settles or after `ms`, whichever is first; never rejects.
function settleWithin(promise, ms) {
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => {
      console.warn("signal handling given up after", ms, "ms");
      resolve(undefined);
    }, ms);
  });
  return Promise.race([promise.catch(() => {}), late]).finally(() => clearTimeout(timer));
}
