// talkie /view: plays a scene over WHEP, full window, no controls (an OBS browser source).
// ?session=ID&secret=SECRET views an existing session (its secret comes with its answer), else a
// new scene (?cast=MAYA,LEO); ?bg=#rrggbb makes the set that solid colour (a chroma key);
// ?token= is passed on; &key=1 keys the bg colour out in the browser (chroma.js): the page is
// transparent where the set was, for an OBS browser source over a game. Reconnects when dropped.
"use strict";

const params = new URLSearchParams(location.search);
const session = params.get("session");
const bg = params.get("bg") || (["1", "true", "yes"].includes(params.get("key") || "") ? "#00ff00" : null);
const token = params.get("token");
const secret = params.get("secret");
const video = document.getElementById("video");
const note = document.getElementById("note");
window.talkieView = { state: "new", resource: null };

if (bg && /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(bg)) document.body.style.background = bg;
const keyed = ["1", "true", "yes"].includes(params.get("key") || "");
if (keyed) {
  document.body.classList.add("keyed");
  document.documentElement.style.background = "transparent";
  const canvas = document.getElementById("canvas");
  canvas.hidden = false;
  const keyer = new ChromaKeyer(video, canvas, bg || "#00ff00", { webgl: params.get("keyer") !== "2d" });
  window.talkieView.keyer = keyer;
  keyer.start();
}

function show(text) {
  note.textContent = text;
  window.talkieView.state = text;
}

async function play() {
  try {
    await video.play();
  } catch (e) {
    // Browsers outside OBS may refuse sound without a gesture: play muted, unmute on a click.
    video.muted = true;
    await video.play().catch(() => {});
    document.addEventListener("click", () => { video.muted = false; }, { once: true });
  }
}

async function connect() {
  show("connecting");
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  video.srcObject = stream;
  pc.ontrack = (e) => { stream.addTrack(e.track); play(); };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") show("");
    if (["failed", "closed", "disconnected"].includes(pc.connectionState)) retry(pc);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
  });
  const query = new URLSearchParams();
  if (bg) query.set("set", bg);
  if (!session && params.get("cast")) query.set("cast", params.get("cast"));
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (session && secret) headers["X-Talkie-Secret"] = secret;
  const url = (session ? `/whep/${encodeURIComponent(session)}` : "/whep") + (query.toString() ? `?${query}` : "");
  const response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
  if (response.status !== 201) {
    const reason = await response.json().catch(() => ({}));
    show(`cannot view: ${reason.message || response.status}`);
    pc.close();
    setTimeout(connect, 3000);
    return;
  }
  window.talkieView.resource = response.headers.get("Location");
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
}

let retrying = false;
function retry(pc) {
  if (retrying) return;
  retrying = true;
  pc.close();
  show("reconnecting");
  setTimeout(() => { retrying = false; connect().catch((e) => show(`error: ${e}`)); }, 2000);
}

window.addEventListener("pagehide", () => {
  const resource = window.talkieView.resource;
  if (resource) fetch(resource, { method: "DELETE", keepalive: true, headers: token ? { Authorization: `Bearer ${token}` } : {} });
});

connect().catch((e) => show(`error: ${e}`));
