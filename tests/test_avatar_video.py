"""A user's own video as a mouth model's source: reading, the landmark pass, build, animate.

No real talking-person video ships with the repo, so the tests draw one: a cartoon face whose
mouth opens with the RMS energy of real espeak-ng speech, at 30 fps (so reading must resample
to 25 fps by timestamp), with the source frame number written in binary along the top edge.
mediapipe's face mesh follows the drawn face (its inner-lip opening tracks the drawn one), so
the build and animate run the same landmark pass as on a real person.
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

from accel.sampler import sample
from avatar.neural.video_track import openings, track_video
from lipsync.neural.checkpoint import CheckpointError, load_checkpoint, read_extra
from lipsync.neural.data import FaceCond
from lipsync.neural.model import FaceGen, config_for
from lipsync.neural.regions import crop_regions, paint_mask, region_masks
from lipsync.neural.shape_drive import ShapeCalibration, shape_windows
from lipsync.neural.video_io import VideoSourceError, iter_frames, open_source, read_audio
from lipsync.neural.video_shapes import TrackError, frame_regions, plan_layout
from lipsync.neural.weights import load_student
from lipsync.speech import SpeechEngine
from lipsync.voices import VoiceSpec
from stream.media.mp4 import Mp4Writer, VideoEncoding
from stream.tools.avatar_animate import (
    MouthPainter,
    animate_video,
    follow_video,
    load_video_model,
    pingpong_order,
    pingpong_runs,
)
from stream.tools.avatar_build import BuildConfig, build_from_video, save_half, video_data
from stream.tools.cli import main

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SIZE = 160
SRC_FPS = 30

class _Box:
    x, y, w, h = 44, 30, 72, 72


FACE = _Box  # where the face is drawn
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
        teacher_steps=300,
        student_steps=30,
        n_pairs=32,
        teacher_sample_steps=4,
        batch_size=16,
        save_teacher=True,
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the function-scoped torch_one_thread
    try:
        return build_from_video(
            person["path"], name="person", out_dir=person["folder"] / "models", config=config, progress=False
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



# --- the landmark pass -----------------------------------------------------------------------------


def drawn_openings(person, src) -> np.ndarray:
    """The opening each 25 fps frame was drawn with (0..1), from its source frame number."""
    per = 48_000 // SRC_FPS
    n = person["pcm"].shape[0] // per
    x = person["pcm"][: n * per].astype(np.float32).reshape(n, per) / 32768.0
    rms = np.sqrt((x**2).mean(axis=1))
    drawn = np.clip(rms / (0.5 * rms.max()), 0.0, 1.0)
    return drawn[[read_code(f) for f in iter_frames(src)]]


def test_landmarks_follow_the_drawn_mouth(person) -> None:
    src = open_source(person["path"])
    track = track_video(iter_frames(src), source="person.mp4")
    drawn = drawn_openings(person, src)
    assert track.found.all() and np.corrcoef(track.shapes[:, 0], drawn)[0, 1] > 0.9
    layout = plan_layout(track)
    assert layout.clips[0][0] == 0 and layout.clips[-1][1] == src.n_frames
    spans = layout.held_spans()
    assert spans and all(a > 0 and b < src.n_frames for a, b in spans)  # the middle, not the ends
    # Each clip's reference is its most closed training frame: drawn (nearly) shut.
    assert all(drawn[k] < 0.1 for k in layout.reference_frames)
    regions = frame_regions(track, layout, crop_px=32, width_px=SIZE, height_px=SIZE)
    # The region spans nose to below the chin: the drawn mouth sits in its upper middle.
    r = regions[0]
    mouth_y = FACE.y + 0.78 * FACE.h
    assert r.y0 < mouth_y < r.y0 + 0.6 * r.side and abs(r.x0 + r.side / 2 - (FACE.x + FACE.w / 2)) < 4


# --- build and animate ---------------------------------------------------------------------------


def test_tiny_build_writes_a_shape_driven_student(built, person) -> None:
    path = Path(built["path"])
    assert path.is_file() and built["teacher_loss_last50"] < built["teacher_loss_first50"]
    model = load_student(path)
    assert model.cfg.drive_kind == "shape" and (model.cfg.drive_channels, model.cfg.drive_frames) == (2, 5)
    extra = read_extra(path)
    assert extra["source"] == "video" and extra["frame_size"] == [SIZE, SIZE]
    assert extra["video"] == str(person["path"].resolve()) and extra["held_out"]
    cal = ShapeCalibration.from_dict(extra["calibration"])
    assert cal.open_opening > cal.closed_opening + 0.05  # the drawn mouth opens wide
    # The sound -> shape gains fitted on its training frames, kept in the file and reported.
    assert 0.5 <= extra["jaw_gain"] <= 3.0 and 0.0 <= extra["width_gain"] <= 1.5
    assert built["width_gain"] == round(extra["width_gain"], 3)
    assert built["faces_found"] == open_source(person["path"]).n_frames
    load_video_model(path)
    # The half-finished build folder only resumes on the same video and variant.
    with pytest.raises(ValueError, match=r"\.person-build holds a build of .*person.mp4.* another --name"):
        build_from_video(
            person["path"], name="person", out_dir=path.parent,
            config=BuildConfig(variant="rig64", teacher_steps=1, student_steps=1), progress=False,
        )


def dark_area(crops: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Pixels of the drawn mouth's dark inside, within the mask, per crop."""
    return ((crops.mean(dim=1, keepdim=True) < -0.5) & (mask > 0.5)).float().sum(dim=(1, 2, 3)).numpy()


def test_video_build_follows_the_drive_not_the_source(built, person) -> None:
    """The build's own teacher, on frames of the video, told to draw the opposite of each frame's
    mouth: what it draws follows the drive, against the face around the mouth."""
    teacher = load_checkpoint(Path(built["path"]).with_suffix(".teacher.safetensors")).model.float()
    data = video_data(person["path"], crop_px=teacher.cfg.crop_px)
    track, layout = data.track, data.layout
    ks = np.arange(0, track.n_frames, 3)
    frames = list(iter_frames(data.source))
    crops = torch.cat([crop_regions(frames[k], [data.regions[k]], crop_px=teacher.cfg.crop_px) for k in ks])
    cal = layout.calibrations[0]
    src = track.shapes[ks, 0]
    drv = np.clip(cal.open_opening + cal.closed_opening - src, cal.closed_opening, cal.open_opening)
    shapes = track.shapes.copy()
    shapes[:, 0] = np.clip(cal.open_opening + cal.closed_opening - shapes[:, 0], cal.closed_opening, None)
    mask = torch.from_numpy(data.regions[0].mask)[None, None].expand(len(ks), 1, -1, -1)
    refs = data.train.references.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    cond = FaceCond(
        reference=refs[torch.from_numpy(layout.clip_ids()[ks])],
        masked=crops * (1 - mask),
        mask=mask,
        drive=torch.from_numpy(shape_windows(shapes)[ks]),
    )
    noise = torch.randn(crops.shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = sample(teacher, cond, steps=8, noise=noise)
    area = dark_area(out, mask)
    assert np.corrcoef(area, drv)[0, 1] > 0.6
    assert np.corrcoef(area, src)[0, 1] < -0.4  # it follows the drive, against the source


def _paint_area(region) -> np.ndarray:
    """Frame pixels (H, W) bool that the paste may change."""
    soft = paint_mask(region_masks([region]))
    m = F.interpolate(soft, size=(region.side, region.side), mode="bilinear", align_corners=False)
    area = np.zeros((SIZE, SIZE), bool)
    area[region.y0 : region.y0 + region.side, region.x0 : region.x0 + region.side] = m[0, 0].numpy() > 0
    return area


def test_painter_changes_only_the_paint_mask(built, person) -> None:
    model, extra = load_video_model(built["path"])
    src = open_source(person["path"])
    followed = follow_video(src, crop_px=model.cfg.crop_px, fallback=ShapeCalibration.from_dict(extra["calibration"]))
    frames = [f.copy() for f in iter_frames(src, start=40, stop=44)]
    before = [f.copy() for f in frames]
    painter = MouthPainter(model=model, references=followed.references, mask=followed.regions[0].mask)
    regions = followed.regions[40:44]
    painter.paint(frames, regions, shape_windows(followed.track.shapes)[40:44], [0] * 4)
    for new, old, r in zip(frames, before, regions, strict=True):
        area = _paint_area(r)
        assert np.array_equal(new[~area], old[~area])
        assert np.abs(new[area].astype(int) - old[area]).mean() > 1.0


def test_pingpong_runs() -> None:
    order = [
        k
        for a, b, back in pingpong_runs(4, 11)
        for k in (range(b - 1, a - 1, -1) if back else range(a, b))
    ]
    assert order == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2]
    assert pingpong_order(4, 11).tolist() == order
    assert [k for a, b, _ in pingpong_runs(1, 3) for k in range(a, b)] == [0, 0, 0]


def test_animate_says_the_new_audio_and_keeps_the_source_outside_the_mouth(
    built, person, speech, tmp_path
) -> None:
    # A 1.6 s source (the person's first 48 frames) and 3+ s of new audio: the source ping-pongs.
    first = [f for _, f in zip(range(48), iter_frames(open_source(person["path"])), strict=False)]
    short = write_mp4(tmp_path / "short.mp4", first, None, fps=25)
    new = speech.say("Fetch the map, we are going on a voyage.", VoiceSpec(variant="f4")).pcm
    new = np.concatenate([np.zeros(24_000, np.int16), new, np.zeros(48_000, np.int16)])  # pauses
    wav = write_wav_16k(tmp_path / "new.wav", new)
    n_new = read_audio(wav).shape[0]
    out = animate_video(built["path"], short, wav, tmp_path / "out.mp4", progress=False)
    assert out.n_frames == -(-n_new // 1920) and out.n_samples == n_new and out.source_frames == 48

    with av.open(str(out.path)) as c:
        got = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        a = c.streams.audio[0]
        audio_s = float(a.duration * a.time_base)
    assert len(got) == out.n_frames and abs(audio_s - n_new / 48_000) < 0.04

    src = open_source(short, require_audio=False, min_seconds=0)
    source_frames = list(iter_frames(src))
    order = pingpong_order(48, out.n_frames)
    assert [read_code(f) for f in got] == [read_code(source_frames[k]) for k in order]
    model, extra = load_video_model(built["path"])
    followed = follow_video(src, crop_px=model.cfg.crop_px, fallback=ShapeCalibration.from_dict(extra["calibration"]))
    with Mp4Writer(tmp_path / "plain.mp4", encoding=VideoEncoding(width_px=SIZE, height_px=SIZE, crf=20)) as w:
        for k in order:
            w.write_video(source_frames[k])
    with av.open(str(tmp_path / "plain.mp4")) as c:
        plain = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    for j, frame in enumerate(got):
        area = _paint_area(followed.regions[order[j]])
        # H.264 spreads a change a few pixels: compare outside the paint area grown by 4 px.
        grown = F.max_pool2d(torch.from_numpy(area[None, None].astype(np.float32)), 9, 1, 4)[0, 0].numpy() > 0
        want = source_frames[order[j]].astype(int)
        diff = np.abs(frame.astype(int) - want).mean(axis=2)  # (H, W)
        tolerance = np.abs(plain[j].astype(int) - want).mean(axis=2)
        assert diff[~grown].mean() < tolerance[~grown].mean() + 0.2, j
    # The mouth says the new audio: shut in its pauses (the first 0.5 s, the last second), open
    # while it speaks, whatever the source frame's mouth did.
    opening = openings(got)
    quiet = np.r_[np.arange(2, 10), np.arange(out.n_frames - 20, out.n_frames - 2)]
    talking = np.arange(20, out.n_frames - 30)
    assert np.nanmean(opening[quiet]) < 0.6 * np.nanmean(opening[talking])


def test_animate_refuses_foreign_models_and_sources(built, person, tmp_path) -> None:
    rig = save_half(
        tmp_path / "maya.safetensors",
        FaceGen(config_for("tiny")),
        kind="student",
        step=1,
        extra={"source": "rig", "characters": ["MAYA"]},
    )
    wav = write_wav_16k(tmp_path / "new.wav", person["pcm"][:96_000])
    with pytest.raises(CheckpointError, match="maya.safetensors is not a shape-driven video model"):
        animate_video(rig, person["path"], wav, tmp_path / "out.mp4", progress=False)
    wall = write_mp4(tmp_path / "wall.mp4", [np.full((160, 192, 3), 90, np.uint8)] * 30, None)
    with pytest.raises(TrackError, match=r"wall.mp4: a face was found in 0 of 25 frames"):
        animate_video(built["path"], wall, wav, tmp_path / "out.mp4", progress=False)
    with pytest.raises(VideoSourceError, match="nothing.wav does not exist"):
        animate_video(built["path"], person["path"], tmp_path / "nothing.wav", tmp_path / "o.mp4", progress=False)
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
    assert main(["avatar", "build", "--video", str(person["path"]), "--face-box", "1,2,3,4"]) == 2
    assert "--face-box is not needed" in capsys.readouterr().err


def test_missing_corrupt_or_stale_video_models_are_named(built, tmp_path) -> None:
    with pytest.raises(CheckpointError, match="gone.safetensors does not exist"):
        load_video_model(tmp_path / "gone.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(Path(built["path"]).read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cut.safetensors .* truncated or not a safetensors file"):
        load_video_model(cut)
    ckpt = load_checkpoint(built["path"])
    stale = save_half(
        tmp_path / "stale.safetensors", ckpt.model, kind="student", step=1,
        extra={**ckpt.extra, "geometry": {**ckpt.extra["geometry"], "region_face_frac": 0.5}},
    )
    with pytest.raises(CheckpointError, match="stale.safetensors was built with another face geometry"):
        load_video_model(stale)
    bare = save_half(tmp_path / "bare.safetensors", ckpt.model, kind="student", step=1, extra={"source": "video"})
    with pytest.raises(CheckpointError, match=r"bare.safetensors is a video model without \['calibration', 'geometry'\]"):
        load_video_model(bare)
