// @ts-check
// Before joining and in the call: the device pickers and the self views.
import { $ } from "./dom.js";
import { LocalMedia } from "./media.js";

/**
 * The camera, microphone and speaker pickers, with what is in use selected.
 * @param {LocalMedia} media
 * @param {string | null} speakerId the speaker chosen, if any
 */
export async function fillDevicePickers(media, speakerId) {
  const { cameras, mics, speakers } = await LocalMedia.devices();
  const fill = (select, devices, current, fallback) => {
    select.replaceChildren();
    devices.forEach((d, i) => {
      const option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || `${fallback} ${i + 1}`;
      option.selected = d.deviceId === current;
      select.append(option);
    });
    select.disabled = devices.length === 0;
  };
  const activeCam = media.videoTrack?.getSettings().deviceId ?? null;
  const activeMic = media.audioTrack?.getSettings().deviceId ?? null;
  fill($("camera-select"), cameras, activeCam, "Camera");
  fill($("mic-select"), mics, activeMic, "Microphone");
  const canPickSpeaker = "setSinkId" in HTMLMediaElement.prototype && speakers.length > 0;
  $("speaker-field").hidden = !canPickSpeaker;
  if (canPickSpeaker) fill($("speaker-select"), speakers, speakerId, "Speaker");
}

/**
 * The self views: only the visible screen's one plays.
 * @param {LocalMedia} media
 */
export function showPreview(media) {
  const hasVideo = Boolean(media.videoTrack);
  // Only the visible screen's self view plays: hidden ones would still decode every frame.
  for (const [id, screen] of [
    ["preview", "screen-prejoin"],
    ["waiting-preview", "screen-waiting"],
    ["self-video", "screen-call"],
  ]) {
    const video = $(id);
    const wanted = hasVideo && !$(screen).hidden ? media.videoTrack : null;
    const current = video.srcObject?.getVideoTracks()[0] ?? null;
    if (current !== wanted) video.srcObject = wanted ? new MediaStream([wanted]) : null;
  }
  $("preview-off").hidden = hasVideo;
  $("self-off").hidden = hasVideo;
}
