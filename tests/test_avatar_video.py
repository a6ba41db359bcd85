"""A user's own video as a mouth model's source: reading, face box, mel drive, build, animate.

No real talking-person video ships with the repo, so the tests draw one: a cartoon face whose
mouth opens with the RMS energy of real espeak-ng speech, at 30 fps (so reading must resample
to 25 fps by timestamp), with the source frame number written in binary along the top edge.
The real portrait in ../shared/testdata checks the face detector when that folder is present.
"""

from __future__ import annotations

import json
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import testdata_file as real_file

from lipsync.neural.checkpoint import CheckpointError, read_extra
from lipsync.neural.model import FaceGen, config_for
from lipsync.neural.regions import crop_regions, paint_mask, region_masks
from lipsync.neural.video_data import (
    MEL_DB_CENTRE,
    MEL_DB_SCALE,
    FaceBox,
    detect_face,
    face_region,
    locate_face,
    mel_windows,
    video_dataset,
)
from lipsync.neural.video_io import VideoSourceError, iter_frames, open_source, read_audio
from lipsync.neural.weights import load_student
from lipsync.speech import SpeechEngine
from lipsync.voices import VoiceSpec
from stream.media.mp4 import Mp4Writer, VideoEncoding
from stream.tools.avatar_animate import (
    MouthPainter,
    animate_video,
    load_video_model,
    pingpong_runs,
)
from stream.tools.avatar_build import BuildConfig, build_from_video, save_half
from stream.tools.cli import main

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SIZE = 160
SRC_FPS = 30
FACE = FaceBox(x=44, y=30, w=72, h=72)  # the drawn face's box, in Haar-like geometry
CODE_BITS = 9  # source frame number, one 10 px block per bit along the top edge
LINES = (
    "Where were you last night?",
    "At the harbour, watching the boats come in.",
    "Please pass me the bread and the butter.",
)


# --- a synthetic talking person ----------------------------------------------------------------


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
    d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    return np.clip((1.0 - d) * min(rx, ry) + 0.5, 0.0, 1.0)[..., None]


def draw_face(opening: float, index: int) -> np.ndarray:
    """A 160x160 face, mouth ``opening`` in [0, 1], ``index`` in binary along the top."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    img = np.broadcast_to(np.float32([0.35, 0.45, 0.6]), (SIZE, SIZE, 3)).copy()
    cx = FACE.x + FACE.w / 2
    face = _ellipse(yy, xx, FACE.y + 0.55 * FACE.h, cx, 0.62 * FACE.h, 0.5 * FACE.w)
    img = img * (1 - face) + np.float32([0.9, 0.7, 0.55]) * face
    for ex in (-0.2, 0.2):
        eye = _ellipse(yy, xx, FACE.y + 0.4 * FACE.h, cx + ex * FACE.w, 3.5, 5.0)
        img = img * (1 - eye) + np.float32(0.1) * eye
    my, rx, ry = FACE.y + 0.78 * FACE.h, 12.0, 1.5 + 9.0 * opening
    lips = _ellipse(yy, xx, my, cx, ry + 2.5, rx + 2.5)
    inner = _ellipse(yy, xx, my, cx, ry, rx)
    img = img * (1 - lips) + np.float32([0.75, 0.2, 0.25]) * lips
    img = img * (1 - inner) + np.float32([0.12, 0.03, 0.05]) * inner
    out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    for b in range(CODE_BITS):
        out[2:12, 2 + 12 * b : 12 + 12 * b] = 255 if (index >> b) & 1 else 0
    return out


def read_code(rgb: np.ndarray) -> int:
    """The source frame number written by ``draw_face``."""
    blocks = [rgb[4:10, 4 + 12 * b : 10 + 12 * b].mean() for b in range(CODE_BITS)]
    return sum(1 << b for b, v in enumerate(blocks) if v > 128)


def speech_pcm(speech: SpeechEngine, lines: tuple[str, ...], gap_s: float = 0.4) -> np.ndarray:
    gap = np.zeros(round(gap_s * 48_000), np.int16)
    parts = [gap]
    for line in lines:
        parts += [speech.say(line, VoiceSpec()).pcm, gap]
    return np.concatenate(parts)


def write_mp4(
    path: Path, frames: list[np.ndarray], pcm: np.ndarray | None, *, fps: int = SRC_FPS
) -> Path:
    """H.264 (+ AAC when ``pcm`` is given) at ``fps``: a stand-in for a phone recording."""
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height = frames[0].shape[1], frames[0].shape[0]
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": "16", "preset": "veryfast"}
        vs.codec_context.time_base = Fraction(1, fps)
        vs.codec_context.gop_size = fps  # a keyframe a second, as phones write: seeks land mid-file
        streams = [vs]
        if pcm is not None:
            aus = out.add_stream("aac", rate=48_000, layout="mono")
            streams.append(aus)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(frame))
        if pcm is not None:
            for start in range(0, pcm.shape[0], 4800):
                chunk = pcm[start : start + 4800].reshape(1, -1)
                af = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
                af.sample_rate, af.pts, af.time_base = 48_000, start, Fraction(1, 48_000)
                out.mux(aus.encode(af))
        for s in streams:
            out.mux(s.encode(None))
    return path


def talking_video(path: Path, pcm: np.ndarray) -> tuple[Path, int]:
    """The face saying ``pcm``, its mouth opening with each source frame's RMS; (path, frames)."""
    per = 48_000 // SRC_FPS
    n = pcm.shape[0] // per
    x = pcm[: n * per].astype(np.float32).reshape(n, per) / 32768.0
    rms = np.sqrt((x**2).mean(axis=1))
    opening = np.clip(rms / (0.5 * rms.max()), 0.0, 1.0)
    return write_mp4(path, [draw_face(float(o), i) for i, o in enumerate(opening)], pcm), n


def write_wav_16k(path: Path, pcm_48k: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(pcm_48k[::3].astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def person(tmp_path_factory, speech) -> dict:
    folder = tmp_path_factory.mktemp("person")
    pcm = speech_pcm(speech, LINES)
    path, n_src = talking_video(folder / "person.mp4", pcm)
    return {"path": path, "pcm": pcm, "n_src": n_src, "folder": folder}


@pytest.fixture(scope="module")
def built(person) -> dict:
    config = BuildConfig(
        variant="tiny",
        teacher_steps=120,
        student_steps=30,
        n_pairs=32,
        teacher_sample_steps=4,
        batch_size=8,
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the function-scoped torch_one_thread
    try:
        return build_from_video(
            person["path"],
            name="person",
            out_dir=person["folder"] / "models",
            config=config,
            face_box=FACE,
            progress=False,
        )
    finally:
        torch.set_num_threads(before)


# --- reading -------------------------------------------------------------------------------------


def test_reading_resamples_to_25_fps_and_keeps_audio_aligned(person) -> None:
    src = open_source(person["path"])
    n_audio = person["pcm"].shape[0] // 1920
    n_video = -(-person["n_src"] * 25 // SRC_FPS)
    assert src.n_frames == min(n_video, n_audio) and (src.width_px, src.height_px) == (SIZE, SIZE)
    assert src.pcm.shape == (src.n_frames * 1920,) and src.pcm.dtype == np.int16
    frames = list(iter_frames(src))
    assert len(frames) == src.n_frames and frames[0].shape == (SIZE, SIZE, 3)
    # Frame k is the 30 fps source frame shown at k / 25 s.
    assert [read_code(f) for f in frames] == [k * SRC_FPS // 25 for k in range(src.n_frames)]
    # A span read after a seek gives the same frames.
    late = list(iter_frames(src, start=150, stop=160))
    assert [read_code(f) for f in late] == [k * SRC_FPS // 25 for k in range(150, 160)]
    # The sound is the original speech at lag 0 (AAC changes the waveform, not its timing).
    a = src.pcm.astype(np.float32)
    b = person["pcm"][: a.shape[0]].astype(np.float32)
    m = a.shape[0]
    lags = np.arange(-480, 481, 4)
    corr = [np.dot(a[480 + lag : m - 480 + lag], b[480 : m - 480]) for lag in lags]
    assert abs(int(lags[int(np.argmax(corr))])) <= 4


def test_bad_sources_are_named(person, tmp_path) -> None:
    with pytest.raises(VideoSourceError, match="does not exist"):
        open_source(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoSourceError, match="notes.mp4 is not a video"):
        open_source(text)
    face = [draw_face(0.0, i) for i in range(125)]
    silent = write_mp4(tmp_path / "silent.mp4", face, None)
    with pytest.raises(VideoSourceError, match="silent.mp4 has no audio stream"):
        open_source(silent)
    short = write_mp4(tmp_path / "short.mp4", face[:60], person["pcm"][:96_000])
    with pytest.raises(VideoSourceError, match=r"short.mp4 has 2.00 s .* at least 4 s"):
        open_source(short)
    tiny = write_mp4(tmp_path / "tiny.mp4", [f[:48, :48] for f in face], person["pcm"][:240_000])
    with pytest.raises(VideoSourceError, match="48x48: too small for a face"):
        open_source(tiny)
    wav = write_wav_16k(tmp_path / "voice.wav", person["pcm"])
    with pytest.raises(VideoSourceError, match="voice.wav has no video stream"):
        open_source(wav)
    with pytest.raises(VideoSourceError, match="silent.mp4 has no audio stream"):
        read_audio(silent)


def test_read_audio_resamples_any_file_to_48k(person, tmp_path) -> None:
    wav = write_wav_16k(tmp_path / "voice.wav", person["pcm"])
    pcm = read_audio(wav)
    assert pcm.dtype == np.int16 and abs(pcm.shape[0] - person["pcm"].shape[0]) <= 3
    # Band-limited speech survives 48k -> 16k -> 48k closely.
    n = min(pcm.shape[0], person["pcm"].shape[0])
    ref = person["pcm"][:n].astype(np.float32)
    assert np.corrcoef(pcm[:n].astype(np.float32), ref)[0, 1] > 0.9


# --- the face --------------------------------------------------------------------------------------


def test_given_face_box_is_validated(person) -> None:
    assert FaceBox.parse("44, 30,72,72") == FACE
    with pytest.raises(ValueError, match="X,Y,W,H"):
        FaceBox.parse("44,30,72")
    with pytest.raises(
        VideoSourceError, match=r"person.mp4: face box 100,30,72,72 is not inside the 160x160"
    ):
        locate_face(person["path"], crop_px=32, face_box=FaceBox(100, 30, 72, 72))
    with pytest.raises(VideoSourceError, match="smaller than 32 px"):
        locate_face(person["path"], crop_px=32, face_box=FaceBox(10, 10, 20, 20))


def test_face_region_puts_mouth_and_chin_in_the_mask() -> None:
    r = face_region(FACE, width_px=SIZE, height_px=SIZE, crop_px=64)
    assert r.side == round(1.15 * 72) and r.x0 <= FACE.x and r.y0 + r.side >= FACE.y + FACE.h
    rows, cols = np.nonzero(r.mask)
    to_frame = lambda v, o: o + v * r.side / 64  # noqa: E731
    mouth_y, chin_y = FACE.y + 0.78 * FACE.h, FACE.y + 0.55 * FACE.h + 0.62 * FACE.h
    assert (
        to_frame(rows.min(), r.y0) < mouth_y - 10 and to_frame(rows.max() + 1, r.y0) >= chin_y - 2
    )
    eyes_y = FACE.y + 0.4 * FACE.h
    assert to_frame(rows.min(), r.y0) > eyes_y + 5  # the eyes stay outside
    assert (
        to_frame(cols.min(), r.x0) < FACE.x + FACE.w / 2 - 14 < to_frame(cols.max() + 1, r.x0) - 28
    )


def test_detects_the_face_on_a_real_portrait(tmp_path) -> None:
    from PIL import Image

    portrait = np.asarray(Image.open(real_file("portrait_astronaut_512.png")).convert("RGB"))
    box = detect_face([portrait], source="portrait")
    # The astronaut's face: eyes near y 100, mouth near y 150, centred near x 225.
    assert 200 < box.x + box.w / 2 < 250 and 90 < box.y + box.h / 2 < 130 and 70 < box.w < 130
    # From a video: a still of the portrait over silence, half size.
    half = np.asarray(Image.fromarray(portrait).resize((256, 256)))
    video = write_mp4(tmp_path / "still.mp4", [half] * 130, np.zeros(210_000, np.int16))
    face = locate_face(video, crop_px=32)
    assert face.detected
    assert abs(face.face_box.x - box.x / 2) < 8 and abs(face.face_box.w - box.w / 2) < 8


def test_no_face_fails_with_a_hint(tmp_path) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (160, 160, 3), dtype=np.uint8) for _ in range(4)]
    frames.append(np.full((160, 160, 3), 90, np.uint8))
    with pytest.raises(VideoSourceError, match=r"wall.mp4: no face found .* --face-box"):
        detect_face(frames, source="wall.mp4")


# --- the drive ----------------------------------------------------------------------------------


def test_mel_windows_are_centred_and_grow_with_loudness(speech) -> None:
    pcm = speech.say("The quick brown fox jumps over the lazy dog.", VoiceSpec()).pcm
    n = pcm.shape[0] // 1920
    w = mel_windows(pcm, n)
    assert w.shape == (n, 40, 20) and w.dtype == np.float32
    quiet = mel_windows((pcm // 4).astype(np.int16), n)
    speaking = w.mean(axis=(1, 2)) > -1.0
    assert speaking.sum() > n // 3
    gain_db = (w - quiet)[speaking].mean() * MEL_DB_SCALE
    assert 10.0 < gain_db < 13.0  # a quarter of the amplitude is 12 dB down
    silence = mel_windows(np.zeros(1920 * 3, np.int16), 3)
    np.testing.assert_allclose(silence, (-100.0 - MEL_DB_CENTRE) / MEL_DB_SCALE, atol=1e-5)
    # A burst in frame 10's audio starts at hop 8 of window 10 (its own first hop) and at hop 0
    # of window 12; each hop's 25 ms analysis window ends with the hop, so it echoes 2 hops on.
    burst = np.zeros(1920 * 20, np.int16)
    t = np.arange(1920) / 48_000
    burst[1920 * 10 : 1920 * 11] = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    loud = mel_windows(burst, 20).max(axis=1) > -1.0  # (20 windows, 20 hops): any band lit
    assert np.flatnonzero(loud[10]).tolist() == [8, 9, 10, 11, 12, 13]
    assert np.flatnonzero(loud[12]).tolist() == [0, 1, 2, 3, 4, 5]
    assert not loud[7].any() and not loud[14].any()


# --- build and animate ---------------------------------------------------------------------------


def test_video_dataset_rows_follow_the_frames(person) -> None:
    train, held, face = video_dataset(person["path"], crop_px=32, face_box=FACE)
    n = face.source.n_frames
    assert len(train) + len(held) == n and 0.08 < len(held) / n < 0.12
    assert train.drive_shape == (40, 20) and train.crop_px == 32
    # Each reference is a quiet frame: the mouth closed as drawn.
    closed = crop_regions(draw_face(0.0, 0), [face.region], crop_px=32)
    ref = train.references.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    mask = torch.from_numpy(face.region.mask)
    assert ((ref - closed).abs() * mask).sum() / mask.sum() / 3 < 0.06
    # Row k of the training set is frame k's crop (the first clip starts at frame 0).
    k = 57
    rgb = list(iter_frames(face.source, start=k, stop=k + 1))[0]
    again = crop_regions(rgb, [face.region], crop_px=32)
    row = train.frames[k].permute(2, 0, 1).float() / 127.5 - 1.0
    assert (again[0] - row).abs().max() < 1.5 / 127.5


def test_tiny_build_writes_a_video_student(built, person) -> None:
    path = Path(built["path"])
    assert path.is_file() and built["teacher_loss_last50"] < built["teacher_loss_first50"]
    model = load_student(path)
    assert model.cfg.drive_kind == "mel" and (model.cfg.drive_channels, model.cfg.drive_frames) == (
        40,
        20,
    )
    extra = read_extra(path)
    assert extra["source"] == "video" and extra["frame_size"] == [SIZE, SIZE]
    assert extra["face_box"] == [FACE.x, FACE.y, FACE.w, FACE.h] and not extra["face_box_detected"]
    region = face_region(FACE, width_px=SIZE, height_px=SIZE, crop_px=model.cfg.crop_px)
    assert extra["region"] == {"x0": region.x0, "y0": region.y0, "side": region.side}
    assert extra["video"] == str(person["path"].resolve())
    load_video_model(path)
    # The half-finished build folder only resumes on the same video and face box.
    with pytest.raises(
        ValueError, match=r"\.person-build holds a build of .*person.mp4.* another --name"
    ):
        build_from_video(
            person["path"],
            name="person",
            out_dir=path.parent,
            config=BuildConfig(variant="tiny", teacher_steps=1, student_steps=1),
            face_box=FaceBox(40, 30, 72, 72),
            progress=False,
        )


def _paint_area(region, crop_px: int) -> np.ndarray:
    """Frame pixels (H, W) bool that the paste may change."""
    soft = paint_mask(region_masks([region]))
    m = F.interpolate(soft, size=(region.side, region.side), mode="bilinear", align_corners=False)
    area = np.zeros((SIZE, SIZE), bool)
    area[region.y0 : region.y0 + region.side, region.x0 : region.x0 + region.side] = (
        m[0, 0].numpy() > 0
    )
    return area


def test_painter_changes_only_the_paint_mask(built, person) -> None:
    model, _ = load_video_model(built["path"])
    region = face_region(FACE, width_px=SIZE, height_px=SIZE, crop_px=model.cfg.crop_px)
    src = open_source(person["path"])
    frames = [f.copy() for f in iter_frames(src, start=40, stop=44)]
    before = [f.copy() for f in frames]
    refs = crop_regions(frames[0], [region], crop_px=model.cfg.crop_px)
    painter = MouthPainter(model=model, region=region, references=refs)
    painter.paint(frames, mel_windows(src.pcm, src.n_frames)[40:44], [0] * 4)
    area = _paint_area(region, model.cfg.crop_px)
    for new, old in zip(frames, before, strict=True):
        assert np.array_equal(new[~area], old[~area])
        assert np.abs(new[area].astype(int) - old[area]).mean() > 2.0


def test_pingpong_runs() -> None:
    order = [
        k
        for a, b, back in pingpong_runs(4, 11)
        for k in (range(b - 1, a - 1, -1) if back else range(a, b))
    ]
    assert order == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2]
    assert [k for a, b, _ in pingpong_runs(1, 3) for k in range(a, b)] == [0, 0, 0]


def test_animate_matches_the_new_audio_and_keeps_the_source_outside_the_mouth(
    built, person, speech, tmp_path
) -> None:
    # A 1.6 s source (the person's first 48 frames) and 3+ s of new audio: the source ping-pongs.
    first = [f for _, f in zip(range(48), iter_frames(open_source(person["path"])), strict=False)]
    short = write_mp4(tmp_path / "short.mp4", first, None, fps=25)
    new = speech.say("Fetch the map, we are going on a voyage.", VoiceSpec(variant="f4")).pcm
    wav = write_wav_16k(tmp_path / "new.wav", new)
    n_new = read_audio(wav).shape[0]
    out = animate_video(built["path"], short, wav, tmp_path / "out.mp4", progress=False)
    assert out.n_frames == -(-n_new // 1920) and out.n_samples == n_new and out.source_frames == 48

    with av.open(str(out.path)) as c:
        got = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        a = c.streams.audio[0]
        audio_s = float(a.duration * a.time_base)
        assert (
            abs(
                float(c.streams.video[0].duration * c.streams.video[0].time_base)
                - out.n_frames / 25
            )
            < 1e-3
        )
    assert len(got) == out.n_frames and abs(audio_s - n_new / 48_000) < 0.04

    src = open_source(short, require_audio=False, min_seconds=0)
    source_frames = list(iter_frames(src))
    order = [
        k
        for a, b, back in pingpong_runs(48, out.n_frames)
        for k in (range(b - 1, a - 1, -1) if back else range(a, b))
    ]
    assert [read_code(f) for f in got] == [read_code(source_frames[k]) for k in order]
    model, extra = load_video_model(built["path"])
    region = face_region(FACE, width_px=SIZE, height_px=SIZE, crop_px=model.cfg.crop_px)
    area = _paint_area(region, model.cfg.crop_px)
    # The same source frames encoded untouched with the same settings: the H.264 tolerance.
    with Mp4Writer(
        tmp_path / "plain.mp4", encoding=VideoEncoding(width_px=SIZE, height_px=SIZE, crf=20)
    ) as w:
        for k in order:
            w.write_video(source_frames[k])
    with av.open(str(tmp_path / "plain.mp4")) as c:
        plain = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    # H.264 spreads a change a few pixels: compare outside the paint area grown by 4 px.
    grown = (
        F.max_pool2d(torch.from_numpy(area[None, None].astype(np.float32)), 9, 1, 4)[0, 0].numpy()
        > 0
    )
    for j, frame in enumerate(got):
        want = source_frames[order[j]].astype(int)
        diff = np.abs(frame.astype(int) - want).mean(axis=2)  # (H, W)
        tolerance = np.abs(plain[j].astype(int) - want).mean(axis=2)
        assert diff[~grown].mean() < tolerance[~grown].mean() + 0.2, j
        assert diff[area].mean() > tolerance[area].mean() + 5.0, j  # the mouth was repainted


def test_animate_refuses_foreign_models_and_sources(built, person, tmp_path) -> None:
    rig = save_half(
        tmp_path / "maya.safetensors",
        FaceGen(config_for("tiny")),
        kind="student",
        step=1,
        extra={"source": "rig", "characters": ["MAYA"]},
    )
    wav = write_wav_16k(tmp_path / "new.wav", person["pcm"][:96_000])
    with pytest.raises(CheckpointError, match="maya.safetensors is not a video model"):
        animate_video(rig, person["path"], wav, tmp_path / "out.mp4", progress=False)
    wide = write_mp4(tmp_path / "wide.mp4", [np.zeros((160, 192, 3), np.uint8)] * 30, None)
    with pytest.raises(
        VideoSourceError, match="wide.mp4 is 192x160 but .* built on a 160x160 video"
    ):
        animate_video(built["path"], wide, wav, tmp_path / "out.mp4", progress=False)
    with pytest.raises(VideoSourceError, match="nothing.wav does not exist"):
        animate_video(
            built["path"],
            person["path"],
            tmp_path / "nothing.wav",
            tmp_path / "o.mp4",
            progress=False,
        )
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "o.mp4").exists()


def test_cli_animate_and_build_arguments(built, person, tmp_path, capsys) -> None:
    wav = write_wav_16k(tmp_path / "new.wav", person["pcm"][:48_000])
    out = tmp_path / "cli.mp4"
    args = ["avatar", "animate", "--model", built["path"], "--video", str(person["path"])]
    assert main([*args, "--audio", str(wav), "-o", str(out), "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 25 and out.is_file()
    assert main(["avatar", "build", "MAYA", "--video", str(person["path"])]) == 2
    assert "name no characters" in capsys.readouterr().err
    assert main(["avatar", "build", "--video", str(person["path"]), "--face-box", "1,2,3"]) == 2
    assert "X,Y,W,H" in capsys.readouterr().err
