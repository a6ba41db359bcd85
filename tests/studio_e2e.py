"""Drive the studio page in a real headless Chromium, with the browser's default WebRTC settings,
against a real talkie server. Run by tests/test_studio.py inside a private network namespace that
looks like a user's machine (loopback plus one LAN interface, so Chromium gathers its usual
mDNS-named host candidates); nothing leaves the namespace.

    python tests/studio_e2e.py SCENARIO OUT_DIR CHROMIUM

Scenarios: ``record`` (series, episode, scene; connect; record a three-line script as a take;
play it back, choose it; export the episode and download the MP4), ``lines`` (bad input shown
next to its control; edit one line and replay only it; keyboard; the server restarts and the page
reconnects), ``view`` (the transparent /view keyed in the browser). Writes ``result.json`` and a
screenshot per step into OUT_DIR.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.async_api import Page, async_playwright

from stream.live.config import ServerConfig
from stream.web.app import create_app

# What headless Chromium needs as root on a machine with no outside network, and nothing that
# loosens WebRTC: no loopback candidates, mDNS host names as a user's browser has them.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
SCRIPT = "MAYA: Where were you last night?\nLEO: Out by the harbour.\nMAYA: All night?"

STATS_JS = """async () => {
  const out = {framesDecoded: 0, audioEnergy: 0, localCandidates: [], pair: null};
  const pc = window.talkie.pc;
  if (!pc) return out;
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") out.framesDecoded = s.framesDecoded || 0;
    if (s.type === "inbound-rtp" && s.kind === "audio") out.audioEnergy = s.totalAudioEnergy || 0;
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
      const local = report.get(s.localCandidateId), remote = report.get(s.remoteCandidateId);
      out.pair = {local: local && local.candidateType, remote: remote && (remote.address || remote.ip), remoteType: remote && remote.candidateType};
    }
  });
  out.offerCandidates = (pc.localDescription ? pc.localDescription.sdp : "").split("\\n").filter((l) => l.startsWith("a=candidate:")).map((l) => l.trim());
  return out;
}"""


class Server:
    """A talkie server in this process on a fixed port, stoppable and restartable."""

    def __init__(self, data_dir: Path, *, token: str | None = None) -> None:
        self.data_dir = data_dir
        self.token = token
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        app = create_app(ServerConfig(data_dir=self.data_dir, token=self.token))
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                raise RuntimeError(f"the server did not start: {self._task.exception()}")
            await asyncio.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def http(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers)

    @property
    def page_url(self) -> str:
        return f"{self.url}/?token={self.token}" if self.token else f"{self.url}/"


class Steps:
    """Screenshots of each step, numbered in order."""

    def __init__(self, page: Page, out: Path) -> None:
        self.page, self.out, self.n, self.names = page, out, 0, []

    async def shot(self, name: str, **kwargs: Any) -> None:
        self.n += 1
        path = self.out / f"{self.n:02d}-{name}.png"
        await self.page.screenshot(path=str(path), **kwargs)
        self.names.append(path.name)


async def log_lines(page: Page) -> list[str]:
    return await page.eval_on_selector_all("#log li", "els => els.map(e => e.textContent).reverse()")


async def make_tree(page: Page, steps: Steps, series: str) -> None:
    await page.fill("#new-series-name", series)
    await page.click("#new-series button[type=submit]")
    await page.wait_for_selector("#new-episode:not([hidden])")
    await page.fill("#new-episode-name", "Pilot")
    await page.click("#new-episode button[type=submit]")
    await page.wait_for_selector("#new-scene:not([hidden])")
    await page.fill("#new-scene-name", "Kitchen")
    await page.click("#new-scene button[type=submit]")
    await page.wait_for_selector(".node.scene.selected")
    await steps.shot("tree")


async def connect(page: Page, steps: Steps) -> dict[str, Any]:
    await page.click("#connect")
    await page.wait_for_function("document.getElementById('state').dataset.state === 'connected'", timeout=30000)
    await page.wait_for_function("document.getElementById('speaker').options.length >= 2", timeout=10000)
    stats = await page.evaluate(STATS_JS)
    deadline = time.monotonic() + 20
    while stats["framesDecoded"] < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        stats = await page.evaluate(STATS_JS)
    await steps.shot("connected")
    return stats


async def record_scenario(page: Page, steps: Steps, server: Server, out: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    await make_tree(page, steps, "Harbour Lights")
    result["connect"] = await connect(page, steps)
    await page.fill("#script", SCRIPT)
    await page.click("#script-record")
    await page.wait_for_selector("#rec:not([hidden])", timeout=10000)
    await asyncio.sleep(1.0)
    result["rec_indicator"] = await page.text_content("#rec")
    await steps.shot("recording")
    await page.wait_for_selector("#rec", state="hidden", timeout=90000)
    await page.click("[data-tab=takes]")
    await page.wait_for_selector("#takes tr[data-status=complete]", timeout=10000)
    await steps.shot("takes")
    row = page.locator("#takes tr").first
    take_id = await row.get_attribute("data-take-id")
    result["take_row"] = {"id": take_id, "duration": await row.locator(".take-duration").text_content(),
                          "status": await row.locator(".take-status").text_content()}
    await row.locator("[data-act=play]").click()
    await page.wait_for_function("document.getElementById('take-player').readyState >= 2", timeout=30000)
    result["player_duration_s"] = await page.evaluate("document.getElementById('take-player').duration")
    await steps.shot("playback")
    await row.locator("[data-act=choose]").click()
    await page.wait_for_selector("#takes tr.playing .badge:text('chosen')", timeout=10000)
    async with server.http() as http:
        take = (await http.get(f"/api/takes/{take_id}")).json()
        scene = (await http.get(f"/api/scenes/{take['scene_id']}")).json()
    result["take"] = take
    result["scene_chosen"] = scene["chosen_take_id"]
    # The take kept the series' cast: the Cast tab shows them with their stills.
    await page.evaluate("window.studio.refresh()")
    await page.click("[data-tab=cast]")
    await page.wait_for_function(
        "[...document.querySelectorAll('#characters img')].filter(i => i.complete && i.naturalWidth > 0).length >= 2",
        timeout=20000,
    )
    result["cast_cards"] = await page.eval_on_selector_all("#characters li strong", "els => els.map(e => e.textContent)")
    await steps.shot("cast")
    await page.click("[data-tab=export]")
    await page.click("#export-episode")
    await page.wait_for_selector("#export-links a[data-kind=mp4]", timeout=60000)
    result["export_progress"] = await page.evaluate("document.getElementById('export-progress').value")
    await steps.shot("export")
    async with page.expect_download() as info:
        await page.click("#export-links a[data-kind=mp4]")
    download = await info.value
    await download.save_as(str(out / "episode.mp4"))
    result["download_name"] = download.suggested_filename
    result["download_url"] = download.url
    result["player_src"] = await page.get_attribute("#take-player", "src")
    async with httpx.AsyncClient(base_url=server.url) as http:  # no token: refused
        result["without_token"] = (await http.get("/api/series")).status_code
    result["log"] = await log_lines(page)
    return result


async def lines_scenario(page: Page, steps: Steps, server: Server, out: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"errors": {}}
    await page.fill("#new-series-name", "a/b")
    await page.click("#new-series button[type=submit]")
    await page.wait_for_selector("#new-series-err.shown")
    result["errors"]["series_name"] = await page.text_content("#new-series-err")
    await steps.shot("bad-name")
    await make_tree(page, steps, "Edits")
    # Reorder (a second scene moved up) and delete (after the page asks).
    await page.fill("#new-scene-name", "Hall")
    await page.click("#new-scene button[type=submit]")
    await page.wait_for_selector(".node.scene.selected:text('Hall')")
    await page.click(".node.scene:text('Hall') ~ .acts [data-act=up]")
    await page.wait_for_function("[...document.querySelectorAll('.node.scene')].map(n => n.textContent).join() === 'Hall,Kitchen'")
    result["scenes_after_move"] = await page.eval_on_selector_all(".node.scene", "els => els.map(e => e.textContent)")
    await page.click(".node.scene:text('Hall') ~ .acts [data-act=delete]")
    await page.wait_for_function("[...document.querySelectorAll('.node.scene')].map(n => n.textContent).join() === 'Kitchen'")
    result["scenes_after_delete"] = await page.eval_on_selector_all(".node.scene", "els => els.map(e => e.textContent)")
    await page.click(".node.scene:text('Kitchen')")
    await page.wait_for_selector(".node.scene.selected:text('Kitchen')")
    await page.click("[data-tab=export]")
    await page.click("#export-scene")
    await page.wait_for_selector("#export-err.shown")
    result["errors"]["empty_export"] = await page.text_content("#export-err")
    await steps.shot("empty-export")
    await page.click("[data-tab=script]")
    await page.fill("#script", "MAYA: Fine.\nLEO: " + "word " * 260 + "\nMAYA: Good.")
    await page.click("#script-check")
    await page.wait_for_selector("#script-err.shown")
    result["errors"]["script"] = await page.text_content("#script-err")
    result["errors"]["script_marked_line"] = await page.get_attribute("#script-source .bad", "data-line")
    await steps.shot("bad-script")
    result["connect"] = await connect(page, steps)
    await page.fill("#script", SCRIPT)
    await page.click("#script-check")
    await page.wait_for_selector("#script-lines li >> nth=2")
    result["errors"]["script_after_fix"] = await page.text_content("#script-err")
    before = len(await log_lines(page))
    new_text = "Out walking by the lighthouse."
    await page.fill("#script-lines li[data-index='1'] input", new_text)
    await page.click("#script-lines li[data-index='1'] .play-line")
    await page.wait_for_function(
        "t => [...document.querySelectorAll('#log li')].some(li => li.textContent.startsWith('▶ LEO: ' + t))", arg=new_text,
        timeout=40000,
    )
    await asyncio.sleep(2.5)  # time for anything else to (wrongly) start
    result["started_after_edit"] = [e for e in (await log_lines(page))[before:] if e.startswith("▶")]
    result["script_text"] = await page.input_value("#script")
    await steps.shot("edited-line")
    # Keyboard: Enter says the line, Alt+R records (the line already playing is in the take), Escape interrupts.
    await page.fill("#line", "This line is already playing when the take starts, and it goes on for a while.")
    await page.press("#line", "Enter")
    await page.wait_for_function("[...document.querySelectorAll('#log li')].some(li => li.textContent.startsWith('▶ MAYA: This line is already'))", timeout=40000)
    await asyncio.sleep(0.4)
    await page.keyboard.press("Alt+r")
    await page.wait_for_selector("#rec:not([hidden])", timeout=10000)
    await steps.shot("recording-by-key")
    await asyncio.sleep(0.6)
    await page.keyboard.press("Escape")
    await page.wait_for_function("[...document.querySelectorAll('#log li')].some(li => li.textContent.includes('interrupted'))", timeout=10000)
    await page.keyboard.press("Alt+r")
    await page.wait_for_selector("#rec", state="hidden", timeout=10000)
    await page.click("[data-tab=takes]")
    await page.wait_for_selector("#takes tr[data-status=complete]", timeout=10000)
    take_id = await page.get_attribute("#takes tr", "data-take-id")
    async with server.http() as http:
        result["key_take"] = (await http.get(f"/api/takes/{take_id}")).json()
    # The server restarts: the page says so and reconnects by itself.
    await server.stop()
    await page.wait_for_function("['reconnecting', 'failed', 'disconnected'].includes(document.getElementById('state').dataset.state)", timeout=20000)
    result["state_while_down"] = await page.text_content("#state")
    await steps.shot("server-down")
    await server.start()
    await page.wait_for_function("document.getElementById('state').dataset.state === 'connected'", timeout=40000)
    await page.fill("#line", "Back again.")
    await page.press("#line", "Enter")
    await page.wait_for_function("[...document.querySelectorAll('#log li')].some(li => li.textContent.startsWith('▶ MAYA: Back again.'))", timeout=40000)
    await steps.shot("reconnected")
    result["log"] = await log_lines(page)
    return result


VIEW_JS = """() => {
  const keyer = window.talkieView.keyer, video = document.getElementById('video');
  const w = keyer.canvas.width, h = keyer.canvas.height;
  const grab = (source) => {
    const c = document.createElement('canvas'); c.width = w; c.height = h;
    const ctx = c.getContext('2d'); ctx.drawImage(source, 0, 0, w, h);
    return ctx.getImageData(0, 0, w, h).data;
  };
  keyer.draw();  // the keyed picture of the video's current frame, read back at once
  const keyed = grab(keyer.canvas), frame = grab(video);
  // Compare per pixel with the video frame: backdrop (near the key colour) and character (far
  // from it), each away from edges (its 7x7 neighbourhood is the same), so a frame that moved on
  // between the two reads (idle sway is a pixel or two) cannot blur the two apart.
  const dist = new Float32Array(w * h);
  for (let i = 0; i < w * h; i++) {
    const r = frame[4*i] / 255, g = frame[4*i+1] / 255, b = frame[4*i+2] / 255;
    const cb = -0.168736*r - 0.331264*g + 0.5*b + 0.331264, cr = 0.5*r - 0.418688*g - 0.081312*b + 0.418688;
    dist[i] = Math.hypot(cb, cr);
  }
  let bg = 0, bgClear = 0, fg = 0, fgOpaque = 0, partial = 0, fringe = 0;
  const all = (i, test) => {
    for (let dy = -3; dy <= 3; dy++) for (let dx = -3; dx <= 3; dx++) if (!test(dist[i + dy*w + dx])) return false;
    return true;
  };
  for (let y = 3; y < h - 3; y++) for (let x = 3; x < w - 3; x++) {
    const i = y * w + x, a = keyed[4*i+3];
    // A fringe: an edge pixel of some weight whose colour is still the key's green.
    if (a > 0 && a < 255) { partial++; if (a >= 64 && keyed[4*i+1] > Math.max(keyed[4*i], keyed[4*i+2]) + 40) fringe++; }
    if (all(i, (d) => d < 0.06)) { bg++; if (a === 0) bgClear++; }
    else if (all(i, (d) => d > 0.45)) { fg++; if (a === 255) fgOpaque++; }
  }
  return {mode: keyer.mode, frames: keyer.frames, width: w, height: h, bg, bgClear, fg, fgOpaque, partial, fringe};
}"""


async def view_scenario(page: Page, steps: Steps, server: Server, out: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for keyer in ("webgl", "2d"):
        await page.goto(f"{server.url}/view?cast=MAYA,LEO&bg=%2300ff00&key=1&keyer={keyer}")
        await page.wait_for_function("window.talkieView.keyer && window.talkieView.keyer.frames > 25", timeout=40000)
        result[keyer] = await page.evaluate(VIEW_JS)
        result[keyer]["page_background"] = await page.evaluate(
            "[getComputedStyle(document.documentElement).backgroundColor, getComputedStyle(document.body).backgroundColor]"
        )
        await steps.shot(f"transparent-view-{keyer}", omit_background=True)
    return result


SCENARIOS: dict[str, Callable[[Page, Steps, Server, Path], Awaitable[dict[str, Any]]]] = {
    "record": record_scenario, "lines": lines_scenario, "view": view_scenario,
}


async def main(scenario: str, out: Path, chromium: str) -> dict[str, Any]:
    # The record scenario runs with an access token: the page's ?token= must go on every call and link.
    server = Server(out / "data", token="studio-token-1234" if scenario == "record" else None)
    await server.start()
    result: dict[str, Any] = {"console": [], "dialogs": []}
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
            page.on("console", lambda m: result["console"].append(m.text))
            page.on("dialog", lambda d: (result["dialogs"].append(d.message), asyncio.ensure_future(d.accept())))
            steps = Steps(page, out)
            if scenario != "view":
                await page.goto(server.page_url)
                await steps.shot("page")
            try:
                result.update(await SCENARIOS[scenario](page, steps, server, out))
            except Exception:
                await steps.shot("failure")
                raise
            finally:
                result["screenshots"] = steps.names
            await browser.close()
    finally:
        await server.stop()
    return result


if __name__ == "__main__":
    name, out_dir, chromium_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    res = asyncio.run(main(name, out_dir, chromium_path))
    res["seconds"] = round(time.monotonic() - t0, 1)
    (out_dir / "result.json").write_text(json.dumps(res, indent=2))
