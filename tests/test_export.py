"""Stitching and export, checked on the decoded files: live and rendered takes on one timeline,
choices and order, crossfades, skipped pictures, and every way an export can be refused."""

from __future__ import annotations

import asyncio
import errno
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import opentimelineio as otio
import pytest
from support import decode, dominant_hz, mean_colour, start_server, synthetic_take

from lipsync.script import parse_script
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, TICKS_PER_FRAME
from stream.export.jobs import export_timeline
from stream.export.stitch import NothingToExportError, iter_timeline, plan_episode, plan_scene
from stream.live.config import ServerConfig
from stream.live.engine import Engine
from stream.media.mp4 import Mp4Writer, OutputError
from stream.record.script_takes import record_script
from stream.store import StorageError, StorageFullError, Store
from stream.store.segments import read_take
from stream.tools.client import ScenePeer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "data")
    yield opened
    opened.close()


class Collector:
    """A tap beside the recorder: what the session streamed (pictures kept at 1/8 size)."""

    def __init__(self) -> None:
        self.pictures: dict[int, np.ndarray] = {}
        self.samples: dict[int, np.ndarray] = {}

    def video(self, frame: av.VideoFrame) -> None:
        self.pictures[int(frame.pts) // TICKS_PER_FRAME] = frame.to_ndarray()[::8, ::8].astype(np.int16)

    def audio(self, frame: av.AudioFrame) -> None:
        self.samples[int(frame.pts)] = frame.to_ndarray().reshape(-1).copy()

    def line_started(self, line_id: str, speaker: str, text: str, sample: int) -> None:
        pass

    def line_ended(self, line_id: str, sample: int, *, interrupted: bool) -> None:
        pass


def srt_cues(path: Path) -> list[tuple[int, int, str]]:
    def ms(stamp: str) -> int:
        h, m, rest = stamp.split(":")
        s, milli = rest.split(",")
        return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(milli)

    cues = []
    for block in path.read_text().strip().split("\n\n"):
        rows = block.splitlines()
        start, end = rows[1].split(" --> ")
        cues.append((ms(start), ms(end), " ".join(rows[2:])))
    return cues


@pytest.fixture
async def server(engine: Engine, tmp_path: Path) -> AsyncIterator[tuple[Any, str]]:
    app, url, stop = await start_server(ServerConfig(data_dir=tmp_path / "data", max_sessions=4), engine)
    yield app, url
    await stop()


async def record_live(app: Any, peer: ScenePeer, scene_id: str, speaker: str, text: str) -> tuple[dict, dict, Collector]:
    """One take through the control channel while the session plays a line; (started, stopped) events."""
    collector = Collector()
    app.state.sessions.sessions[peer.session_id].add_tap(collector)
    mark = len(peer.events)
    peer.send({"type": "record", "action": "start", "scene_id": scene_id})
    await peer.event("take_started", after=mark)
    await asyncio.sleep(0.3)
    peer.send({"type": "say", "speaker": speaker, "text": text})
    started = await peer.event("line_started", after=mark)
    await peer.event("line_ended", after=mark)
    await asyncio.sleep(0.4)
    peer.send({"type": "record", "action": "stop"})
    stopped = await peer.event("take_stopped", after=mark)
    return started, stopped, collector


async def test_live_and_rendered_takes_stitch_into_one_continuous_episode(
    server: tuple[Any, str], engine: Engine, tmp_path: Path
) -> None:
    app, url = server
    store: Store = app.state.store
    series = store.catalog.create_series("Harbour Lights")
    episode = store.catalog.create_episode(series.id, "Pilot")
    scenes = [store.catalog.create_scene(episode.id, name).id for name in ("Kitchen", "Park", "Office")]

    # Two sessions record at once, each its own take, while each plays its own line.
    peers = [ScenePeer(keep_video=False), ScenePeer(keep_video=False)]
    assert (await peers[0].connect(url, cast=["MAYA", "LEO"], set="kitchen")).status_code == 200
    assert (await peers[1].connect(url, cast=["IRIS"], set="park")).status_code == 200
    for peer in peers:
        await peer.event("hello")
    live = await asyncio.gather(
        record_live(app, peers[0], scenes[0], "MAYA", "Where were you last night? I waited for hours."),
        record_live(app, peers[1], scenes[1], "IRIS", "The boats came in late, the harbour was full of light."),
    )
    for peer in peers:
        await peer.close()
    script = parse_script("OMAR: The report is due at noon.\nMAYA: Then we had better start.")
    (rendered,) = await asyncio.to_thread(record_script, store, script, scene_id=scenes[2], speech=engine.speech)

    takes = [store.takes.get(stopped["take_id"]) for _, stopped, _ in live] + [rendered]
    assert all(t.status == "complete" and t.frames > 25 for t in takes)

    # The recorder kept exactly what each session streamed: the same samples, the same pictures.
    for take, (_, stopped, collector) in zip(takes, live, strict=False):
        k0 = take.stream_start_frame
        assert stopped["start_media_time_s"] == pytest.approx(k0 * 0.04)
        played = list(read_take(store, take))
        streamed_audio = np.concatenate([collector.samples[k0 * SAMPLES_PER_FRAME + 960 * i] for i in range(2 * take.frames)])
        assert np.array_equal(np.concatenate([a for _, a in played]), streamed_audio)
        diffs = [np.abs(f.to_ndarray(format="rgb24")[::8, ::8] - collector.pictures[k0 + j]).mean()
                 for j, (f, _) in enumerate(played) if k0 + j in collector.pictures]
        assert len(diffs) >= take.frames - 2 and max(diffs) < 4.0

    timeline = plan_episode(store, episode.id)
    result = await asyncio.to_thread(export_timeline, store, timeline, tmp_path / "pilot.mp4")
    total = sum(t.frames for t in takes)
    assert result.n_frames == total and result.n_samples == total * SAMPLES_PER_FRAME
    frames, pts, audio = decode(result.mp4)
    assert len(frames) == total
    assert pts == [k * TICKS_PER_FRAME for k in range(total)], "pts continuous across the joins"
    assert audio.shape[0] >= total * SAMPLES_PER_FRAME

    expected = [list(read_take(store, t)) for t in takes]
    starts = np.cumsum([0] + [t.frames for t in takes])
    small = [[f.to_ndarray(format="rgb24")[::8, ::8].astype(np.int16) for f, _ in clip] for clip in expected]
    for i in (1, 2):  # at each join the picture changes on the very frame the audio changes
        join = starts[i]
        first, last = small[i][0], small[i - 1][-1]
        at_join, before = frames[join][::8, ::8].astype(np.int16), frames[join - 1][::8, ::8].astype(np.int16)
        assert np.abs(at_join - first).mean() < np.abs(at_join - last).mean()
        assert np.abs(before - last).mean() < np.abs(before - first).mean()
    pcm = np.concatenate([a for clip in expected for _, a in clip]).astype(np.float32) / 32768
    for i, clip in enumerate(timeline.clip_events):
        onset = starts[i] * SAMPLES_PER_FRAME + clip[0].start_sample  # a voiced stretch of this clip
        ref = pcm[onset : onset + SAMPLE_RATE_HZ // 2]
        window = audio[onset - 2400 : onset + SAMPLE_RATE_HZ // 2 + 2400]
        lag = int(np.argmax(np.correlate(window, ref, "valid"))) - 2400
        assert abs(lag) < SAMPLES_PER_FRAME, f"clip {i}: audio {lag} samples off its pictures"

    # Subtitles: the line events, shifted to each clip's place on the timeline.
    cues = srt_cues(result.srt)
    want = []
    for i, (started, stopped, _) in enumerate(live):
        at = started["media_time_s"] - stopped["start_media_time_s"] + starts[i] * 0.04
        want.append((round(at * 1000), started["text"]))
    assert [(c[0], c[2].split(": ", 1)[1]) for c in cues[:2]] == [(ms, text) for ms, text in want]
    rendered_lines = store.takes.lines(rendered.id)
    assert [c[0] for c in cues[2:]] == [round((starts[2] * SAMPLES_PER_FRAME + ln.start_sample) / 48) for ln in rendered_lines]
    assert result.vtt.read_text().startswith("WEBVTT") and result.vtt.read_text().count(" --> ") == len(cues)

    # The editable timeline: one clip per take, tiling the file, a marker per line.
    loaded = otio.adapters.read_from_file(str(result.otio))
    clips = list(loaded.tracks[0])
    assert [c.metadata["talkie"]["take_id"] for c in clips] == [t.id for t in takes]
    assert [c.source_range.duration.to_frames() for c in clips] == [t.frames for t in takes]
    assert loaded.tracks[0].duration().to_frames() == total
    assert sum(len(c.markers) for c in clips) == len(cues)
    assert clips[0].media_reference.target_url == "pilot.mp4"


def colours_and_tones(path: Path, boundaries: list[int]) -> list[tuple[int, float]]:
    """(dominant colour channel, tone in Hz to 10 Hz) of each stretch between boundaries."""
    frames, _, audio = decode(path)
    out = []
    for a, b in zip(boundaries, boundaries[1:], strict=False):
        colour = int(np.argmax(mean_colour(frames[(a + b) // 2])))
        out.append((colour, round(dominant_hz(audio[(a + 2) * SAMPLES_PER_FRAME : (b - 2) * SAMPLES_PER_FRAME]), -1)))
    return out


def test_choosing_and_reordering_takes_changes_the_export(store: Store, tmp_path: Path) -> None:
    series = store.catalog.create_series("S")
    episode = store.catalog.create_episode(series.id, "E")
    a = store.catalog.create_scene(episode.id, "A")
    b = store.catalog.create_scene(episode.id, "B")
    red = synthetic_take(store, a.id, colour=(220, 0, 0), freq_hz=400, frames=30)
    green = synthetic_take(store, a.id, colour=(0, 220, 0), freq_hz=600, frames=20)
    blue = synthetic_take(store, b.id, colour=(0, 0, 220), freq_hz=900, frames=25)
    out = tmp_path / "e.mp4"

    store.catalog.update_scene(a.id, chosen_take_id=red.id)
    assert export_timeline(store, plan_episode(store, episode.id), out).n_frames == 55
    assert colours_and_tones(out, [0, 30, 55]) == [(0, 400), (2, 900)]

    store.catalog.update_scene(a.id, chosen_take_id=green.id)
    assert export_timeline(store, plan_episode(store, episode.id), out).n_frames == 45
    assert colours_and_tones(out, [0, 20, 45]) == [(1, 600), (2, 900)]

    store.catalog.move("scene", b.id, 0)
    assert colours_and_tones(out, [0, 20, 45]) == [(1, 600), (2, 900)]  # the old file is untouched
    export_timeline(store, plan_episode(store, episode.id), out)
    assert colours_and_tones(out, [0, 25, 45]) == [(2, 900), (1, 600)]
    loaded = otio.adapters.read_from_file(str(out.with_suffix(".otio")))
    assert [c.metadata["talkie"]["take_id"] for c in loaded.tracks[0]] == [blue.id, green.id]


def test_a_crossfade_overlaps_the_clips_and_ramps_the_audio_sample_by_sample(store: Store, tmp_path: Path) -> None:
    series = store.catalog.create_series("S")
    episode = store.catalog.create_episode(series.id, "E")
    a = store.catalog.create_scene(episode.id, "A")
    b = store.catalog.create_scene(episode.id, "B", transition_ms=200)
    synthetic_take(store, a.id, colour=(240, 0, 0), freq_hz=300, frames=20)
    synthetic_take(store, b.id, colour=(0, 0, 240), freq_hz=700, frames=20)
    timeline = plan_episode(store, episode.id)
    assert timeline.n_frames == 35 and timeline.clips[1].start_frame == 15
    played = list(iter_timeline(store, timeline))
    assert len(played) == 35
    reds = [mean_colour(f.to_ndarray(format="rgb24"))[0] for f, _ in played]
    assert reds[14] > 200 and reds[20] < 40 and 60 < reds[17] < 180 and all(np.diff(reds[14:21]) < 0)
    tail_a = list(read_take(store, timeline.clips[0].take))[15:]
    head_b = list(read_take(store, timeline.clips[1].take))[:5]
    a_pcm = np.concatenate([x for _, x in tail_a]).astype(np.float64)
    b_pcm = np.concatenate([x for _, x in head_b]).astype(np.float64)
    gain = (np.arange(5 * SAMPLES_PER_FRAME) + 0.5) / (5 * SAMPLES_PER_FRAME)
    mixed = np.concatenate([x for _, x in played[15:20]])
    assert np.array_equal(mixed, np.rint(a_pcm * (1 - gain) + b_pcm * gain).astype(np.int16))
    result = export_timeline(store, timeline, tmp_path / "fade.mp4")
    loaded = otio.adapters.read_from_file(str(result.otio))
    assert [c.source_range.duration.to_frames() for c in loaded.tracks[0]] == [20, 15]


def test_skipped_pictures_repeat_and_pts_stay_continuous(store: Store, tmp_path: Path) -> None:
    series = store.catalog.create_series("S")
    scene = store.catalog.create_scene(store.catalog.create_episode(series.id, "E").id, "A")
    synthetic_take(store, scene.id, colour=(0, 200, 0), freq_hz=500, frames=12, skip={4, 5, 6})
    result = export_timeline(store, plan_scene(store, scene.id), tmp_path / "s.mp4")
    frames, pts, _ = decode(result.mp4)
    assert pts == [k * TICKS_PER_FRAME for k in range(12)] and len(frames) == 12


def test_exporting_nothing_is_refused_and_writes_nothing(store: Store, tmp_path: Path) -> None:
    series = store.catalog.create_series("S")
    episode = store.catalog.create_episode(series.id, "Empty")
    with pytest.raises(NothingToExportError, match="no recorded take") as info:
        plan_episode(store, episode.id)
    assert info.value.code == "nothing_to_export" and info.value.http_status == 409
    scene = store.catalog.create_scene(episode.id, "Not shot yet")
    store.takes.begin(scene.id, None, source="live", width_px=8, height_px=8)  # still recording: not playable
    with pytest.raises(NothingToExportError):
        plan_episode(store, episode.id)
    assert list(tmp_path.glob("*.mp4")) == []


def test_bad_output_paths_are_refused_before_any_work(store: Store, tmp_path: Path) -> None:
    series = store.catalog.create_series("S")
    scene = store.catalog.create_scene(store.catalog.create_episode(series.id, "E").id, "A")
    synthetic_take(store, scene.id, colour=(0, 0, 200), freq_hz=500, frames=5)
    timeline = plan_scene(store, scene.id)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for bad, reason in ((tmp_path / "missing" / "x.mp4", "does not exist"), (blocker / "x.mp4", "does not exist"),
                        (tmp_path / "x.mov", "must end in .mp4")):
        with pytest.raises(OutputError, match=reason):
            export_timeline(store, timeline, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "data"]


def test_a_full_disk_during_export_leaves_no_partial_file(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    series = store.catalog.create_series("S")
    scene = store.catalog.create_scene(store.catalog.create_episode(series.id, "E").id, "A")
    synthetic_take(store, scene.id, colour=(0, 0, 200), freq_hz=500, frames=30)
    out = tmp_path / "out"
    out.mkdir()
    real = Mp4Writer.write_frame

    def write_frame(self: Mp4Writer, frame: av.VideoFrame) -> None:
        if self.frames_written == 10:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, frame)

    monkeypatch.setattr(Mp4Writer, "write_frame", write_frame)
    with pytest.raises(StorageFullError, match="disk is full") as info:
        export_timeline(store, plan_scene(store, scene.id), out / "a.mp4")
    assert info.value.http_status == 507
    assert list(out.iterdir()) == []


def test_damaged_media_is_reported_not_exported(store: Store, tmp_path: Path) -> None:
    series = store.catalog.create_series("S")
    scene = store.catalog.create_scene(store.catalog.create_episode(series.id, "E").id, "A")
    take = synthetic_take(store, scene.id, colour=(0, 0, 200), freq_hz=500, frames=30)
    victim = store.media.take_dir(take.id) / "000001.pcm"
    victim.write_bytes(victim.read_bytes()[:-2] + b"\x00\x01")
    with pytest.raises(StorageError, match=re.escape(f"segment 1 of take {take.id} is damaged")):
        export_timeline(store, plan_scene(store, scene.id), tmp_path / "d.mp4")
    assert not (tmp_path / "d.mp4").exists() and not list(tmp_path.glob(".*.part"))


async def test_a_live_take_keeps_its_cut_and_the_episode_timeline_marks_every_shot(
    server: tuple[Any, str], tmp_path: Path
) -> None:
    app, url = server
    store: Store = app.state.store
    series = store.catalog.create_series("Cuts")
    episode = store.catalog.create_episode(series.id, "One")
    scene = store.catalog.create_scene(episode.id, "Kitchen")
    peer = ScenePeer(keep_video=False)
    assert (await peer.connect(url, cast=["MAYA", "LEO", "IRIS"], set="kitchen")).status_code == 200
    await peer.event("hello")
    mark = len(peer.events)
    peer.send({"type": "record", "action": "start", "scene_id": scene.id})
    await peer.event("take_started", after=mark)
    await asyncio.sleep(1.5)  # past the opening wide's minimum length, so the first line cuts too
    for speaker, text in (
        ("MAYA", "Where were you last night? I waited for hours."),
        ("LEO", "Out by the harbour, watching the boats come in."),
    ):
        at = len(peer.events)
        peer.send({"type": "say", "speaker": speaker, "text": text})
        await peer.event("line_ended", after=at, timeout=30)
    await asyncio.sleep(0.3)
    peer.send({"type": "record", "action": "stop"})
    stopped = await peer.event("take_stopped", after=mark)
    await peer.close()

    take = store.takes.get(stopped["take_id"])
    shots, lines = store.takes.shots(take.id), store.takes.lines(take.id)
    # The take opens on the staged wide of everyone, then cuts to each speaker on their first frame.
    assert shots[0].start_frame == 0 and shots[0].kind == "wide" and set(shots[0].subjects) == {"MAYA", "LEO", "IRIS"}
    starts = {s.start_frame: s for s in shots}
    for line in lines:
        first = line.start_sample // SAMPLES_PER_FRAME
        assert first in starts and starts[first].label == f"medium {line.speaker}", (line, shots)
    assert [s.start_frame for s in shots] == sorted({s.start_frame for s in shots})
    async with httpx.AsyncClient(base_url=url) as http:  # the REST API shows the cut with the take
        shown = (await http.get(f"/api/takes/{take.id}")).json()
    assert [(s["start_frame"], s["label"]) for s in shown["shots"]] == [(s.start_frame, s.label) for s in shots]

    # The episode's timeline carries the cut as a track of its own, one clip per shot, tiling the file.
    result = await asyncio.to_thread(export_timeline, store, plan_episode(store, episode.id), tmp_path / "one.mp4")
    loaded = otio.adapters.read_from_file(str(result.otio))
    cut = next(t for t in loaded.tracks if t.name == "Shots")
    assert cut.duration().to_frames() == result.n_frames == take.frames
    clips = [c for c in cut if isinstance(c, otio.schema.Clip)]
    assert [c.name for c in clips] == [s.label for s in shots]
    assert [c.source_range.start_time.to_frames() for c in clips] == [s.start_frame for s in shots]
    meta = clips[1].metadata["talkie"]
    assert (meta["shot"], list(meta["subjects"]), meta["take_id"], meta["scene"], meta["take_start_frame"]) == (
        "medium", ["MAYA"], take.id, "Kitchen", shots[1].start_frame
    )
    # ... and the pictures agree: the picture jumps at each recorded cut, not inside a shot.
    frames, _, _ = decode(result.mp4)
    small = [f[::4, ::4].astype(np.int16) for f in frames]
    change = [0.0] + [float(np.abs(b - a).mean()) for a, b in zip(small, small[1:], strict=False)]
    cuts = [s.start_frame for s in shots[1:]]
    inside = [c for k, c in enumerate(change) if k not in cuts and k > 0]
    assert min(change[k] for k in cuts) > 4 * float(np.percentile(inside, 99))
