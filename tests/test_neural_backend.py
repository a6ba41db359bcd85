"""The neural backend: rig data adapter, the shipped cast model, neural rendering, loading errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from accel.sampler import sample
from avatar.director import SceneDirector
from avatar.neural.renderer import NeuralFaceRenderer
from avatar.neural.rig_clips import regions_for, rig_clip, rig_clips
from avatar.scene import Compositor, SceneLayout
from avatar.spec import Cast
from lipsync.neural.checkpoint import CheckpointError
from lipsync.neural.data import viseme_windows
from lipsync.neural.regions import crop_regions
from lipsync.neural.weights import default_weights_dir, load_cast_models, load_student
from lipsync.script import parse_script
from lipsync.visemes import JAW_OPEN
from stream.record.offline import RenderConfig, perform, plan_scenes, render_frames
from stream.record.stages import NullTimer

SHIPPED = default_weights_dir() / "cast.safetensors"  # one model for every built-in character
MAYA = Cast.builtin().get("MAYA")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def maya_clip():
    (clip,) = rig_clips(MAYA, crop_px=32, n_clips=1)
    return clip


def test_rig_adapter_shapes_and_frame_alignment(maya_clip) -> None:
    d, mouth = maya_clip.dataset, maya_clip.mouth
    n = mouth.shape[0]
    assert n >= 25 and len(d) == n
    assert d.frames.shape == (n, 32, 32, 3) and d.references.shape == (1, 32, 32, 3)
    assert d.masks.shape == (1, 32, 32) and 0 < d.masks.sum() < 32 * 32
    assert d.drive.shape == (n, 15, 5)
    # The drive window of frame k is centred on frame k's viseme weights.
    np.testing.assert_allclose(d.drive[:, :, 2].numpy(), mouth)
    # Row k is the rig's frame k: redraw frame 9 and cut the same region.
    comp = Compositor(
        layout=SceneLayout.for_count(1, width_px=256, height_px=256), characters=[MAYA]
    )
    director = SceneDirector.for_compositor(comp)
    k = 9
    poses = director.poses(k, mouths=[mouth[k]], speaking=[bool(mouth[k, 0] < 0.99)])
    crop = crop_regions(comp.compose(poses), regions_for(comp, crop_px=32), crop_px=32)
    again = ((crop[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(again, d.frames[k])
    # Open-jaw frames differ more from the closed-mouth reference inside the mask.
    fb = d.batch(range(n))
    change = ((fb.target - fb.reference).abs().mean(1, keepdim=True) * fb.mask).sum((1, 2, 3))
    jaw = mouth @ np.asarray(JAW_OPEN, np.float32)
    assert np.corrcoef(change.numpy(), jaw)[0, 1] > 0.5


def test_shipped_checkpoint_loads_and_generates_a_crop(maya_clip) -> None:
    assert SHIPPED.stat().st_size < 10_000_000
    model = load_student(SHIPPED)
    c = model.cfg.crop_px
    (clip,) = [rig_clip(MAYA, maya_clip.mouth, crop_px=c)]
    fb = clip.dataset.batch([5, 6])
    out = sample(model, fb.cond, steps=1, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, c, c) and torch.isfinite(out).all()
    outside = fb.mask.expand_as(out) == 0
    # Away from the feathered mouth region the crop is the known frame.
    far = torch.nn.functional.max_pool2d(fb.mask, 9, stride=1, padding=4).expand_as(out) == 0
    assert torch.equal(out[far], fb.masked[far])
    assert outside.any()
    # Inside the mouth the generated pixels resemble the rig's (not noise, not grey).
    err = (out - fb.target).abs()[fb.mask.expand_as(out) > 0].mean()
    assert err < 0.25


def _scene(backend: str):
    # One static shot for both: the director's cuts are the rig backend's alone.
    config = RenderConfig(width_px=320, height_px=256, backend=backend, director=False)
    script = parse_script("MAYA: Where were you all night?\nBOB: At the harbour.")
    (plan,) = plan_scenes(script, Cast.builtin(), config)
    return config, plan


def test_neural_render_keeps_rig_pixels_outside_mouths(caplog) -> None:
    from lipsync.speech import SpeechEngine

    config, plan = _scene("neural")
    timeline = perform(plan, SpeechEngine(), config=config, timer=NullTimer())
    with caplog.at_level("INFO", logger="avatar.neural.renderer"):
        neural = render_frames(timeline, plan, config=config, timer=NullTimer())
    assert any(
        "BOB" in r.getMessage() and "falls back to the rig" in r.getMessage()
        for r in caplog.records
    )
    rig = render_frames(timeline, plan, config=_scene("rig")[0], timer=NullTimer())
    comp = Compositor(
        layout=SceneLayout.for_count(2, width_px=320, height_px=256), characters=plan.cast
    )
    region = regions_for(comp, crop_px=load_student(SHIPPED).cfg.crop_px)[0]  # MAYA's slot
    inside = np.zeros((256, 320), bool)
    inside[region.y0 : region.y0 + region.side, region.x0 : region.x0 + region.side] = True
    changed = 0
    for k in range(0, min(50, timeline.n_frames)):
        a, b = rig(k, None), neural(k, None)
        assert np.array_equal(a[~inside], b[~inside]), f"frame {k} changed outside MAYA's face"
        changed += int((a != b).any())
    assert changed > 0


def test_neural_mouth_follows_speech() -> None:
    """Frame k's painted mouth opens with frame k's speech energy, like the rig's own mouth."""
    from lipsync.speech import SpeechEngine
    from stream.tools.bench_model import frame_energy

    specs = [MAYA, Cast.builtin().get("LEO")]
    comp = Compositor(
        layout=SceneLayout.for_count(2, width_px=320, height_px=256), characters=specs
    )
    director = SceneDirector.for_compositor(comp)
    utt = SpeechEngine().say("Where were you all night? I waited for hours.", MAYA.voice)
    mouth, n = utt.mouth, utt.mouth.shape[0]
    drive = viseme_windows(mouth)
    rest = np.zeros(15, np.float32)
    rest[0] = 1.0
    painter = NeuralFaceRenderer(compositor=comp, models=load_cast_models(["MAYA"]))
    r = regions_for(comp, crop_px=load_student(SHIPPED).cfg.crop_px)[0]
    face = (slice(r.y0, r.y0 + r.side), slice(r.x0, r.x0 + r.side))
    opening = []
    for k in range(n):
        speaking = [bool(mouth[k, 0] < 0.99), False]
        frame = comp.compose(director.poses(k, mouths=[mouth[k], rest], speaking=speaking))
        closed = comp.compose(director.poses(k, mouths=[rest, rest], speaking=speaking))
        painted = painter.paint(frame, [drive[k], drive[k]])
        opening.append(np.abs(painted[face].astype(np.int16) - closed[face]).mean())
    energy = frame_energy(utt.pcm, n)
    assert np.corrcoef(opening, energy)[0, 1] > 0.3
    loud = np.asarray(opening)[energy > np.median(energy)]
    quiet = np.asarray(opening)[energy <= np.median(energy)]
    assert loud.mean() > quiet.mean() + 0.5  # quiet frames keep ~2.5 of blur from the 64 px model


def test_missing_or_broken_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_student(tmp_path / "cast.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_cast_models(["MAYA"], weights_dir=tmp_path / "nowhere")
    broken = tmp_path / "cast.safetensors"
    broken.write_bytes(SHIPPED.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_cast_models(["MAYA"], weights_dir=tmp_path)
    with pytest.raises(ValueError, match="backend"):
        RenderConfig(backend="dream")


class _TrackInput:
    """A live input replaying an utterance: frame k's audio and viseme weights."""

    def __init__(self, utt) -> None:
        self.utt = utt

    def frame(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        pcm = np.zeros(1920, np.int16)
        chunk = self.utt.pcm[1920 * k : 1920 * (k + 1)]
        pcm[: chunk.shape[0]] = chunk
        return pcm, self.utt.mouth[k] if k < self.utt.mouth.shape[0] else None


def test_live_scene_neural_backend_paints_only_the_modelled_mouth() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from lipsync.speech import SpeechEngine
    from stream.live.config import LiveConfig
    from stream.live.faces import FaceService
    from stream.live.scene import LiveScene

    speech = SpeechEngine()
    utt = speech.say("Hello, where were you?", MAYA.voice)
    models = load_cast_models(["MAYA", "LEO"])
    assert set(models) == {"MAYA", "LEO"} and models["MAYA"] is models["LEO"]
    faces = FaceService(models)
    with ThreadPoolExecutor(max_workers=1) as pool:
        scenes = [
            LiveScene(
                cast=Cast.builtin(),
                speech=speech,
                synth_executor=pool,
                config=LiveConfig(width_px=320, height_px=256, backend=backend),
                faces=faces,
                director=False,  # one static shot for both: cuts are the rig backend's alone
            )
            for backend in ("rig", "neural")  # neural: the shipped models, through the shared service
        ]
        for s in scenes:
            s.bind_input("MAYA", _TrackInput(utt))
        view = scenes[1].view
        inside = np.zeros((256, 320), bool)  # both faces: LEO's closed mouth is repainted too
        for region in regions_for(view.compositor, crop_px=models["MAYA"].cfg.crop_px):
            inside[region.y0 : region.y0 + region.side, region.x0 : region.x0 + region.side] = True
        diffs = []
        for k in range(30):
            rig, neural = (s.compose(s.produce(k)) for s in scenes)
            assert np.array_equal(rig[~inside], neural[~inside])
            diffs.append(neural[inside])
    faces.close()
    change = [np.abs(d.astype(np.int16) - diffs[0]).mean() for d in diffs]
    assert max(change) > 0.5


def test_avatar_build_writes_a_loadable_student_and_resumes(tmp_path: Path) -> None:
    from stream.tools.avatar_build import BuildConfig, build_character

    config = BuildConfig(
        variant="tiny", n_clips=3, held_out_clips=1, teacher_steps=3, student_steps=2, n_pairs=8
    )
    first = build_character(MAYA, out_dir=tmp_path, config=config, progress=False)
    model = load_student(first["path"])
    assert model.cfg.crop_px == 32 and first["held_out_frames"] > 0
    again = build_character(
        MAYA,
        out_dir=tmp_path,
        config=dataclasses.replace(config, teacher_steps=5),
        progress=False,
    )
    assert again["teacher_resumed_from"] == 3 and again["teacher_steps"] == 5
    # The build measured its mouths against the rig's and recorded it: a 3-step model fails.
    from lipsync.neural.checkpoint import read_extra
    from lipsync.neural.weights import NotOfferedError, offered_models

    check = read_extra(again["path"])["cast_check"]
    assert check["characters"][0]["name"] == "MAYA" and check["all_pass"] is False
    assert check["characters"][0]["psnr_mouth_db"] < 35
    with pytest.raises(NotOfferedError, match="not offered for the built-in"):
        offered_models(tmp_path)


def test_neural_backend_is_not_offered_for_the_cast(capsys, tmp_path: Path) -> None:
    from stream.tools.cli import main

    script = tmp_path / "s.fountain"
    script.write_text("MAYA\nHello there.\n")
    assert main(["render", str(script), "-o", str(tmp_path / "o.mp4"), "--backend", "neural"]) == 2
    err = capsys.readouterr().err
    assert "--backend neural is not offered for the built-in (rig) characters" in err
    assert "cast.safetensors: no rig comparison recorded" in err
    assert not (tmp_path / "o.mp4").exists()


def test_one_model_serves_a_cast_and_a_named_file_wins(tmp_path: Path) -> None:
    from lipsync.neural.weights import load_weights_dir, weights_index
    from stream.tools.avatar_build import BuildConfig, build_model

    config = BuildConfig(
        variant="tiny", n_clips=2, held_out_clips=1, teacher_steps=2, student_steps=1, n_pairs=4
    )
    leo = Cast.builtin().get("LEO")
    summary = build_model([MAYA, leo], name="duo", out_dir=tmp_path, config=config, progress=False)
    assert summary["characters"] == ["MAYA", "LEO"]
    assert weights_index(tmp_path) == {"MAYA": tmp_path / "duo.safetensors", "LEO": tmp_path / "duo.safetensors"}
    models = load_weights_dir(tmp_path)
    assert models["MAYA"] is models["LEO"]  # loaded once: both batch through one model
    build_model([leo], name="leo", out_dir=tmp_path, config=config, progress=False)
    index = weights_index(tmp_path)
    assert index["LEO"] == tmp_path / "leo.safetensors" and index["MAYA"] == tmp_path / "duo.safetensors"


def test_neural_paste_never_repaints_the_set_behind_a_face() -> None:
    """Pixels of a face region that show the empty set keep the set exactly (no pale patch)."""
    kai = Cast.builtin().get("KAI")
    comp = Compositor(
        layout=SceneLayout.for_count(2, width_px=640, height_px=360), characters=[MAYA, kai]
    )
    painter = NeuralFaceRenderer(compositor=comp, models=load_cast_models(["MAYA", "KAI"]))
    director = SceneDirector.for_compositor(comp)
    open_mouth = np.zeros(15, np.float32)
    open_mouth[1] = 1.0  # "aa": wide open, so the mouth box reaches below the chin
    drive = np.repeat(open_mouth[:, None], 5, axis=1)
    frame = comp.compose(director.poses(0, mouths=[open_mouth, open_mouth], speaking=[True, True]))
    on_set = np.abs(frame.astype(np.int16) - comp.background()).max(axis=2) <= 2
    # Set pixels 2 px or more from any character pixel (the paste's edge is resampled).
    near = torch.nn.functional.max_pool2d(torch.from_numpy(~on_set).float()[None, None], 5, 1, 2)
    set_pixels = near[0, 0].numpy() == 0
    painted = painter.paint(frame.copy(), [drive, drive])
    changed = np.any(painted != frame, axis=2)
    assert changed.sum() > 100  # the mouths were repainted
    shown = 0
    for task in painter.jobs(frame, [drive, drive]):
        r = task.face.region
        box = (slice(r.y0, r.y0 + r.side), slice(r.x0, r.x0 + r.side))
        shown += int(set_pixels[box].sum())
        assert not (changed[box] & set_pixels[box]).any()
    assert shown > 50  # KAI's region does show the set (beside his chin and neck)


def test_avatar_build_cli_names_what_is_wrong(capsys) -> None:
    from stream.tools.cli import main

    assert main(["avatar", "build", "-q"]) == 2
    assert "name the characters to build" in capsys.readouterr().err
    assert main(["avatar", "build", "MAYA", "NOBODY", "-q"]) == 2
    err = capsys.readouterr().err
    assert "'NOBODY' is not a built-in character" in err and "MAYA" in err
    assert main(["avatar", "build", "MAYA", "--video", "x.mp4", "-q"]) == 2
    assert "name no characters" in capsys.readouterr().err


def test_bench_model_reports_every_variant_and_draws_its_plot(tmp_path: Path) -> None:
    from PIL import Image

    from stream.tools.avatar_build import BuildConfig, build_model
    from stream.tools.bench_model import bench_shipped_model

    config = BuildConfig(
        variant="tiny", n_clips=2, held_out_clips=1, teacher_steps=2, student_steps=1, n_pairs=4,
        save_teacher=True,
    )
    build_model([MAYA, Cast.builtin().get("LEO")], name="duo", out_dir=tmp_path, config=config, progress=False)
    report = bench_shipped_model(weights_dir=tmp_path, plot_path=tmp_path / "plot.png", n_eval=8)
    assert report["checkpoint"]["characters"] == ["MAYA", "LEO"] and "note" not in report
    rows = {(r["model"], r["precision"], r["steps"], r["batch"]) for r in report["speed"]}
    for steps in (1, 2, 4):
        for precision in ("float", "int8"):
            assert {("student", precision, steps, 1), ("student", precision, steps, 2)} <= rows
    assert ("teacher", "float", 32, 1) in rows
    assert all(0 < q["psnr_mouth_db"] < 100 and 0 < q["ssim_mouth"] <= 1 for q in report["quality"][1:])
    assert -1 <= report["speech_sync"]["corr_student_opening_vs_energy"] <= 1
    with Image.open(report["plot"]) as plot:
        assert plot.size == (900, 600)
