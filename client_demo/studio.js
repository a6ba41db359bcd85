// talkie studio, the store half: the series / episode / scene tree, takes (play, choose, rename,
// delete), the script editor (each line played on its own), the series' cast and sets, exports.
// Everything goes through the REST API (see README) and the live session (live.js).
"use strict";

const studio = {
  series: [], // [{id, name}]
  details: {}, // series id -> {characters, sets, episodes}
  episodes: {}, // episode id -> {id, name, scenes: [...]}
  open: new Set(), // expanded series and episode ids
  selected: { series: null, episode: null, scene: null },
  scene: null, // the selected scene's detail (with its takes)
  scriptLines: [], // the checked script's lines: {speaker, text, source_line}
  exportPoll: null,
};
window.studio = {
  selectedSceneId: () => studio.selected.scene,
  characterNames: () => (studio.selected.series && studio.details[studio.selected.series]
    ? studio.details[studio.selected.series].characters.map((c) => c.name) : []),
  describeScene: (id) => {
    const ep = Object.values(studio.episodes).find((e) => e.scenes.some((s) => s.id === id));
    const scene = ep && ep.scenes.find((s) => s.id === id);
    const series = ep && studio.series.find((s) => s.id === ep.series_id);
    return scene ? `${series ? series.name : ""} › ${ep.name} › ${scene.name}` : "";
  },
  state: studio,
  refresh: () => refreshAll(),
};

// -- the tree ---------------------------------------------------------------------------------

async function loadSeries() {
  studio.series = (await api("GET", "/api/series")).series;
  for (const id of [...studio.open]) {
    if (id.startsWith("ser_") && studio.series.some((s) => s.id === id)) await loadSeriesDetail(id);
  }
}

async function loadSeriesDetail(id) {
  studio.details[id] = await api("GET", `/api/series/${id}`);
  for (const ep of studio.details[id].episodes) {
    if (studio.open.has(ep.id)) await loadEpisode(ep.id);
  }
}

async function loadEpisode(id) {
  studio.episodes[id] = await api("GET", `/api/episodes/${id}`);
}

async function refreshAll() {
  await guarded("tree", async () => {
    await loadSeries();
    renderTree();
    renderForms();
    if (studio.selected.scene) await loadScene();
    renderCast();
  });
}

function actions(kind, item, siblings) {
  const index = siblings.findIndex((s) => s.id === item.id);
  const path = { series: "series", episode: "episodes", scene: "scenes" }[kind];
  const buttons = [
    el("button", { type: "button", title: "rename", class: "icon", dataset: { act: "rename" }, onclick: () => rename(kind, item, path) }, "✎"),
  ];
  if (kind !== "series") {
    buttons.push(
      el("button", { type: "button", title: "move up", class: "icon", disabled: index <= 0, dataset: { act: "up" }, onclick: () => move(path, item, index - 1) }, "↑"),
      el("button", { type: "button", title: "move down", class: "icon", disabled: index >= siblings.length - 1, dataset: { act: "down" }, onclick: () => move(path, item, index + 1) }, "↓"),
    );
  }
  buttons.push(el("button", { type: "button", title: "delete", class: "icon danger", dataset: { act: "delete" }, onclick: () => remove(kind, item, path) }, "✕"));
  return el("span", { class: "acts" }, ...buttons);
}

function node(kind, item, siblings, children) {
  const selected = studio.selected[kind] === item.id;
  const label = el("button", {
    type: "button", class: `node ${kind}${selected ? " selected" : ""}`, dataset: { id: item.id, kind },
    onclick: () => select(kind, item),
  }, item.name);
  return el("li", { dataset: { id: item.id } }, el("div", { class: "item" }, label, actions(kind, item, siblings)), children);
}

function renderTree() {
  const tree = $("tree");
  tree.replaceChildren(...studio.series.map((series) => {
    let children = null;
    const detail = studio.details[series.id];
    if (studio.open.has(series.id) && detail) {
      children = el("ul", {}, ...detail.episodes.map((ep) => {
        let scenes = null;
        const epd = studio.episodes[ep.id];
        if (studio.open.has(ep.id) && epd) {
          scenes = el("ul", {}, ...epd.scenes.map((sc) => node("scene", sc, epd.scenes, null)));
        }
        return node("episode", ep, detail.episodes, scenes);
      }));
    }
    return node("series", series, studio.series, children);
  }));
}

function renderForms() {
  $("new-episode").hidden = !studio.selected.series;
  $("new-scene").hidden = !studio.selected.episode;
}

async function select(kind, item) {
  await guarded("tree", async () => {
    if (kind === "series") {
      studio.selected = { series: item.id, episode: null, scene: null };
      studio.open.add(item.id);
      await loadSeriesDetail(item.id);
    } else if (kind === "episode") {
      studio.selected = { series: item.series_id, episode: item.id, scene: null };
      studio.open.add(item.series_id).add(item.id);
      await loadEpisode(item.id);
    } else {
      const ep = studio.episodes[item.episode_id];
      studio.selected = { series: ep.series_id, episode: item.episode_id, scene: item.id };
    }
    renderTree();
    renderForms();
    renderCast();
    await loadScene();
    if (kind === "scene") await openSceneLive();
  });
}

// A scene of another series than the live session's: reconnect so the session plays its series.
async function openSceneLive() {
  if (!live.wanted) return;
  const ep = studio.episodes[studio.selected.episode];
  if (live.seriesId !== ep.series_id) {
    log(`opening ${window.studio.describeScene(studio.selected.scene)} with its series' cast`);
    await connect();
  } else {
    live.sceneId = studio.selected.scene;
    $("where").textContent = window.studio.describeScene(studio.selected.scene);
    const setId = studio.scene && studio.scene.set_id;
    const set = setId && studio.details[ep.series_id].sets.find((s) => s.id === setId);
    if (set) send({ type: "scene", set: set.backdrop }, "tree");
  }
}

async function rename(kind, item, path) {
  const name = prompt(`New name for ${kind} "${item.name}"`, item.name);
  if (name === null || name === item.name) return;
  await guarded("tree", async () => {
    await api("PATCH", `/api/${path}/${item.id}`, { name });
    await refreshAll();
  });
}

async function move(path, item, position) {
  await guarded("tree", async () => {
    await api("PATCH", `/api/${path}/${item.id}`, { position });
    await refreshAll();
  });
}

async function remove(kind, item, path) {
  const what = { series: "with all its episodes, scenes and takes", episode: "with its scenes and takes", scene: "with its takes" }[kind];
  if (!confirm(`Delete ${kind} "${item.name}" ${what}?`)) return;
  await guarded("tree", async () => {
    await api("DELETE", `/api/${path}/${item.id}`);
    if (studio.selected[kind] === item.id) {
      if (kind === "series") studio.selected = { series: null, episode: null, scene: null };
      if (kind === "episode") studio.selected.episode = studio.selected.scene = null;
      if (kind === "scene") studio.selected.scene = null;
    }
    await refreshAll();
  });
}

async function create(slot, input, path, after) {
  await guarded(slot, async () => {
    const name = $(input).value.trim();
    if (!name) throw new ApiError("type a name first", "bad_name", 400);
    const made = await api("POST", path, { name });
    $(input).value = "";
    await after(made);
  });
}

$("new-series").addEventListener("submit", (e) => {
  e.preventDefault();
  create("new-series", "new-series-name", "/api/series", async (made) => {
    await loadSeries();
    await select("series", made);
  });
});
$("new-episode").addEventListener("submit", (e) => {
  e.preventDefault();
  create("new-episode", "new-episode-name", `/api/series/${studio.selected.series}/episodes`, async (made) => {
    await loadSeriesDetail(made.series_id);
    await select("episode", made);
  });
});
$("new-scene").addEventListener("submit", (e) => {
  e.preventDefault();
  create("new-scene", "new-scene-name", `/api/episodes/${studio.selected.episode}/scenes`, async (made) => {
    await loadEpisode(made.episode_id);
    await select("scene", made);
  });
});

// -- takes ------------------------------------------------------------------------------------

async function loadScene() {
  if (!studio.selected.scene) {
    studio.scene = null;
    return renderTakes();
  }
  studio.scene = await api("GET", `/api/scenes/${studio.selected.scene}`);
  renderTakes();
  renderSceneSet();
}

function renderTakes() {
  const scene = studio.scene;
  $("takes-scene").textContent = scene ? `Takes of "${scene.name}" (newest last)` : "Pick a scene in the tree.";
  const rows = scene ? scene.takes : [];
  $("takes").replaceChildren(...rows.map((take) => {
    const playing = scene.playing_take_id === take.id;
    return el("tr", { dataset: { takeId: take.id, status: take.status }, class: playing ? "playing" : "" },
      el("td", { class: "take-name" }, take.name, playing ? el("span", { class: "badge" }, scene.chosen_take_id === take.id ? "chosen" : "plays") : null),
      el("td", { class: "take-duration" }, seconds(take.duration_s)),
      el("td", { class: `take-status ${take.status}` }, take.status),
      el("td", { class: "acts" },
        el("button", { type: "button", dataset: { act: "play" }, disabled: take.status === "recording", onclick: () => playTake(take) }, "▶ Play"),
        el("button", { type: "button", dataset: { act: "choose" }, disabled: scene.chosen_take_id === take.id, onclick: () => takeAction("POST", `/api/takes/${take.id}/choose`) }, "Choose"),
        el("button", { type: "button", dataset: { act: "rename" }, onclick: () => renameTake(take) }, "Rename"),
        el("button", { type: "button", class: "danger", dataset: { act: "delete" }, onclick: () => deleteTake(take) }, "Delete")));
  }));
}

async function takeAction(method, path, body) {
  await guarded("takes", async () => {
    await api(method, path, body);
    await loadScene();
  });
}

function playTake(take) {
  const player = $("take-player");
  player.hidden = false;
  showError("takes", "");
  player.onerror = () => showError("takes", `take ${take.name} could not be played`);
  player.src = withToken(`/api/takes/${take.id}/media`);
  player.dataset.takeId = take.id;
  player.play().catch(() => {});
}

async function renameTake(take) {
  const name = prompt(`New name for take "${take.name}"`, take.name);
  if (name !== null && name !== take.name) await takeAction("PATCH", `/api/takes/${take.id}`, { name });
}

async function deleteTake(take) {
  if (confirm(`Delete take "${take.name}" and its media?`)) await takeAction("DELETE", `/api/takes/${take.id}`);
}

onLive((event) => {
  if (event.type === "take_stopped" || event.type === "take_started") {
    if (event.scene_id === studio.selected.scene) loadScene().catch((e) => showError("takes", e.message));
  }
});

// -- the script editor ------------------------------------------------------------------------

async function checkScript() {
  const text = $("script").value;
  $("script-source").hidden = true;
  try {
    const checked = await api("POST", "/api/script/check", { text });
    showError("script", "");
    studio.scriptLines = checked.lines;
    renderScriptLines();
    return checked.lines;
  } catch (e) {
    studio.scriptLines = [];
    renderScriptLines();
    showError("script", e.message);
    markScriptLine(text, e.message);
    return null;
  }
}

// Show the source around the line the parser named, that line marked, and select it in the editor.
function markScriptLine(text, message) {
  const match = /^line (\d+):/.exec(message);
  if (!match) return;
  const n = Number(match[1]);
  const lines = text.split("\n");
  const from = Math.max(1, n - 2);
  const to = Math.min(lines.length, n + 2);
  const out = [];
  for (let i = from; i <= to; i++) {
    out.push(el("span", { class: i === n ? "bad" : "", dataset: { line: String(i) } }, `${String(i).padStart(3)}  ${lines[i - 1] ?? ""}\n`));
    if (i === n) out.push(el("span", { class: "bad-message" }, `     ↑ ${message}\n`));
  }
  $("script-source").replaceChildren(...out);
  $("script-source").hidden = false;
  const start = lines.slice(0, n - 1).reduce((sum, l) => sum + l.length + 1, 0);
  $("script").setSelectionRange(start, start + (lines[n - 1] || "").length);
}

function renderScriptLines() {
  $("script-lines").replaceChildren(...studio.scriptLines.map((line, i) =>
    el("li", { dataset: { index: String(i), sourceLine: String(line.source_line) } },
      el("span", { class: "speaker" }, line.speaker),
      el("input", { type: "text", value: line.text, maxLength: 1000, class: "line-text", onchange: (e) => editLine(i, e.target.value) }),
      el("button", { type: "button", class: "play-line", title: "play this line", onclick: () => playLine(i) }, "▶"),
      el("span", { class: "err", id: `line-${i}-err` }))));
}

// Put an edited line back into the script text, at its source line.
function editLine(index, text) {
  const line = studio.scriptLines[index];
  line.text = text.trim();
  const lines = $("script").value.split("\n");
  const at = line.source_line - 1;
  const cue = lines[at] || "";
  const colon = /^([^:：]{1,64})[:：]/.exec(cue);
  if (colon) {
    lines[at] = `${colon[1]}: ${line.text}`;
  } else {
    // Fountain: the cue, maybe parentheticals, then the dialogue up to the next blank line.
    let i = at + 1;
    while (i < lines.length && /^\s*\(.*\)\s*$/.test(lines[i])) i++;
    let end = i;
    while (end < lines.length && lines[end].trim() !== "") end++;
    lines.splice(i, end - i, line.text);
  }
  $("script").value = lines.join("\n");
}

function playLine(index) {
  const line = studio.scriptLines[index];
  const input = $("script-lines").querySelector(`li[data-index="${index}"] input`);
  if (input && input.value.trim() !== line.text) editLine(index, input.value);
  send({ type: "say", speaker: line.speaker, text: line.text, cut_in: true }, `line-${index}`);
}

async function playScript(slot = "script") {
  const lines = await checkScript();
  if (!lines) return null;
  return send({ type: "script", text: $("script").value }, slot) ? lines : null;
}

// Record the whole script as a take: start, play every line, stop once the last one has ended.
async function recordScript() {
  showError("script", "");
  if (live.recording) return showError("script", "a take is already recording; stop it first");
  const lines = await checkScript();
  if (!lines) return;
  if (!toggleRecording("script")) return;
  const started = await nextEvent((e) => e.type === "take_started" || e.type === "error", 10000);
  if (!started || started.type === "error") return;
  const queued = new Set();
  const ended = new Set();
  const done = new Promise((resolve) => {
    const listener = (e) => {
      if (e.type === "line_queued" && queued.size < lines.length) queued.add(e.line_id);
      if (e.type === "line_ended" && queued.has(e.line_id)) ended.add(e.line_id);
      if (e.type === "interrupted" || (queued.size === lines.length && ended.size === lines.length)) {
        live.listeners.splice(live.listeners.indexOf(listener), 1);
        resolve();
      }
    };
    onLive(listener);
  });
  send({ type: "script", text: $("script").value }, "script");
  await done;
  await new Promise((r) => setTimeout(r, 300)); // a breath after the last word
  if (live.recording) send({ type: "record", action: "stop" }, "script");
}

function nextEvent(test, timeoutMs) {
  return new Promise((resolve) => {
    const listener = (e) => {
      if (!test(e)) return;
      live.listeners.splice(live.listeners.indexOf(listener), 1);
      resolve(e);
    };
    onLive(listener);
    setTimeout(() => {
      const i = live.listeners.indexOf(listener);
      if (i >= 0) live.listeners.splice(i, 1);
      resolve(null);
    }, timeoutMs);
  });
}

$("script-check").addEventListener("click", () => checkScript());
$("script-play").addEventListener("click", () => playScript());
$("script-record").addEventListener("click", () => recordScript().catch((e) => showError("script", String(e.message || e))));

// -- cast and sets ----------------------------------------------------------------------------

function renderCast() {
  const id = studio.selected.series;
  const detail = id && studio.details[id];
  $("cast-series").textContent = detail ? `The cast and sets of "${detail.name}"` : "Pick a series in the tree.";
  $("new-character").hidden = $("art-form").hidden = $("photo-form").hidden = $("new-set").hidden = !detail;
  $("characters").replaceChildren(...(detail ? detail.characters : []).map((c) => {
    const voice = c.spec.voice || {};
    const kind = c.spec.art ? "PNG art" : c.spec.photo ? "photo" : "drawn";
    return el("li", { class: "card", dataset: { characterId: c.id, name: c.name } },
      el("img", { src: withToken(`/api/characters/${c.id}/preview.png`), alt: c.name, width: 96, height: 96, loading: "lazy" }),
      el("strong", {}, c.name),
      el("span", { class: "muted" }, `${kind}; ${voiceLabel(voice)}`),
      el("button", { type: "button", dataset: { act: "hear" }, onclick: () => hear(c) }, "Hear"),
      el("button", { type: "button", dataset: { act: "voice" }, onclick: () => changeVoice(c) }, "Change voice"),
      el("button", { type: "button", dataset: { act: "recast" }, onclick: () => recast(c) }, "Recast"),
      el("span", { class: "err", id: `character-${c.id}-err` }));
  }));
  $("sets").replaceChildren(...(detail ? detail.sets : []).map((s) =>
    el("li", { class: "card", dataset: { setId: s.id } },
      el("img", { src: withToken(`/api/sets/${s.id}/preview.png`), alt: s.name, width: 96, height: 96, loading: "lazy" }),
      el("strong", {}, s.name), el("span", { class: "muted" }, s.backdrop))));
  renderSceneSet();
  setCast(live.cast);
}

function renderSceneSet() {
  const detail = studio.selected.series && studio.details[studio.selected.series];
  const select = $("scene-set");
  select.replaceChildren(new Option("(server default)", ""), ...(detail ? detail.sets : []).map((s) => new Option(`${s.name} (${s.backdrop})`, s.id)));
  select.value = (studio.scene && studio.scene.set_id) || "";
  select.disabled = !studio.scene;
}

function isNatural(voice) {
  return voice.backend === "kokoro";
}

function voiceLabel(voice) {
  const espeak = `${voice.language || "en-us"} ${voice.variant || ""} pitch ${voice.pitch ?? "–"}`;
  return isNatural(voice) ? `natural ${voice.voice_id} ×${voice.speed ?? 1} (else ${espeak})` : `espeak-ng ${espeak}`;
}

function hear(character) {
  const line = { type: "say", speaker: character.name, text: `Hello, I am ${character.name[0]}${character.name.slice(1).toLowerCase()}.` };
  if (isNatural(character.spec.voice || {})) line.voice = "natural"; // the character's own voice, not the instant one
  send(line, `character-${character.id}`);
}

// What the "Change voice" prompt takes: "af_heart 1.1" (a natural voice and its speed) or
// "m3 40" (an espeak-ng variant and pitch); the server's message names a bad field.
function voiceChange(answer) {
  const [first, second] = answer.trim().split(/\s+/);
  if (/^[a-z]{2}_[a-z]+(\+[a-z]{2}_[a-z]+)*$/.test(first || "")) {
    return { backend: "kokoro", voice_id: first, ...(second ? { speed: Number(second) } : {}) };
  }
  return { backend: "espeak", variant: first, ...(second ? { pitch: Number(second) } : {}) };
}

async function changeVoice(character) {
  const voice = character.spec.voice || {};
  const now = isNatural(voice) ? `${voice.voice_id} ${voice.speed ?? 1}` : `${voice.variant || "m1"} ${voice.pitch ?? 50}`;
  const answer = prompt(`Voice of ${character.name}: a natural voice and speed (af_heart 1.0, bm_george 0.9) or an espeak-ng variant and pitch (m1..m7, f1..f5; 0-99)`, now);
  if (answer === null || !answer.trim()) return;
  await guarded(`character-${character.id}`, async () => {
    await api("PATCH", `/api/characters/${character.id}/voice`, voiceChange(answer));
    await loadSeriesDetail(character.series_id);
    renderCast();
    if (live.seriesId === character.series_id) await connect(); // the session takes the new voice
  });
}

async function recast(character) {
  // A cast file's line: a description ("a white man, 40, glasses") and/or exact fields
  // ("hair_style=bob skin_rgb=#8d5524 voice.variant=f3"); the server's message names a bad field.
  const answer = prompt(`Recast ${character.name}: a description and/or field=value pairs`, "");
  if (answer === null || !answer.trim()) return;
  await guarded(`character-${character.id}`, async () => {
    await api("PUT", `/api/characters/${character.id}/cast`, { cast: answer.trim() });
    await loadSeriesDetail(character.series_id);
    renderCast();
    if (live.seriesId === character.series_id) await connect(); // the session takes the new look
  });
}

$("new-character").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded("character", async () => {
    const body = { name: $("character-name").value.trim() };
    const voice = {};
    const chosen = $("character-variant").value;
    if (chosen.startsWith("kokoro:")) {
      // A natural voice speaks its own accent's language (a Mandarin voice on English lines would be
      // mapped to an English one of the same sex).
      Object.assign(voice, { backend: "kokoro", voice_id: chosen.slice(7) });
      if (chosen.startsWith("kokoro:z")) voice.language = "cmn";
    }
    else if (chosen) Object.assign(voice, { backend: "espeak", variant: chosen });
    if ($("character-pitch").value !== "") voice.pitch = Number($("character-pitch").value);
    if (Object.keys(voice).length) body.voice = voice;
    await api("POST", `/api/series/${studio.selected.series}/characters`, body);
    $("character-name").value = "";
    await loadSeriesDetail(studio.selected.series);
    renderCast();
  });
});

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

$("art-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded("art", async () => {
    const files = {};
    for (const file of $("art-files").files) files[file.name] = base64(await file.arrayBuffer());
    if (!Object.keys(files).length) throw new ApiError("choose the art folder (character.json and its PNGs) first", "bad_art", 400);
    const body = { files };
    if ($("art-name").value.trim()) body.name = $("art-name").value.trim();
    const made = await api("POST", `/api/series/${studio.selected.series}/characters/art`, body);
    log(`${made.name} joins the cast from PNG art`);
    await loadSeriesDetail(studio.selected.series);
    renderCast();
  });
});

// A photo of a person (POST /api/photos, the image as the body), then kept in the series by its id.
$("photo-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded("photo", async () => {
    const file = $("photo-file").files[0];
    const name = $("photo-name").value.trim();
    if (!file || !name) throw new ApiError("choose a photo and type the character's name first", "bad_photo", 400);
    const headers = { "Content-Type": file.type || "application/octet-stream" };
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(`/api/photos?name=${encodeURIComponent(name)}`, { method: "POST", headers, body: file });
    } catch (err) {
      throw new ApiError("the server cannot be reached; is it running?", "unreachable", 0);
    }
    const photo = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(photo.message || `HTTP ${response.status}`, photo.error, response.status);
    await api("POST", `/api/series/${studio.selected.series}/characters`, { name: photo.name, photo: photo.photo_id });
    log(`${photo.name} joins the cast from a photo`);
    await loadSeriesDetail(studio.selected.series);
    renderCast();
  });
});

$("new-set").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded("set", async () => {
    await api("POST", `/api/series/${studio.selected.series}/sets`, { name: $("set-name").value.trim(), backdrop: $("set-backdrop").value });
    $("set-name").value = "";
    await loadSeriesDetail(studio.selected.series);
    renderCast();
  });
});

$("scene-set").addEventListener("change", () => {
  guarded("scene-set", async () => {
    await api("PATCH", `/api/scenes/${studio.selected.scene}`, { set_id: $("scene-set").value || null });
    await loadScene();
    if (live.wanted && live.seriesId === studio.selected.series) await openSceneLive();
  });
});

// -- export -----------------------------------------------------------------------------------

async function startExport(kind) {
  const id = kind === "episode" ? studio.selected.episode : studio.selected.scene;
  await guarded("export", async () => {
    if (!id) throw new ApiError(`pick ${kind === "episode" ? "an episode" : "a scene"} in the tree first`, "bad_input", 400);
    const job = await api("POST", `/api/${kind}s/${id}/export`);
    $("export-links").replaceChildren();
    $("export-progress").hidden = false;
    $("export-progress").value = 0;
    clearInterval(studio.exportPoll);
    studio.exportPoll = setInterval(() => pollExport(job.id), 400);
  });
}

async function pollExport(exportId) {
  let job;
  try {
    job = await api("GET", `/api/exports/${exportId}`);
  } catch (e) {
    clearInterval(studio.exportPoll);
    return showError("export", e.message);
  }
  $("export-progress").value = job.progress;
  $("export-status").textContent = `${job.status} ${Math.round(job.progress * 100)}%`;
  if (job.status === "running" || job.status === "queued") return;
  clearInterval(studio.exportPoll);
  if (job.status !== "done") return showError("export", job.error || `export ${job.status}`);
  $("export-links").replaceChildren(...["mp4", "srt", "vtt", "otio"].map((kind) =>
    el("li", {}, el("a", { href: withToken(`/api/exports/${exportId}/files/${kind}`), download: "", dataset: { kind } }, `Download ${kind.toUpperCase()}`))));
}

$("export-episode").addEventListener("click", () => startExport("episode"));
$("export-scene").addEventListener("click", () => startExport("scene"));

// -- tabs -------------------------------------------------------------------------------------

document.querySelectorAll("[data-tab]").forEach((tab) => tab.addEventListener("click", () => {
  document.querySelectorAll("[data-tab]").forEach((t) => t.setAttribute("aria-selected", String(t === tab)));
  document.querySelectorAll("[data-panel]").forEach((p) => { p.hidden = p.dataset.panel !== tab.dataset.tab; });
}));

refreshAll();
