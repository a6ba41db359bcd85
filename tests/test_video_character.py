"""A video character: a photo folder holding the person's video model, whose mouth is the model's.

The model is a tiny shape-driven FaceGen made here (untrained: it paints a smudge where the mouth
is, which is all these tests need to see where and when it paints), saved with a video model's
metadata; the person is the drawn face of test_avatar_video, written as a short video. The
folder is made by the same code as ``talkie avatar character`` / ``build --video``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from test_avatar_video import draw_face, write_mp4

from avatar.custom import build_character
from avatar.neural.video_mouth import CardMouth, video_geometry
from avatar.photo.character import (
    MODEL_FILE,
    PhotoCharacter,
    load_photo_folder,
    mouth_key,
    mouth_weights,
    photo_spec,
)
from avatar.photo.image import PhotoError
from avatar.pose import Pose
from lipsync.neural.model import FaceGen, config_for
from lipsync.neural.shape_drive import ShapeCalibration
from lipsync.visemes import VISEME_INDEX
from stream.tools.avatar_build import save_half, video_build_config
from stream.tools.video_character import video_character

pytestmark = pytest.mark.usefixtures("torch_one_thread")

OPENINGS = (0.5, 0.3, 0.1, 0.0, 0.2, 0.6, 0.8, 0.4, 0.3, 0.1, 0.0, 0.5, 0.7, 0.2, 0.1, 0.3)


def tiny_video_model(path: Path) -> Path:
    """An untrained tiny shape-driven student with a video model's metadata (two clips); its
    zero-initialised layers are jittered so that the drive reaches the pixels."""
    torch.manual_seed(0)
    model = FaceGen(video_build_config("tiny"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cal = ShapeCalibration(closed_opening=0.005, open_opening=0.09, neutral_width=0.4).to_dict()
    extra = {
        "source": "video", "variant": "tiny", "calibration": cal, "calibrations": [cal, cal],
        "geometry": video_geometry(), "jaw_gain": 1.3, "reference_frames": [3, 10], "clips": [[0, 8], [8, 16]],
    }
    return save_half(path, model, kind="student", step=1, extra=extra)


@pytest.fixture(scope="module")
def person(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("video_character")
    model = tiny_video_model(folder / "vid.safetensors")
    video = write_mp4(folder / "vid.mp4", [draw_face(o, i) for i, o in enumerate(OPENINGS)], None, fps=25)
    summary = video_character(model, video=video, name="Vid", data_dir=folder / "data")
    assert (Path(summary["folder"]) / "matte.png").is_file()
    # The person segmenter sees no person in a drawn face: without its matte the card is all person.
    (Path(summary["folder"]) / "matte.png").unlink()
    return {"model": model, "video": video, "data": folder / "data", "folder": Path(summary["folder"])}


def aa(viseme: str = "aa") -> Pose:
    return Pose(mouth=((VISEME_INDEX[viseme], 1.0),))


def test_the_character_folder_holds_a_closed_frame_and_the_model(person: dict[str, Path]) -> None:
    folder = person["folder"]
    assert folder.parent == person["data"] / "photos" and folder.name.startswith("ph_")
    assert sorted(p.name for p in folder.iterdir()) == ["character.json", "landmarks.npy", MODEL_FILE, "photo.png"]
    assert (folder / MODEL_FILE).read_bytes() == person["model"].read_bytes()
    meta = json.loads((folder / "character.json").read_text())
    assert meta["kind"] == "photo" and meta["name"] == "VID"
    # The photo is one of the clips' reference frames (drawn shut), and says which clip it is.
    assert (meta["video_model"]["frame"], meta["video_model"]["clip"]) in {(3, 0), (10, 1)}
    photo = load_photo_folder(folder)
    assert photo.video is not None and photo.video.path == folder / MODEL_FILE
    assert photo.rgb.shape == (160, 160, 3)


def test_the_model_draws_the_mouth_inside_the_mouth_box(person: dict[str, Path]) -> None:
    character = build_character(photo_spec(person["folder"]), height_px=256)
    assert isinstance(character, PhotoCharacter) and isinstance(character.frames.mouth, CardMouth)
    frames = character.frames
    card, (x0, y0, x1, y1) = frames.puppet.rgb, frames.puppet.mouth_box
    (box, sil), *_ = frames.patches(mouth_key(Pose()), 2)
    assert box == (x0, y0, x1, y1) and np.array_equal(sil, card[y0:y1, x0:x1])  # silence: the card as it is
    open_key = mouth_key(aa())
    (_, opened), *_ = frames.patches(open_key, 2)
    changed = np.any(opened != card[y0:y1, x0:x1], axis=2)
    assert changed.sum() > 200 and not changed[~frames.moving].any()  # only the paste's ellipse
    assert frames.moving.any() and not frames.moving[0].any()  # the ellipse lies inside the box
    (_, rounded), *_ = frames.patches(mouth_key(aa("ou")), 2)
    assert np.abs(rounded.astype(int) - opened).max() > 0  # another mouth, another patch
    n = character.cache_info()["patches"]
    (_, again), *_ = frames.patches(open_key, 2)
    assert again is opened and character.cache_info()["patches"] == n  # a cache hit: no model run


def test_in_a_scene_only_its_mouth_moves(person: dict[str, Path]) -> None:
    from avatar.scene import Compositor, SceneLayout
    from avatar.spec import Cast

    specs = [Cast.builtin().resolve("MAYA"), photo_spec(person["folder"])]
    comp = Compositor(layout=SceneLayout.for_count(2, width_px=384, height_px=256), characters=specs, set_name="kitchen")
    rest = comp.compose([Pose(), Pose()])
    talking = comp.compose([Pose(), aa()])
    x0, y0, x1, y1 = comp.mouth_boxes()[1]
    diff = np.any(rest != talking, axis=2)
    assert diff[y0:y1, x0:x1].sum() > 50 and diff.sum() == diff[y0:y1, x0:x1].sum()


def test_a_pickled_character_draws_the_same_mouth(person: dict[str, Path]) -> None:
    """Live sessions get characters drawn ahead in another process, pickled: the copy reloads
    the model from the folder and draws the very same pixels."""
    character = build_character(photo_spec(person["folder"]), height_px=200)
    data = pickle.dumps(character)
    copy = pickle.loads(data)
    key = mouth_key(aa("oh"))
    assert np.array_equal(copy.frames.patches(key, 2)[0][1], character.frames.patches(key, 2)[0][1])
    assert len(data) < 4 * character.frames.puppet.rgb.nbytes + 2_000_000  # pixels, not the model


def test_a_scene_render_moves_its_mouth_during_its_line_only(person: dict[str, Path], speech: object, tmp_path: Path) -> None:
    from avatar.spec import Cast
    from lipsync.script import parse_script
    from stream.record.offline import RenderConfig, render_script

    cast = Cast.builtin()
    cast.add(photo_spec(person["folder"]))
    script = parse_script("VID: Where were you last night?\nMAYA: At the harbour, watching the boats.")
    config = RenderConfig(width_px=384, height_px=256, director=False)
    out = render_script(script, tmp_path / "scene.mp4", config=config, cast=cast, speech=speech)  # type: ignore[arg-type]
    mine, hers = out.events
    assert mine.speaker == "VID" and hers.speaker == "MAYA"
    with av.open(str(out.path)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(video=0)]
    from avatar.scene import Compositor, SceneLayout

    layout = SceneLayout.for_count(2, width_px=384, height_px=256)
    x0, y0, x1, y1 = Compositor(layout=layout, characters=[cast.resolve("VID"), cast.resolve("MAYA")]).mouth_boxes()[0]
    # The drawn lips (red) are there while the card's own mouth shows; the model paints over them.
    lips = np.array([((f[y0:y1, x0:x1, 0] - f[y0:y1, x0:x1, 1]) > 80).sum() for f in frames])
    before = lips[: mine.start_frame]
    during = lips[mine.start_frame + 2 : mine.end_sample // 1920 - 2]
    after = lips[hers.start_frame : hers.end_sample // 1920]
    assert before.min() > 100 and after.min() > 0.9 * np.median(before), (before, after)
    assert np.median(during) < 0.5 * np.median(before), during


def test_missing_or_bad_models_are_named(person: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(person["folder"], broken)
    (broken / MODEL_FILE).unlink()
    with pytest.raises(PhotoError, match=rf"{broken / MODEL_FILE} is missing") as err:
        photo_spec(broken)
    assert err.value.code == "bad_video_model"
    (broken / MODEL_FILE).write_bytes(person["model"].read_bytes()[:3000])
    with pytest.raises(PhotoError, match=rf"{broken / MODEL_FILE}: .*truncated or not a safetensors file"):
        load_photo_folder(broken)
    save_half(broken / MODEL_FILE, FaceGen(config_for("tiny")), kind="student", step=1, extra={"source": "rig"})
    with pytest.raises(PhotoError, match=rf"{broken / MODEL_FILE}: .*is not a shape-driven video model"):
        load_photo_folder(broken)
    meta = json.loads((broken / "character.json").read_text())
    meta["video_model"] = {"file": "../elsewhere.safetensors"}
    (broken / "character.json").write_text(json.dumps(meta))
    with pytest.raises(PhotoError, match=r"character.json: 'video_model' must be"):
        load_photo_folder(broken)
    with pytest.raises(PhotoError, match="cannot be read"):
        load_photo_folder(tmp_path / "nowhere")


def test_a_series_keeps_the_model_with_the_photo(person: dict[str, Path], tmp_path: Path) -> None:
    from stream.store import Store
    from stream.store.cast import keep_characters, series_cast
    from stream.store.photos import PhotoLibrary

    spec = photo_spec(person["folder"])
    store = Store.open(tmp_path / "data")
    try:
        series = store.catalog.create_series("S")
        keep_characters(store.catalog, series.id, [spec])  # from another data dir: copied in by id
        (kept,) = store.catalog.list_characters(series.id)
        again = series_cast(store.catalog, series.id).get("VID")
        assert again is not None and Path(again.art_dir).parent == (tmp_path / "data" / "photos").resolve()
        assert (Path(again.art_dir) / MODEL_FILE).read_bytes() == person["model"].read_bytes()
        assert kept.spec["photo"] == Path(again.art_dir).name == person["folder"].name  # the same id
        assert isinstance(build_character(again, height_px=160).frames.mouth, CardMouth)
        keep_characters(store.catalog, series.id, [again])  # the same person again: no cast_mismatch
    finally:
        store.close()
    # The same frame without the model is another character (another id).
    photo = load_photo_folder(person["folder"])
    plain = PhotoLibrary(tmp_path / "plain").add(photo.rgb, photo.landmarks, name="VID", voice=photo.voice, face=1, matte=photo.matte)
    assert plain != person["folder"].name


def test_the_int8_package_travels_with_the_model(person: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A package beside the model is copied into the folder; one that does not stand for these
    weights is refused by its record and the eager model runs (said in the log)."""
    import logging
    import shutil

    from accel.aot import artifact_path

    model = tmp_path / "m.safetensors"
    shutil.copyfile(person["model"], model)
    package = artifact_path(model, "int8")
    package.write_bytes(b"not really a package")
    Path(f"{package}.json").write_text(json.dumps({"format": "facegen-aot/1", "config": {}}))
    summary = video_character(model, video=person["video"], name="Vid", data_dir=tmp_path / "data")
    assert summary["int8_package"] and "mouth.int8.cpu.pt2.json" in summary["files"]
    with caplog.at_level(logging.INFO, logger="avatar.neural.video_mouth"):
        character = build_character(photo_spec(summary["folder"]), height_px=160)
    assert isinstance(character.frames.mouth, CardMouth) and isinstance(character.frames.mouth.runner, FaceGen)
    assert "the eager float model" in caplog.text


def test_cli_character_command(person: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stream.tools.cli import main

    args = ["avatar", "character", "--model", str(person["model"]), "--video", str(person["video"])]
    assert main([*args, "--name", "Vid", "--voice", "en-us+f2", "--data-dir", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["name"] == "VID" and Path(summary["folder"]).parent == tmp_path / "photos"
    assert photo_spec(summary["folder"]).voice.variant == "f2"
    wall = write_mp4(tmp_path / "wall.mp4", [np.full((160, 160, 3), 90, np.uint8)] * 16, None, fps=25)
    assert main(["avatar", "character", "--model", str(person["model"]), "--video", str(wall), "--data-dir", str(tmp_path)]) != 0
    assert "wall.mp4: no face found in the model's reference frames" in capsys.readouterr().err
    # A build checks its voice before it trains (not after half an hour).
    assert main(["avatar", "build", "--video", str(person["video"]), "--voice", "zz-qq", "-o", str(tmp_path / "m")]) != 0
    assert "'zz-qq' is not a language" in capsys.readouterr().err and not (tmp_path / "m").exists()


def _drawn_lips_px(frame: np.ndarray) -> int | None:
    """Pixels of the drawn face's red lips inside its card (the card's blue background is
    found by colour; nothing else on the green set is that blue); None when the card is not in
    the shot. The model paints over the lips while it draws the mouth."""
    f = frame.astype(np.int16)
    blue = np.all(np.abs(f - np.array([88, 114, 151])) < 14, axis=2)
    if blue.sum() < 1000:
        return None
    ys, xs = np.nonzero(blue)
    card = f[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return int(np.all(np.abs(card - np.array([191, 51, 64])) < 30, axis=2).sum())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_a_video_character_speaks_in_a_live_session(person: dict[str, Path], engine: object) -> None:
    from support import start_server

    from stream.live.config import ServerConfig
    from stream.tools.client import ScenePeer

    spec = photo_spec(person["folder"], name="VIDDY")
    engine.cast.add(spec)  # type: ignore[attr-defined]
    app, url, stop = await start_server(ServerConfig(data_dir=person["data"]), engine)
    try:
        peer = ScenePeer()
        response = await peer.connect(url, cast=["MAYA", "VIDDY"], set="#00ff00")
        assert response.status_code == 200, response.text
        assert (await peer.event("hello"))["cast"] == ["MAYA", "VIDDY"]
        await peer.wait_for(lambda: len(peer.video) >= 10)
        peer.send({"type": "say", "speaker": "VIDDY", "text": "Where were you last night? I waited for hours."})
        started = await peer.event("line_started")
        ended = await peer.event("line_ended")
        v0 = peer.video[0][0]
        await peer.wait_for(lambda: (peer.video[-1][0] - v0) / 90000 > ended["media_time_s"] + 1.0)
        import httpx

        async with httpx.AsyncClient(base_url=url) as http:
            mouths = (await http.get("/api/health")).json()["video_mouths"]
        await peer.close()
    finally:
        await stop()
    # Its new mouths went through the server's scheduler (one model, batched with any other session's).
    assert mouths["models"] == 1 and mouths["painted"] > 10 and mouths["batches"] > 0, mouths
    t = np.array([(p - v0) / 90000 for p, _ in peer.video])
    lips = np.array([np.nan if (n := _drawn_lips_px(f)) is None else n for _, f in peer.video], np.float64)
    during = (t > started["media_time_s"] + 0.2) & (t < ended["media_time_s"] - 0.2) & np.isfinite(lips)
    after = (t > ended["media_time_s"] + 0.4) & np.isfinite(lips)
    shut = float(np.median(lips[after]))
    assert shut > 100 and during.sum() > 20, (lips[after], during.sum())
    assert (lips[during] < 0.4 * shut).mean() > 0.5, (lips[during], shut)  # painted over while it speaks


@pytest.mark.slow
def test_the_int8_package_draws_the_mouth_as_the_float_model_does(person: dict[str, Path], tmp_path: Path) -> None:
    """`talkie avatar compile` on the model (~15 s for the tiny one), then the character: its
    folder holds the package, the card's mouth runs it, and its pixels are the float model's
    (within int8's error; the tiny model's layers are too thin to be made int8, so this checks
    the package's path; on the GRID model the two differ by 0.05/255 over the painted pixels)."""
    import shutil

    from accel.aot import AotFaceGen
    from stream.tools.avatar_animate import compile_model

    model = tmp_path / "m.safetensors"
    shutil.copyfile(person["model"], model)
    compile_model(model, precision="int8")
    summary = video_character(model, video=person["video"], name="Vid", data_dir=tmp_path / "data")
    assert summary["int8_package"]
    (Path(summary["folder"]) / "matte.png").unlink()  # as in the fixture: a drawn face has no person matte
    character = build_character(photo_spec(summary["folder"]), height_px=256)
    mouth = character.frames.mouth
    assert isinstance(mouth, CardMouth) and isinstance(mouth.runner, AotFaceGen)
    eager = CardMouth(mouth.model_path, card=mouth.card, face=character.frames.puppet.face, box=mouth.box, clip=mouth.clip, int8=False)
    assert isinstance(eager.runner, FaceGen)
    key = mouth_key(aa())
    fast, slow = mouth.patch(mouth_weights(key)), eager.patch(mouth_weights(key))
    x0, y0, x1, y1 = mouth.box
    moving = character.frames.moving
    painted = np.abs(fast.astype(int) - character.frames.puppet.rgb[y0:y1, x0:x1])[moving].mean()
    err = np.abs(fast.astype(int) - slow)[moving].mean()
    assert err < 0.2 * painted, (err, painted)


def test_the_servers_batches_paint_the_mouth_the_card_would(person: dict[str, Path]) -> None:
    """``VideoMouths``: a card attached to the server's scheduler gets the very mouth it paints
    alone, and cards of several sessions asking at once share a forward pass."""
    import threading

    from avatar.neural.video_mouth import VideoMouths, VideoMouthsConfig
    from avatar.photo.character import attach_video_mouths

    service = VideoMouths(VideoMouthsConfig(device="cpu", gather_ms=30.0, wait_ms=2000.0))
    try:
        alone = build_character(photo_spec(person["folder"]), height_px=220)
        cards = [build_character(photo_spec(person["folder"]), height_px=220) for _ in range(4)]
        for i, card in enumerate(cards):
            attach_video_mouths(card, service, owner=f"session{i}")
        for card in cards:
            card.frames.mouth._service_key.result(timeout=60)  # loaded on the service's thread
        assert service.stats()["models"] == 1  # one model for every card of the same person
        key = mouth_key(aa("E"))
        expected = alone.frames.patches(key, 2)[0][1]
        got: dict[int, np.ndarray] = {}
        start = threading.Barrier(len(cards))

        def ask(i: int) -> None:
            start.wait()
            got[i] = cards[i].frames.patches(key, 2)[0][1]

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(cards))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for patch in got.values():
            assert np.abs(patch.astype(int) - expected).max() <= 1  # the same noise, the same mouth
        stats = service.stats()
        assert stats["painted"] == len(cards) and stats["painted_alone"] == 0
        assert stats["max_batch_seen"] >= 2 and stats["batches"] < len(cards)
        copy = pickle.loads(pickle.dumps(cards[0]))  # a pickled drawing is detached until attached again
        assert getattr(copy.frames.mouth, "_service", None) is None
    finally:
        service.close()
