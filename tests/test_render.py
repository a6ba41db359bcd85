"""The offline path end to end: script → MP4 + subtitles, checked on the decoded file's content."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from avatar.measure import mouth_opening
from avatar.scene import Compositor, SceneLayout
from avatar.spec import Cast
from lipsync.script import parse_script
from lipsync.speech import SpeechEngine
from lipsync.timebase import FPS, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from stream.record.offline import RenderConfig, perform, plan_scenes, render_script, spoken_ahead
from stream.record.stages import NullTimer

SCRIPT = """\
INT. KITCHEN - NIGHT

MAYA
Where were you last night? I waited for hours, and nobody called me back.

LEO
I was at the harbour, watching the boats come in, one by one.

MAYA
All night?

LEO ^
Yes, all night!
"""
SIZE = 320


def decode(path: Path) -> tuple[list[np.ndarray], np.ndarray, list[int]]:
    with av.open(str(path)) as container:
        frames, pts = [], []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            pts.append(frame.pts)
    with av.open(str(path)) as container:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return frames, audio, pts


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("render") / "scene.mp4"
    config = RenderConfig(width_px=SIZE, height_px=SIZE, director=False)  # one static layout: fixed mouth boxes
    result = render_script(parse_script(SCRIPT), out, config=config)
    return out, result


def scene_timeline(speech: SpeechEngine):  # the same timeline the render used (speech is deterministic)
    config = RenderConfig(width_px=SIZE, height_px=SIZE)
    plan = plan_scenes(parse_script(SCRIPT), Cast.builtin(), config)[0]
    return plan, perform(plan, speech, config=config, timer=NullTimer())


def test_audio_and_video_durations_agree(rendered: tuple[Path, object]) -> None:
    path, result = rendered
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        video_s = float(video.duration * video.time_base)
        audio_s = float(audio.duration * audio.time_base)
    assert abs(video_s - audio_s) <= 1 / FPS
    assert result.n_samples == result.n_frames * SAMPLES_PER_FRAME


def test_video_pts_advance_by_one_frame(rendered: tuple[Path, object]) -> None:
    frames, _, pts = decode(rendered[0])
    assert np.all(np.diff(pts) == np.diff(pts)[0])
    assert len(frames) == rendered[1].n_frames


def test_mouths_follow_each_speakers_voice_and_silent_mouths_stay_shut(
    rendered: tuple[Path, object], speech: SpeechEngine
) -> None:
    frames, _, _ = decode(rendered[0])
    plan, timeline = scene_timeline(speech)
    layout = SceneLayout.for_count(len(plan.cast), width_px=SIZE, height_px=SIZE)
    boxes = Compositor(layout=layout, characters=plan.cast, set_name=plan.set_name).mouth_boxes()
    for i, spec in enumerate(plan.cast):
        opening = np.array([mouth_opening(f, boxes[i]) for f in frames])
        energy = timeline.voice_rms[spec.name][: len(frames)]
        corr = np.corrcoef(opening, energy)[0, 1]
        assert corr > 0.5, f"{spec.name}: mouth/energy correlation {corr:.2f}"
        silent = ~timeline.speaking(spec.name)[: len(frames)]
        assert silent.sum() > 20
        assert opening[silent].max() == 0.0, f"{spec.name} moved their lips while not speaking"


def test_dual_dialogue_moves_both_mouths_at_once(rendered: tuple[Path, object], speech: SpeechEngine) -> None:
    plan, timeline = scene_timeline(speech)
    maya, leo = timeline.speaking("MAYA"), timeline.speaking("LEO")
    both = np.flatnonzero(maya & leo)
    assert both.size > 5
    frames, _, _ = decode(rendered[0])
    layout = SceneLayout.for_count(2, width_px=SIZE, height_px=SIZE)
    boxes = Compositor(layout=layout, characters=plan.cast, set_name=plan.set_name).mouth_boxes()
    open_a = [mouth_opening(frames[k], boxes[0]) > 0 for k in both]
    open_b = [mouth_opening(frames[k], boxes[1]) > 0 for k in both]
    assert any(a and b for a, b in zip(open_a, open_b, strict=True))


def test_audio_in_the_file_is_the_scene_audio(rendered: tuple[Path, object], speech: SpeechEngine) -> None:
    _, audio, _ = decode(rendered[0])
    _, timeline = scene_timeline(speech)
    # AAC is lossy: compare energy envelopes per frame, not samples.
    decoded = audio[: timeline.n_samples].astype(np.float32)
    n = min(decoded.shape[0], timeline.n_samples) // SAMPLES_PER_FRAME
    env_file = np.sqrt(np.mean(decoded[: n * SAMPLES_PER_FRAME].reshape(n, -1) ** 2, axis=1))
    ref = timeline.audio[: n * SAMPLES_PER_FRAME].astype(np.float32) / 32768
    env_ref = np.sqrt(np.mean(ref.reshape(n, -1) ** 2, axis=1))
    assert np.corrcoef(env_file, env_ref)[0, 1] > 0.95


def test_an_audio_track_encoded_beside_the_video_is_the_audio_written_block_by_block(tmp_path: Path) -> None:
    from stream.media.mp4 import Mp4Writer, VideoEncoding

    rng = np.random.default_rng(5)
    n_frames = 40
    pcm = (np.sin(np.arange(n_frames * SAMPLES_PER_FRAME) * 0.05) * 9000 + rng.normal(0, 800, n_frames * SAMPLES_PER_FRAME)).astype(np.int16)
    frames = [np.full((64, 64, 3), 6 * k, np.uint8) for k in range(n_frames)]
    encoding = VideoEncoding(width_px=64, height_px=64, preset="ultrafast")
    with Mp4Writer(tmp_path / "blocks.mp4", encoding=encoding) as writer:
        for k, rgb in enumerate(frames):
            writer.write_video(rgb)
            writer.write_audio(pcm[k * SAMPLES_PER_FRAME : (k + 1) * SAMPLES_PER_FRAME])
    with Mp4Writer(tmp_path / "track.mp4", encoding=encoding) as writer:
        writer.write_audio_track(pcm)
        with pytest.raises(ValueError, match="written once"):
            writer.write_audio_track(pcm)
        for rgb in frames:
            writer.write_video(rgb)
        assert writer.samples_written == pcm.shape[0]

    def decoded(path: Path) -> tuple[np.ndarray, list[tuple[str, float]]]:
        with av.open(str(path)) as c:
            audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
        with av.open(str(path)) as c:
            order = [(p.stream.type, float(p.dts * p.time_base)) for p in c.demux() if p.dts is not None]
        return audio, order

    (blocks, _), (track, order) = decoded(tmp_path / "blocks.mp4"), decoded(tmp_path / "track.mp4")
    np.testing.assert_array_equal(track, blocks)
    # Interleaved as written: no audio packet is muxed more than a frame ahead of its video.
    video_time = 0.0
    for kind, t in order:
        if kind == "video":
            video_time = t
        else:
            assert t <= video_time + 2 / FPS


def test_lines_spoken_ahead_for_every_scene_lay_out_as_each_scene_alone(speech: SpeechEngine) -> None:
    config = RenderConfig(width_px=SIZE, height_px=SIZE)
    two_scenes = SCRIPT + "\nEXT. HARBOUR - DAY\n\nLEO\nThe boats are back.\n\nIRIS\nAll of them, at last!\n"
    plans = plan_scenes(parse_script(two_scenes), Cast.builtin(), config)
    assert len(plans) == 2
    with spoken_ahead(plans, speech, config=config) as made:
        assert len(made) == sum(len(p.lines) for p in plans)
        ahead = [perform(p, speech, config=config, timer=NullTimer(), spoken=made) for p in plans]
    alone = [perform(p, speech, config=config, timer=NullTimer()) for p in plans]
    for a, b in zip(ahead, alone, strict=True):
        np.testing.assert_array_equal(a.audio, b.audio)
        assert [(e.speaker, e.start_sample, e.end_sample) for e in a.events] == [
            (e.speaker, e.start_sample, e.end_sample) for e in b.events
        ]


def test_subtitles_match_the_line_events(rendered: tuple[Path, object]) -> None:
    path, result = rendered
    srt = path.with_suffix(".srt").read_text(encoding="utf-8")
    vtt = path.with_suffix(".vtt").read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT")
    for event in result.events:
        start_ms = round(event.start_sample * 1000 / SAMPLE_RATE_HZ)
        stamp = f"{start_ms // 3600000:02d}:{start_ms // 60000 % 60:02d}:{start_ms // 1000 % 60:02d}"
        assert f"{stamp},{start_ms % 1000:03d} -->" in srt
        assert f"{stamp}.{start_ms % 1000:03d} -->" in vtt
        assert f"<v {event.speaker}>" in vtt
    assert srt.count("-->") == len(result.events) == 4


def test_the_same_script_renders_identical_frames(rendered: tuple[Path, object], tmp_path: Path) -> None:
    again = tmp_path / "again.mp4"
    render_script(parse_script(SCRIPT), again, config=RenderConfig(width_px=SIZE, height_px=SIZE, director=False))
    first, _, _ = decode(rendered[0])
    second, _, _ = decode(again)
    assert len(first) == len(second)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_mandarin_and_korean_lines_render(tmp_path: Path) -> None:
    script = "小明: 广州市房地产中介协会分析\n민수: 안녕하세요, 반갑습니다"
    result = render_script(parse_script(script), tmp_path / "cjk.mp4", config=RenderConfig(width_px=256, height_px=256))
    assert [e.speaker for e in result.events] == ["小明", "민수"]
    assert all(e.end_sample - e.start_sample > SAMPLE_RATE_HZ for e in result.events)


# -- the command line: bad input gets a clear error and a non-zero exit ------------------------


def talkie(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.tools.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("", (), "script is empty"),
        ("Just some words with no speakers at all.\n", (), "no dialogue"),
        ("MAYA: " + "word " * 300 + "\n", (), "limit"),
        ("NEWBIE: hello\n", ("--lang", "xx-nowhere"), "xx-nowhere"),
        ("MAYA: hello\n", ("--size", "4000x4000"), "4000"),
        ("MAYA: hello\n", ("--set", "moon"), "moon"),
    ],
)
def test_cli_bad_input(tmp_path: Path, content: str, args: tuple[str, ...], message: str) -> None:
    (tmp_path / "s.txt").write_text(content, encoding="utf-8")
    done = talkie("render", "s.txt", "-o", "out.mp4", "-q", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.mp4").exists()
    assert not list(tmp_path.glob("*.part"))


def test_cli_unwritable_output_and_missing_script(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("MAYA: hello\n", encoding="utf-8")
    done = talkie("render", "s.txt", "-o", "no/such/dir/out.mp4", "-q", cwd=tmp_path)
    assert done.returncode == 2 and "does not exist" in done.stderr
    done = talkie("render", "missing.txt", "-o", "out.mp4", "-q", cwd=tmp_path)
    assert done.returncode == 2 and "missing.txt" in done.stderr


def test_cli_aliases_resolve_to_one_character(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("MOM: Dinner!\nMaya: Coming.\n", encoding="utf-8")
    done = talkie("render", "s.txt", "-o", "out.mp4", "-q", "--size", "128x128", "--alias", "Mom=MAYA", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    srt = (tmp_path / "out.srt").read_text(encoding="utf-8")
    assert srt.count("MAYA:") == 2 and "MOM" not in srt
    done = talkie("render", "s.txt", "-o", "out.mp4", "-q", "--alias", "MOM", cwd=tmp_path)
    assert done.returncode == 2 and "MOM=MAYA" in done.stderr


def test_cli_renders(tmp_path: Path) -> None:
    (tmp_path / "s.fountain").write_text(SCRIPT, encoding="utf-8")
    done = talkie("render", "s.fountain", "-o", "out.mp4", "--size", "256x256", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.mp4").stat().st_size > 10_000
    assert (tmp_path / "out.srt").exists() and (tmp_path / "out.vtt").exists()
