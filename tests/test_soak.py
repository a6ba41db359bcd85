"""Memory over many sessions: ``talkie bench soak`` for a handful of cycles (its report, and a
server that ends every session and winds its threads back down), and a closed session freed at
once. No timing or RSS assertions: machines are noisy."""

from __future__ import annotations

from stream.tools.bench_soak import run_soak


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
