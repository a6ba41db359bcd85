// talkie studio, the live half: one RTCPeerConnection receiving the scene and a "control" data
// channel speaking the JSON control protocol (see README). Reconnects by itself when the peer or
// the server goes away; a server error is shown in words next to the control that caused it.
"use strict";

const live = {
  pc: null,
  channel: null,
  sessionId: null,
  secret: null,
  sceneId: null, // the scene the session was opened for (its series' cast and set)
  seriesId: null,
  wanted: false, // the user asked to be connected: keep reconnecting
  retries: 0,
  retryTimer: null,
  statsTimer: null,
  lastFrames: null,
  lastStatsAt: null,
  lastControl: "say", // the error slot of the control that sent the last message
  recording: null, // {takeId, sceneId, startedAt}
  recTimer: null,
  listeners: [],
  cast: [],
};
window.talkie = live; // for tests and curious people

function setState(state, detail) {
  $("state").dataset.state = state;
  $("state").textContent = detail ? `${state}: ${detail}` : state;
  $("connect").textContent = live.wanted ? "Disconnect" : "Connect";
}

function onLive(listener) {
  live.listeners.push(listener);
}

function setCast(names) {
  live.cast = names;
  const select = $("speaker");
  const current = select.value;
  const extra = (window.studio && window.studio.characterNames()) || [];
  const all = [...names, ...extra.filter((n) => !names.includes(n))];
  select.replaceChildren(...all.map((n) => new Option(n, n)));
  if (all.includes(current)) select.value = current;
  updateAddresses();
}

function onEvent(event) {
  switch (event.type) {
    case "hello":
      live.sessionId = event.session_id;
      setCast(event.cast);
      log(`session ${event.session_id}: ${event.cast.join(", ")} on the ${event.set} set`);
      break;
    case "scene":
      setCast(event.cast);
      log(`scene: ${event.cast.join(", ")} (${event.set})`);
      break;
    case "line_started":
      $("latency").textContent = `${event.latency_ms} ms`;
      log(`▶ ${event.speaker}: ${event.text} (t=${event.media_time_s}s, ${event.latency_ms} ms)`);
      break;
    case "line_ended":
      if (event.interrupted) log(`■ ${event.speaker} interrupted at t=${event.media_time_s}s`);
      break;
    case "take_started":
      live.recording = { takeId: event.take_id, sceneId: event.scene_id, startedAt: performance.now() };
      showRecording();
      log(`● recording ${event.name} (${event.take_id})`);
      break;
    case "take_stopped":
      live.recording = null;
      showRecording();
      log(`■ take ${event.name}: ${seconds(event.duration_s)}, ${event.status}`);
      break;
    case "input_bound":
      log(`${event.kind} input drives ${event.character} (+${event.delay_ms} ms)`);
      break;
    case "input_ended":
      log(`${event.character}: ${event.kind || "live"} input ended (${event.reason})`);
      if (live.micTrack && event.character === live.micCharacter) setMic(null);
      break;
    case "error":
      log(`error (${event.code}): ${event.message}`, "error");
      showError(live.lastControl, event.message);
      break;
  }
  for (const listener of live.listeners) listener(event);
}

// Send a control message on behalf of the control whose error slot is ``slot``.
function send(message, slot = "say") {
  live.lastControl = slot;
  showError(slot, "");
  if (!live.channel || live.channel.readyState !== "open") {
    showError(slot, "not connected: press Connect first");
    return false;
  }
  live.channel.send(JSON.stringify(message));
  return true;
}

function closePeer() {
  clearInterval(live.statsTimer);
  if (live.channel) live.channel.onclose = null;
  if (live.pc) {
    live.pc.onconnectionstatechange = null;
    live.pc.close();
  }
  if (live.sessionId && live.secret) {
    const headers = { "X-Talkie-Secret": live.secret };
    if (token) headers.Authorization = `Bearer ${token}`;
    fetch(`/sessions/${live.sessionId}`, { method: "DELETE", headers, keepalive: true }).catch(() => {});
  }
  live.pc = live.channel = live.sessionId = live.secret = null;
  live.recording = null;
  showRecording();
}

// A new session; with a scene, the session plays its series' cast and the scene's set.
async function connect() {
  clearTimeout(live.retryTimer);
  closePeer();
  live.wanted = true;
  setState("connecting");
  showError("connect", "");
  const pc = new RTCPeerConnection();
  live.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  // sendrecv: the voices come back on it, and the Mic button puts the microphone on it later
  // (replaceTrack, no renegotiation); the server binds it to a character on {"type": "mic"}.
  live.micSender = pc.addTransceiver("audio", { direction: "sendrecv" }).sender;
  if (live.micTrack) live.micTrack.stop();
  live.micTrack = null;
  setMic(null);
  const channel = pc.createDataChannel("control");
  live.channel = channel;
  channel.onmessage = (e) => onEvent(JSON.parse(e.data));
  channel.onclose = () => { if (live.pc === pc) scheduleReconnect("the control channel closed"); };
  const stream = new MediaStream();
  $("video").srcObject = stream;
  pc.ontrack = (e) => {
    stream.addTrack(e.track);
    $("video").play().catch(() => {});
  };
  pc.onconnectionstatechange = () => {
    if (live.pc !== pc) return;
    setState(pc.connectionState);
    if (pc.connectionState === "connected") live.retries = 0;
    if (pc.connectionState === "failed" || pc.connectionState === "closed") scheduleReconnect(`connection ${pc.connectionState}`);
    if (pc.connectionState === "disconnected") {
      setTimeout(() => { if (live.pc === pc && pc.connectionState === "disconnected") scheduleReconnect("connection lost"); }, 3000);
    }
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
    setTimeout(resolve, 5000); // send what was gathered; the server learns the rest from checks
  });
  const sceneId = window.studio ? window.studio.selectedSceneId() : null;
  const body = { sdp: pc.localDescription.sdp, type: pc.localDescription.type };
  if (sceneId) body.scene_id = sceneId;
  let answer;
  try {
    answer = await api("POST", "/offer", body);
  } catch (e) {
    if (live.pc !== pc) return;
    if (e.status === 0 || e.status >= 500) return scheduleReconnect(e.message);
    live.wanted = false;
    setState("failed");
    showError("connect", e.message);
    return;
  }
  if (live.pc !== pc) return;
  await pc.setRemoteDescription(answer);
  live.sessionId = answer.session_id;
  live.secret = answer.secret; // this session's credential: only its holder may drive or end it
  live.sceneId = answer.scene_id || null;
  live.seriesId = answer.series_id || null;
  $("where").textContent = sceneId && window.studio ? window.studio.describeScene(sceneId) : "";
  updateAddresses();
  clearInterval(live.statsTimer);
  live.statsTimer = setInterval(updateStats, 1000);
}

function scheduleReconnect(why) {
  if (!live.wanted || live.retryTimer) return;
  const delay = Math.min(10000, 1000 * 2 ** live.retries);
  live.retries += 1;
  setState("reconnecting", `${why}; trying again in ${Math.round(delay / 1000)} s`);
  log(`${why}; reconnecting in ${Math.round(delay / 1000)} s`, "error");
  live.retryTimer = setTimeout(() => {
    live.retryTimer = null;
    connect().catch((e) => scheduleReconnect(String(e.message || e)));
  }, delay);
}

function disconnect() {
  live.wanted = false;
  clearTimeout(live.retryTimer);
  live.retryTimer = null;
  closePeer();
  setState("closed");
}

async function updateStats() {
  if (!live.pc) return;
  const report = await live.pc.getStats();
  report.forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    if (s.kind === "video") {
      $("decoded").textContent = s.framesDecoded ?? "–";
      if (live.lastFrames !== null && s.framesDecoded !== undefined) {
        const dt = (s.timestamp - live.lastStatsAt) / 1000;
        $("fps").textContent = ((s.framesDecoded - live.lastFrames) / dt).toFixed(1);
      }
      live.lastFrames = s.framesDecoded;
      live.lastStatsAt = s.timestamp;
    } else if (s.kind === "audio") {
      $("audio-level").textContent = s.totalAudioEnergy !== undefined ? s.totalAudioEnergy.toFixed(4) : "–";
    }
  });
}

// -- recording ------------------------------------------------------------------------------

function showRecording() {
  const on = Boolean(live.recording);
  $("rec").hidden = !on;
  $("record").textContent = on ? "Stop recording" : "Record";
  $("record").classList.toggle("on", on);
  document.body.classList.toggle("recording", on);
  clearInterval(live.recTimer);
  if (!on) return;
  const tick = () => {
    const s = Math.floor((performance.now() - live.recording.startedAt) / 1000);
    $("rec-time").textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };
  tick();
  live.recTimer = setInterval(tick, 250);
}

function toggleRecording(slot = "record") {
  if (live.recording) return send({ type: "record", action: "stop" }, slot);
  const sceneId = window.studio && window.studio.selectedSceneId();
  if (!sceneId) {
    showError(slot, "pick a scene in the tree to record into");
    return false;
  }
  return send({ type: "record", action: "start", scene_id: sceneId }, slot);
}

// -- OBS, WHIP and WHEP addresses -------------------------------------------------------------

function updateAddresses() {
  if (!live.sessionId || !live.secret) {
    for (const id of ["obs-view", "whep-url", "whip-url"]) $(id).value = "connect first";
    return;
  }
  const view = new URL("/view", location.href);
  view.searchParams.set("session", live.sessionId);
  view.searchParams.set("secret", live.secret);
  view.searchParams.set("bg", $("chroma").value);
  if ($("transparent").checked) view.searchParams.set("key", "1");
  if (token) view.searchParams.set("token", token);
  $("obs-view").value = view.href;
  const whep = new URL(`/whep/${live.sessionId}`, location.href);
  whep.searchParams.set("secret", live.secret);
  $("whep-url").value = whep.href;
  const whip = new URL(`/whip/${live.sessionId}`, location.href);
  whip.searchParams.set("character", $("speaker").value || "MAYA");
  whip.searchParams.set("secret", live.secret);
  $("whip-url").value = whip.href;
}

async function copyField(id) {
  const field = $(id);
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
  } catch (e) {
    document.execCommand("copy");
  }
  log(`copied: ${field.value}`);
}

// -- microphone -------------------------------------------------------------------------------

function setMic(character) {
  live.micCharacter = character;
  $("mic").textContent = character ? `Mic on: ${character}` : "Mic";
  $("mic").classList.toggle("warn", Boolean(character));
}

async function toggleMic() {
  if (!live.pc || !live.micSender) return showError("say", "connect first");
  if (live.micTrack) {
    send({ type: "mic", character: null });
    await live.micSender.replaceTrack(null);
    live.micTrack.stop();
    live.micTrack = null;
    return setMic(null);
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  live.micTrack = stream.getAudioTracks()[0];
  await live.micSender.replaceTrack(live.micTrack);
  const character = $("speaker").value;
  send({ type: "mic", character });
  setMic(character);
}

// -- controls and keys ------------------------------------------------------------------------

$("connect").addEventListener("click", () => {
  if (live.wanted) return disconnect();
  connect().catch((e) => { setState("failed"); showError("connect", String(e.message || e)); });
});
$("say-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("line").value.trim();
  if (!text) return;
  if (send({ type: "say", speaker: $("speaker").value, text, cut_in: $("cut-in").checked })) $("line").value = "";
});
$("interrupt").addEventListener("click", () => send({ type: "interrupt" }));
$("record").addEventListener("click", () => toggleRecording());
$("mic").addEventListener("click", () => toggleMic().catch((e) => showError("say", `microphone: ${e.message || e}`)));
$("speaker").addEventListener("change", updateAddresses);
$("chroma").addEventListener("input", updateAddresses);
$("transparent").addEventListener("change", updateAddresses);
document.querySelectorAll("[data-copy]").forEach((b) => b.addEventListener("click", () => copyField(b.dataset.copy)));

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") {
    e.preventDefault();
    if (live.channel && live.channel.readyState === "open") send({ type: "interrupt" });
  } else if ((e.key === "r" || e.key === "R") && (e.altKey || (!typing(e.target) && !e.ctrlKey && !e.metaKey))) {
    e.preventDefault();
    toggleRecording();
  }
});

window.addEventListener("pagehide", () => { live.wanted = false; closePeer(); });
updateAddresses();
