// talkie demo client: one RTCPeerConnection receiving the scene, a "control" data channel
// carrying the JSON control protocol (see README). No build step, no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");
const ui = {
  pc: null,
  channel: null,
  sessionId: null,
  statsTimer: null,
  lastFrames: null,
  lastStatsAt: null,
};
window.talkie = ui; // for tests and curious people

function log(text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  $("log").prepend(li);
  while ($("log").children.length > 200) $("log").lastChild.remove();
}

function setState(state) {
  $("state").dataset.state = state;
  $("state").textContent = state;
}

function setCast(names) {
  const select = $("speaker");
  const current = select.value;
  select.replaceChildren(...names.map((n) => new Option(n, n)));
  if (names.includes(current)) select.value = current;
}

function onEvent(event) {
  switch (event.type) {
    case "hello":
      ui.sessionId = event.session_id;
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
    case "input_bound":
      log(`${event.kind} input drives ${event.character} (+${event.delay_ms} ms)`);
      break;
    case "input_ended":
      log(`${event.character}: ${event.kind || "live"} input ended (${event.reason})`);
      if (ui.micTrack && event.character === ui.micCharacter) setMic(null);
      break;
    case "error":
      log(`error (${event.code}): ${event.message}`, "error");
      break;
  }
}

function send(message) {
  if (!ui.channel || ui.channel.readyState !== "open") {
    log("not connected", "error");
    return;
  }
  ui.channel.send(JSON.stringify(message));
}

async function connect() {
  if (ui.pc) ui.pc.close();
  setState("connecting");
  const pc = new RTCPeerConnection();
  ui.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  // sendrecv: the voices come back on it, and the Mic button puts the microphone on it later
  // (replaceTrack, no renegotiation); the server binds it to a character on {"type": "mic"}.
  ui.micSender = pc.addTransceiver("audio", { direction: "sendrecv" }).sender;
  if (ui.micTrack) ui.micTrack.stop();
  ui.micTrack = null;
  setMic(null);
  const channel = pc.createDataChannel("control");
  ui.channel = channel;
  channel.onmessage = (e) => onEvent(JSON.parse(e.data));
  const stream = new MediaStream();
  $("video").srcObject = stream;
  pc.ontrack = (e) => {
    stream.addTrack(e.track);
    $("video").play().catch(() => {});
  };
  pc.onconnectionstatechange = () => setState(pc.connectionState);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
  });
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch("/offer", {
    method: "POST",
    headers,
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
  });
  const answer = await response.json();
  if (!response.ok) {
    setState("failed");
    log(`connect failed: ${answer.message}`, "error");
    return;
  }
  await pc.setRemoteDescription(answer);
  ui.secret = answer.secret; // this session's credential: only its holder may drive or end it
  const view = new URL(`/view?session=${answer.session_id}&secret=${encodeURIComponent(answer.secret)}`, location.href);
  if (token) view.searchParams.set("token", token);
  log(`OBS browser source for this scene: ${view}`);
  clearInterval(ui.statsTimer);
  ui.statsTimer = setInterval(updateStats, 1000);
}

async function updateStats() {
  if (!ui.pc) return;
  const report = await ui.pc.getStats();
  report.forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    if (s.kind === "video") {
      $("decoded").textContent = s.framesDecoded ?? "–";
      if (ui.lastFrames !== null && s.framesDecoded !== undefined) {
        const dt = (s.timestamp - ui.lastStatsAt) / 1000;
        $("fps").textContent = ((s.framesDecoded - ui.lastFrames) / dt).toFixed(1);
      }
      ui.lastFrames = s.framesDecoded;
      ui.lastStatsAt = s.timestamp;
    } else if (s.kind === "audio") {
      $("audio-level").textContent = s.totalAudioEnergy !== undefined ? s.totalAudioEnergy.toFixed(4) : "–";
    }
  });
}

$("connect").addEventListener("click", () => connect().catch((e) => log(`connect failed: ${e}`, "error")));
$("say-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("line").value.trim();
  if (!text) return;
  send({ type: "say", speaker: $("speaker").value, text, cut_in: $("cut-in").checked });
  $("line").value = "";
});
$("script-form").addEventListener("submit", (e) => {
  e.preventDefault();
  send({ type: "script", text: $("script").value });
});
$("interrupt").addEventListener("click", () => send({ type: "interrupt" }));

function setMic(character) {
  ui.micCharacter = character;
  $("mic").textContent = character ? `Mic on: ${character}` : "Mic";
  $("mic").classList.toggle("warn", Boolean(character));
}

async function toggleMic() {
  if (!ui.pc || !ui.micSender) return log("connect first", "error");
  if (ui.micTrack) {
    send({ type: "mic", character: null });
    await ui.micSender.replaceTrack(null);
    ui.micTrack.stop();
    ui.micTrack = null;
    return setMic(null);
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  ui.micTrack = stream.getAudioTracks()[0];
  await ui.micSender.replaceTrack(ui.micTrack);
  const character = $("speaker").value;
  send({ type: "mic", character });
  setMic(character);
}
$("mic").addEventListener("click", () => toggleMic().catch((e) => log(`microphone: ${e}`, "error")));
