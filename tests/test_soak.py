"""Memory over many sessions: ``talkie bench soak`` for a handful of cycles (its report, and a
server that ends every session and winds its threads back down), and a closed session freed at
once. No timing or RSS assertions: machines are noisy."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

from support import start_server

from stream.live.config import ServerConfig
from stream.live.engine import Engine
from stream.tools.bench_soak import run_soak
from stream.tools.client import ScenePeer


async def test_a_few_connect_disconnect_cycles_leave_the_server_as_it_was() -> None:
    # The warm-up says a line too (the 4th cycle), so the worker pools are at their size before
    # the count that must hold is taken.
    report = await run_soak(cycles=8, minutes=0, warmup_cycles=4)

    assert report["bench"] == "soak" and "server process alone" in report["measured"]
    assert "stream" not in report
    cycles = report["cycles"]
    assert cycles["cycles"] == 8 and cycles["warmup_cycles"] == 4
    assert cycles["lines_said"] == 2  # every 4th cycle says a line, and waits for it to start
    for field in ("rss_mb", "threads", "fds", "sessions"):
        assert set(cycles[field]) >= {"start", "after_warmup", "end", "max"}, field
    assert isinstance(cycles["growth_mb_per_100_cycles_after_warmup"], float)
    assert cycles["rss_mb"]["end"] > 0
    assert [s[0] for s in cycles["samples"]] == list(range(9))  # [cycle, rss, threads, fds] each cycle

    # Every peer's leaving ended its session on the server (none had to be deleted) ...
    assert cycles["sessions_left_by_server"] == 0
    assert cycles["sessions"]["after_warmup"] == cycles["sessions"]["end"] == report["end"]["sessions"] == 0
    # ... and took its threads and files with it: once the pools have grown, the count holds.
    assert cycles["threads"]["end"] <= cycles["threads"]["after_warmup"], cycles["samples"]
    assert cycles["fds"]["end"] <= cycles["fds"]["after_warmup"], cycles["samples"]


async def test_a_closed_session_is_freed_without_waiting_for_the_garbage_collector(
    engine: Engine, tmp_path: Path
) -> None:
    """A session's scene holds its layers and tiles (megabytes). Held in a reference cycle, it
    waits for a full collection, which a server that makes few Python objects runs rarely: 200
    sessions grew the server by 1 GB before (``talkie bench soak``)."""
    app, url, stop = await start_server(ServerConfig(data_dir=tmp_path / "data"), engine)
    sessions = app.state.sessions.sessions
    gc.collect()
    gc.disable()
    try:
        peer = ScenePeer(keep_video=False)
        assert (await peer.connect(url)).status_code == 200
        await peer.event("hello")
        peer.send({"type": "say", "speaker": "MAYA", "text": "Hello there."})
        await peer.event("line_started")
        session = sessions[peer.session_id]
        held = {
            "session": weakref.ref(session), "scene": weakref.ref(session.scene),
            "compositor": weakref.ref(session.scene.view.compositor), "media": weakref.ref(session.media),
        }
        del session
        await peer.close()  # the server ends the session when its peer's connection closes
        for _ in range(200):
            if not sessions:
                break
            await asyncio.sleep(0.05)
        assert not sessions
        await asyncio.sleep(0.2)  # the session's tasks wind down
        assert [name for name, ref in held.items() if ref() is not None] == []
    finally:
        gc.enable()
        await stop()
