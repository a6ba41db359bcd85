"""The recorder: exactly what streamed, rebased to the take; a full disk; a server killed mid-take."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support import solid, tone

from lipsync.timebase import SAMPLES_PER_FRAME, TICKS_PER_FRAME
from stream.live.ice import use_loopback_candidates
from stream.record.recorder import RecorderConfig, TakeRecorder
from stream.store import Store, StoreError, Take
from stream.store.segments import SegmentWriter, read_take
from stream.tools.client import ScenePeer

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def new_take(store: Store) -> Take:
    series = store.catalog.create_series("S")
    scene = store.catalog.create_scene(store.catalog.create_episode(series.id, "E").id, "Scene")
    return store.takes.begin(scene.id, None, source="live", width_px=64, height_px=64, session_id="s1")


class Feed:
    """Plays a session's stream into a tap: 20 ms audio frames and 25 fps pictures with stream pts."""

    def __init__(self, recorder: TakeRecorder, *, first_frame: int) -> None:
        self.recorder = recorder
        self.k = first_frame
        self.pcm = tone(330, 400 * SAMPLES_PER_FRAME)

    def frame(self, *, picture: bool = True) -> None:
        k = self.k
        for half in range(2):
            start = k * SAMPLES_PER_FRAME + half * 960
            import av

            audio = av.AudioFrame.from_ndarray(self.pcm[start : start + 960].reshape(1, -1), format="s16", layout="mono")
            audio.sample_rate, audio.pts = 48000, start
            self.recorder.audio(audio)
        if picture:
            video = solid(((k * 3) % 256, 80, 160))
            video.pts = k * TICKS_PER_FRAME
            self.recorder.video(video)
        self.k += 1


async def test_a_line_already_playing_when_the_take_starts_is_in_it_from_its_start(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    take = new_take(store)
    recorder = TakeRecorder(store=store, take=take, session_id="s1", config=RecorderConfig(), on_done=lambda *a: None)
    recorder.start()
    # The session tells a new tap of the line playing since frame 30, before the take's frame 0 (40)...
    recorder.line_started("L7", "LEO", "Already talking.", 30 * SAMPLES_PER_FRAME)
    feed = Feed(recorder, first_frame=40)
    for slot in range(20):
        if slot == 2:  # ...and its frame's notice repeats it: told twice, kept once
            recorder.line_started("L7", "LEO", "Already talking.", 30 * SAMPLES_PER_FRAME)
        if slot == 12:
            recorder.line_ended("L7", 52 * SAMPLES_PER_FRAME, interrupted=False)
        feed.frame()
    stopped = await recorder.stop()
    (line,) = store.takes.lines(stopped.id)
    assert (line.line_id, line.start_sample, line.end_sample) == ("L7", 0, 12 * SAMPLES_PER_FRAME)
    store.close()


async def test_a_take_holds_exactly_what_streamed_from_its_first_frame(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    take = new_take(store)
    done: list[Any] = []
    recorder = TakeRecorder(store=store, take=take, session_id="s1", config=RecorderConfig(),
                            on_done=lambda r, t, e: done.append((t, e)))
    recorder.start()
    feed = Feed(recorder, first_frame=37)  # the take starts mid-stream, at frame 37
    skipped = {0, 1, 9, 10, 11, 30}  # pictures the session skipped (the first two included)
    for slot in range(60):
        if slot == 3:
            recorder.line_started("L4", "MAYA", "Hi.", round(1.6 * 48000))  # stamps in stream samples
        if slot == 50:
            recorder.line_ended("L4", round(3.4871 * 48000), interrupted=False)
        feed.frame(picture=slot not in skipped)
        if slot % 10 == 0:
            await asyncio.sleep(0)
    stopped = await recorder.stop()
    feed.frame()  # after the stop: not part of the take

    assert done and done[0][1] is None
    assert stopped.status == "complete" and stopped.frames == 60 and stopped.samples == 60 * SAMPLES_PER_FRAME
    assert store.takes.get(take.id).stream_start_frame == 37
    played = list(read_take(store, stopped))
    audio = np.concatenate([a for _, a in played])
    assert np.array_equal(audio, feed.pcm[37 * SAMPLES_PER_FRAME : 97 * SAMPLES_PER_FRAME]), "audio must be sample-exact"
    reds = [int(round(f.to_ndarray(format="rgb24")[..., 0].mean())) for f, _ in played]
    expected, last = [], None
    for slot in range(60):
        last = slot if slot not in skipped else last
        expected.append(((37 + (last if last is not None else 2)) * 3) % 256)
    assert np.max(np.abs(np.array(reds) - np.array(expected))) <= 3, "skipped slots repeat the previous picture"
    (line,) = store.takes.lines(take.id)
    assert (line.start_sample, line.end_sample) == (3 * SAMPLES_PER_FRAME, round(3.4871 * 48000) - 37 * SAMPLES_PER_FRAME)
    store.close()


async def test_a_full_disk_mid_take_keeps_what_was_committed_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(tmp_path)
    take = new_take(store)
    real = SegmentWriter._write_audio

    def write_audio(self: SegmentWriter, seq: int, data: bytes) -> None:
        if seq >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, seq, data)

    monkeypatch.setattr(SegmentWriter, "_write_audio", write_audio)
    errors: list[StoreError | None] = []
    recorder = TakeRecorder(store=store, take=take, session_id="s1", config=RecorderConfig(),
                            on_done=lambda r, t, e: errors.append(e))
    recorder.start()
    feed = Feed(recorder, first_frame=0)
    for _ in range(70):
        feed.frame()
        await asyncio.sleep(0)
    deadline = time.monotonic() + 10
    while not recorder.failed and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    feed.frame()  # the session goes on; the failed tap ignores it
    stopped = await recorder.stop()
    assert errors[0] is not None and errors[0].code == "disk_full" and errors[0].http_status == 507
    assert stopped.status == "recovered" and stopped.frames == 40 and "disk is full" in (stopped.note or "")
    folder = store.media.take_dir(take.id)
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")], "no partial segment left"
    assert len(list(read_take(store, stopped))) == 40
    store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.tools.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the server did not start: {log.read_text()[-2000:]}")


async def test_a_server_killed_mid_take_comes_back_with_the_take_recovered(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "server.log"
    proc, url = serve(data, log)
    use_loopback_candidates()  # the server is on loopback and takes loopback candidates only
    peer = ScenePeer(keep_video=False)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            series = (await http.post("/api/series", json={"name": "Crash test"})).json()
            episode = (await http.post(f"/api/series/{series['id']}/episodes", json={"name": "One"})).json()
            scene = (await http.post(f"/api/episodes/{episode['id']}/scenes", json={"name": "Kitchen"})).json()
            assert (await peer.connect(url)).status_code == 200
            await peer.event("hello")
            await peer.wait_for(lambda: len(peer.video) >= 5)
            started = await http.post(
                f"/api/sessions/{peer.session_id}/record", json={"scene_id": scene["id"]}, headers=peer.credential
            )
            assert started.status_code == 201, started.text
            take_id = started.json()["id"]
            before = len(peer.events)
            peer.send({"type": "say", "speaker": "MAYA", "text": "Something is wrong with the lights in here."})
            await peer.event("line_started", after=before, timeout=60)  # a busy machine may take seconds
            mark = len(peer.video)
            await peer.wait_for(lambda: len(peer.video) >= mark + 75)  # three seconds into the take
            last_frame = peer.video[-1][0] // TICKS_PER_FRAME
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        await peer.close()
        if proc.poll() is None:
            proc.kill()

    proc, url = serve(data, log)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            take = (await http.get(f"/api/takes/{take_id}")).json()
            assert take["status"] == "recovered", take
            streamed = last_frame - take["stream_start_frame"] + 1
            assert streamed - 25 <= take["frames"] <= streamed + 2, (streamed, take["frames"])
            assert take["samples"] == take["frames"] * SAMPLES_PER_FRAME
            assert [ln["speaker"] for ln in take["lines"]] == ["MAYA"]
            conn = sqlite3.connect(data / "talkie.db")
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.close()
            job = (await http.post(f"/api/scenes/{take['scene_id']}/export")).json()
            while job["status"] == "running":
                await asyncio.sleep(0.1)
                job = (await http.get(f"/api/exports/{job['id']}")).json()
            assert job["status"] == "done" and job["frames"] == take["frames"], job
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_render_goes_into_an_episode_as_scenes_with_chosen_takes(tmp_path: Path, speech: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from lipsync.script import parse_script
    from stream.record import script_takes
    from stream.record.offline import RenderConfig
    from stream.record.script_takes import record_script

    store = Store.open(tmp_path)
    series = store.catalog.create_series("S")
    episode = store.catalog.create_episode(series.id, "E")
    existing = store.catalog.create_scene(episode.id, "Cold open")
    script = parse_script("INT. KITCHEN/HALL - NIGHT\n\nMAYA\nYou're late.\n\nEXT. PARK - DAY\n\nZEB\nNice day.\n")
    config = RenderConfig(width_px=128, height_px=128)
    takes = record_script(store, script, episode_id=episode.id, config=config, speech=speech)
    scenes = store.catalog.list_scenes(episode.id)
    assert [s.name for s in scenes] == ["Cold open", "INT. KITCHEN-HALL - NIGHT", "EXT. PARK - DAY"]
    assert [s.chosen_take_id for s in scenes[1:]] == [t.id for t in takes] and scenes[0].id == existing.id
    assert [store.catalog.get_set(s.set_id).backdrop for s in scenes[1:] if s.set_id] == ["kitchen", "park"]
    assert [ln.text for ln in store.takes.lines(takes[0].id)] == ["You're late."]
    assert {c.name for c in store.catalog.list_characters(series.id)} == {"MAYA", "ZEB"}  # ZEB auto-cast, kept

    def broken(*args: Any, **kwargs: Any) -> Any:
        def frame(k: int, out: Any = None) -> Any:
            raise RuntimeError("renderer crashed")
        return frame

    monkeypatch.setattr(script_takes, "render_frames", broken)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        record_script(store, script, scene_id=existing.id, config=config, speech=speech)
    assert store.takes.for_scene(existing.id) == []
    assert sorted(p.name for p in store.media.takes_dir.iterdir()) == sorted(t.id for t in takes)
    store.close()


def test_record_messages_parse_and_bad_ones_say_why() -> None:
    from stream.live.control import ProtocolError, Record, parse_message

    assert parse_message('{"type": "record", "action": "start", "scene_id": "sc_1", "take_name": "T"}') == [
        Record(action="start", scene_id="sc_1", take_name="T")
    ]
    assert parse_message('{"type": "record", "action": "stop"}') == [Record(action="stop")]
    for bad, words in (('{"type": "record", "action": "pause"}', "'start' or 'stop'"),
                       ('{"type": "record", "action": "start"}', "'scene_id'"),
                       ('{"type": "record", "action": "start", "scene_id": 7}', "must be str")):
        with pytest.raises(ProtocolError, match=words):
            parse_message(bad)
