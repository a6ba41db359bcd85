"""Drive the demo page in a real headless Chromium against a real talkie server.

Run by tests/test_browser.py inside a private network namespace that has only a loopback
interface, so neither the browser nor the server can reach any other address. Writes
``result.json`` and ``page.png`` into the folder given as the first argument.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import uvicorn
from playwright.async_api import async_playwright

from stream.live.config import ServerConfig
from stream.web.app import create_app

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]

STATS_JS = """async () => {
  const out = {framesDecoded: 0, audioEnergy: 0};
  if (!window.talkie.pc) return out;
  (await window.talkie.pc.getStats()).forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    if (s.kind === "video") out.framesDecoded = s.framesDecoded || 0;
    if (s.kind === "audio") out.audioEnergy = s.totalAudioEnergy || 0;
  });
  return out;
}"""


async def main(out: Path, chromium: str) -> dict:
    app = create_app(ServerConfig(data_dir=out / "data"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    result: dict = {"console": []}
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1200, "height": 760})
            page.on("console", lambda m: result["console"].append(m.text))
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.click("#connect")
            await page.wait_for_function("document.getElementById('state').dataset.state === 'connected'", timeout=20000)
            await page.wait_for_function("document.getElementById('speaker').options.length >= 2", timeout=10000)
            before = await page.evaluate(STATS_JS)
            deadline = time.monotonic() + 20
            while before["framesDecoded"] < 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                before = await page.evaluate(STATS_JS)
            await page.fill("#line", "Hello from a real browser. Can you hear me now?")
            await page.click("#say-form button[type=submit]")
            await page.wait_for_function(
                "[...document.querySelectorAll('#log li')].some(li => li.textContent.startsWith('▶'))", timeout=15000
            )
            await asyncio.sleep(1.5)  # let the line play
            after = await page.evaluate(STATS_JS)
            result["latency_text"] = await page.text_content("#latency")
            await page.screenshot(path=str(out / "page.png"))
            result.update(
                connected=True,
                frames_before=before["framesDecoded"],
                frames_after=after["framesDecoded"],
                audio_energy=after["audioEnergy"],
                log=await page.eval_on_selector_all("#log li", "els => els.map(e => e.textContent)"),
            )
            await browser.close()
    finally:
        server.should_exit = True
        await serving
    return result


if __name__ == "__main__":
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    res = asyncio.run(main(out_dir, sys.argv[2]))
    res["seconds"] = round(time.monotonic() - t0, 1)
    (out_dir / "result.json").write_text(json.dumps(res, indent=2))
