// @ts-check
// The local camera and microphone: opening them, the device pickers, the level meter, and
// plain-words explanations when something is missing or refused.

export function explainMediaError(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return (
        "Your browser is not letting this page use your camera or microphone. " +
        "You can allow them in your browser's site settings and try again, " +
        "or continue without them."
      );
    case "NotFoundError":
    case "OverconstrainedError":
      return "We could not find a camera or microphone on this device.";
    case "NotReadableError":
    case "AbortError":
      return (
        "Your camera or microphone seems to be in use by another app. " +
        "Close that app and try again, or continue without it."
      );
    default:
      return "We could not start your camera or microphone.";
  }
}

export class LocalMedia {
  constructor() {
    this.audioTrack = null;
    this.videoTrack = null;
    this.meter = null;
    // Bumped by stop(): a camera or microphone that opens after it is closed at once, so
    // nothing stays live (camera light on) after leaving or choosing chat only.
    this.epoch = 0;
  }

  async request(constraints) {
    const epoch = this.epoch;
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    if (epoch !== this.epoch) {
      stream.getTracks().forEach((t) => t.stop());
      throw new DOMException("Stopped while opening", "AbortError");
    }
    return stream;
  }

  get stream() {
    return new MediaStream([this.audioTrack, this.videoTrack].filter(Boolean));
  }

  // Tries camera and microphone together, then the microphone alone. Returns what it got
  // and, if anything failed, a sentence for the person.
  async open({ audioId = null, videoId = null, video = true } = {}) {
    const audio = audioId ? { deviceId: { exact: audioId } } : true;
    const cam = video ? (videoId ? { deviceId: { exact: videoId } } : true) : false;
    try {
      const stream = await this.request({ audio, video: cam });
      this.replace(stream);
      return { audio: true, video: Boolean(cam), problem: null };
    } catch (error) {
      if (!cam) return { audio: false, video: false, problem: explainMediaError(error) };
      try {
        const stream = await this.request({ audio, video: false });
        this.replace(stream);
        return {
          audio: true,
          video: false,
          problem: "We could not start your camera. " + explainMediaError(error),
        };
      } catch {
        return { audio: false, video: false, problem: explainMediaError(error) };
      }
    }
  }

  replace(stream) {
    this.stopMeter();
    if (this.audioTrack) this.audioTrack.stop();
    if (this.videoTrack) this.videoTrack.stop();
    this.audioTrack = stream.getAudioTracks()[0] || null;
    this.videoTrack = stream.getVideoTracks()[0] || null;
  }

  async startVideo(videoId = null) {
    const video = videoId ? { deviceId: { exact: videoId } } : true;
    const stream = await this.request({ video });
    if (this.videoTrack) this.videoTrack.stop();
    this.videoTrack = stream.getVideoTracks()[0];
    return this.videoTrack;
  }

  async startAudio() {
    const stream = await this.request({ audio: true });
    if (this.audioTrack) this.audioTrack.stop();
    this.audioTrack = stream.getAudioTracks()[0];
    return this.audioTrack;
  }

  // Stopping the track turns the camera light off, which people notice and trust.
  stopVideo() {
    if (this.videoTrack) this.videoTrack.stop();
    this.videoTrack = null;
  }

  stop() {
    this.epoch += 1;
    this.stopMeter();
    if (this.audioTrack) this.audioTrack.stop();
    if (this.videoTrack) this.videoTrack.stop();
    this.audioTrack = null;
    this.videoTrack = null;
  }

  static async devices() {
    try {
      const all = await navigator.mediaDevices.enumerateDevices();
      return {
        cameras: all.filter((d) => d.kind === "videoinput"),
        mics: all.filter((d) => d.kind === "audioinput"),
        speakers: all.filter((d) => d.kind === "audiooutput"),
      };
    } catch {
      return { cameras: [], mics: [], speakers: [] };
    }
  }

  startMeter(meterElement) {
    this.stopMeter();
    if (!this.audioTrack) return;
    const context = new AudioContext();
    const source = context.createMediaStreamSource(new MediaStream([this.audioTrack]));
    const analyser = context.createAnalyser();
    analyser.fftSize = 512;
    source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const tick = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      meterElement.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
    };
    const timer = setInterval(tick, 100);
    // Browsers start audio contexts suspended until the person interacts with the page. The
    // same press can stop the meter (Join): a resume of a closed context is nothing to report.
    const resume = () => context.resume().catch(() => undefined);
    document.addEventListener("pointerdown", resume, { once: true });
    document.addEventListener("keydown", resume, { once: true });
    this.meter = { context, timer, resume };
  }

  stopMeter() {
    if (!this.meter) return;
    clearInterval(this.meter.timer);
    document.removeEventListener("pointerdown", this.meter.resume);
    document.removeEventListener("keydown", this.meter.resume);
    this.meter.context.close();
    this.meter = null;
  }
}
