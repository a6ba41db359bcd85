"""User character art: a folder of layered PNGs renders like a rig character, and bad folders
get errors that name what is missing."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw
from support import decode, start_server

from avatar.colors import CAVITY_RGB
from avatar.custom import CharacterArtError, SpriteCharacter, art_spec, load_art
from avatar.measure import mouth_opening
from avatar.pose import Pose
from avatar.scene import Compositor, SceneLayout
from avatar.spec import Cast
from lipsync.visemes import VISEME_INDEX
from stream.live.config import ServerConfig
from stream.live.engine import Engine
from stream.store import Store
from stream.store.cast import series_cast
from stream.tools.client import ScenePeer

W, H = 120, 160
SKIN = (240, 200, 160, 255)


def _layer() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    im = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    return im, ImageDraw.Draw(im)


def make_folder(tmp: Path, *, mouths: dict[str, str] | None = None, skip: str | None = None) -> Path:
    """A tiny PNGtuber: a face, blinking eyes, and mouths painted in the rig's cavity colour."""
    folder = tmp / "pip"
    folder.mkdir()
    base, d = _layer()
    d.ellipse((10, 10, 110, 150), fill=SKIN)
    base.save(folder / "base.png")
    eyes, d = _layer()
    for x in (35, 75):
        d.ellipse((x, 50, x + 14, 64), fill=(255, 255, 255, 255))
        d.ellipse((x + 4, 54, x + 10, 60), fill=(30, 30, 60, 255))
    eyes.save(folder / "eyes_open.png")
    shut, d = _layer()
    for x in (35, 75):
        d.line((x, 58, x + 14, 58), fill=(90, 60, 40, 255), width=2)
    shut.save(folder / "eyes_closed.png")
    closed, d = _layer()
    d.line((45, 112, 75, 112), fill=(150, 70, 70, 255), width=3)
    closed.save(folder / "mouth_closed.png")
    for name, box in (("mouth_open.png", (44, 100, 76, 128)), ("mouth_e.png", (38, 106, 82, 118)), ("mouth_o.png", (52, 102, 68, 124))):
        im, d = _layer()
        d.ellipse(box, fill=(*CAVITY_RGB, 255))
        im.save(folder / name)
    layers = {
        "base": "base.png", "eyes_open": "eyes_open.png", "eyes_closed": "eyes_closed.png",
        "mouths": mouths or {"closed": "mouth_closed.png", "open": "mouth_open.png", "E": "mouth_e.png", "o": "mouth_o.png"},
    }
    if skip:
        layers.pop(skip)
    manifest = {"name": "Pip", "voice": {"language": "en-us", "variant": "f2", "pitch": 65}, "layers": layers}
    (folder / "character.json").write_text(json.dumps(manifest))
    return folder


def render(comp: Compositor, viseme: str, *, eyes_open: float = 1.0, dx: float = 0.0) -> np.ndarray:
    pose = Pose(mouth=((VISEME_INDEX[viseme], 1.0),), eyes_open=eyes_open, head_dx_px=dx)
    return comp.compose([pose])


def test_a_png_folder_renders_with_mouths_and_blinks(tmp_path: Path) -> None:
    spec = art_spec(make_folder(tmp_path))
    assert spec.name == "PIP" and spec.voice.variant == "f2"
    comp = Compositor(layout=SceneLayout.for_count(1, width_px=256, height_px=256), characters=[spec], set_name="#00ff00")
    assert isinstance(comp.rigs[0], SpriteCharacter)
    box = comp.mouth_boxes()[0]
    opening = {v: mouth_opening(render(comp, v), box) for v in ("sil", "PP", "aa", "E", "oh", "ou", "SS")}
    assert opening["sil"] == 0 and opening["PP"] == 0  # the closed mouth
    assert opening["aa"] > opening["E"] > 0  # own images: open is taller than E
    assert opening["oh"] > 0 and opening["ou"] > 0  # "o" serves oh; ou takes the nearest shape
    assert opening["SS"] < opening["aa"]
    # Eyes blink: the eye region changes, the mouth region does not.
    a, b = render(comp, "sil"), render(comp, "sil", eyes_open=0.0)
    assert np.abs(a.astype(int) - b.astype(int)).sum() > 0
    x0, y0, x1, y1 = box
    assert np.array_equal(a[y0:y1, x0:x1], b[y0:y1, x0:x1])
    # The chroma background is untouched around the figure; the figure sways as a whole.
    assert tuple(a[2, 2]) == (0, 255, 0)
    moved = render(comp, "aa", dx=3.0)
    assert mouth_opening(moved, box) == pytest.approx(opening["aa"], abs=0.02)


def test_two_images_are_enough(tmp_path: Path) -> None:
    art = load_art(make_folder(tmp_path, mouths={"closed": "mouth_closed.png", "open": "mouth_open.png"}))
    closed, open_ = 0, 1
    assert art.viseme_mouth[VISEME_INDEX["sil"]] == closed and art.viseme_mouth[VISEME_INDEX["PP"]] == closed
    assert art.viseme_mouth[VISEME_INDEX["aa"]] == open_ and art.viseme_mouth[VISEME_INDEX["oh"]] == open_
    assert art.viseme_mouth[VISEME_INDEX["SS"]] == closed  # barely open shapes stay shut


def test_custom_character_plays_in_a_cast(tmp_path: Path) -> None:
    cast = Cast.builtin()
    cast.add(art_spec(make_folder(tmp_path)))
    specs = [cast.resolve("MAYA"), cast.resolve("pip")]
    comp = Compositor(layout=SceneLayout.for_count(2), characters=specs)
    frame = comp.compose([Pose(), Pose(mouth=((VISEME_INDEX["aa"], 1.0),))])
    boxes = comp.mouth_boxes()
    assert mouth_opening(frame, boxes[0]) == 0 and mouth_opening(frame, boxes[1]) > 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("no_manifest", "character.json"),
        ("no_base_file", "'base' file 'base.png' is missing"),
        ("no_eyes_closed", "'eyes_closed' is missing"),
        ("no_open_mouth", "needs an open mouth"),
        ("no_closed_mouth", "needs a closed mouth"),
        ("bad_size", "'open' is 60x80"),
        ("bad_png", "'mouths.open' file 'mouth_open.png' is not a readable PNG"),
        ("unknown_mouth", "unknown mouth 'yawn'"),
    ],
)
def test_bad_folders_name_what_is_wrong(tmp_path: Path, change: str, expected: str) -> None:
    mouths = {"closed": "mouth_closed.png", "open": "mouth_open.png"}
    if change == "no_open_mouth":
        mouths = {"closed": "mouth_closed.png"}
    if change == "no_closed_mouth":
        mouths = {"open": "mouth_open.png"}
    if change == "unknown_mouth":
        mouths = {**mouths, "yawn": "mouth_o.png"}
    folder = make_folder(tmp_path, mouths=mouths, skip="eyes_closed" if change == "no_eyes_closed" else None)
    if change == "no_manifest":
        (folder / "character.json").unlink()
    if change == "no_base_file":
        (folder / "base.png").unlink()
    if change == "bad_size":
        Image.new("RGBA", (60, 80)).save(folder / "mouth_open.png")
    if change == "bad_png":
        (folder / "mouth_open.png").write_bytes(b"not a png")
    with pytest.raises(CharacterArtError, match=expected.replace("(", r"\(")):
        load_art(folder)


# -- PNG art in a series: kept in the store, played live, recorded, exported ------------------------


def _art_files(folder: Path) -> dict[str, str]:
    return {p.name: base64.b64encode(p.read_bytes()).decode() for p in sorted(folder.iterdir())}


def _skin_pixels(frame: np.ndarray) -> int:
    """Pixels of PIP's face colour (its base PNG's skin), as a decoded frame shows them."""
    return int((np.abs(frame.astype(int) - np.array(SKIN[:3])).max(axis=-1) < 18).sum())


@pytest.mark.slow
async def test_a_series_with_png_art_records_a_live_take_and_exports_it(engine: Engine, tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    app, url, stop = await start_server(ServerConfig(data_dir=tmp_path / "data"), engine)
    peer = ScenePeer()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            series = (await http.post("/api/series", json={"name": "Art"})).json()
            art_url = f"/api/series/{series['id']}/characters/art"
            bad = await http.post(art_url, json={"files": {"../base.png": "AAAA"}})
            assert bad.status_code == 400 and "plain file name" in bad.json()["message"]
            broken = {k: v for k, v in _art_files(folder).items() if k != "base.png"}
            bad = await http.post(art_url, json={"files": broken})
            assert bad.status_code == 400 and "'base' file 'base.png' is missing" in bad.json()["message"]
            assert not list((tmp_path / "data" / "art").glob("art_*"))  # nothing half-kept
            pip = (await http.post(art_url, json={"files": _art_files(folder)})).json()
            assert pip["name"] == "PIP" and pip["spec"]["art"].startswith("art_")
            kept = tmp_path / "data" / "art" / pip["spec"]["art"]
            assert (kept / "character.json").is_file() and (kept / "base.png").read_bytes() == (folder / "base.png").read_bytes()
            assert (await http.post(f"/api/series/{series['id']}/characters", json={"name": "MAYA"})).status_code == 201
            preview = await http.get(f"/api/characters/{pip['id']}/preview.png")
            assert preview.status_code == 200
            assert _skin_pixels(np.asarray(Image.open(io.BytesIO(preview.content)).convert("RGB"))) > 500
            episode = (await http.post(f"/api/series/{series['id']}/episodes", json={"name": "Pilot"})).json()
            scene = (await http.post(f"/api/episodes/{episode['id']}/scenes", json={"name": "Garden"})).json()

            # Opening the scene starts a session with the series' cast: PIP (PNG art) and MAYA.
            answer = await peer.connect(url, scene_id=scene["id"])
            assert answer.status_code == 200 and answer.json()["series_id"] == series["id"]
            hello = await peer.event("hello", timeout=30)
            assert hello["cast"] == ["PIP", "MAYA"]
            peer.send({"type": "say", "speaker": "PIP", "text": "Hello, I am drawn from pictures."})
            await peer.event("line_started", timeout=60)
            peer.send({"type": "record", "action": "start", "scene_id": scene["id"]})
            started = await peer.event("take_started", timeout=20)
            await peer.event("line_ended", timeout=60)
            peer.send({"type": "record", "action": "stop"})
            stopped = await peer.event("take_stopped", timeout=20)
            assert stopped["status"] == "complete" and stopped["frames"] > 0

            take = (await http.get(f"/api/takes/{started['take_id']}")).json()
            assert take["cast"] == ["PIP", "MAYA"]
            # The line already playing when the take started is in it, from the take's start.
            assert [(ln["speaker"], ln["start_sample"]) for ln in take["lines"]] == [("PIP", 0)]
            chars = (await http.get(f"/api/series/{series['id']}/characters")).json()["characters"]
            assert [c["name"] for c in chars] == ["PIP", "MAYA"]  # no second PIP, no cast_mismatch

            # Played back in the page, and exported with the episode.
            media = await http.get(f"/api/takes/{take['id']}/media")
            assert media.status_code == 200 and media.headers["content-type"] == "video/mp4"
            (tmp_path / "take.mp4").write_bytes(media.content)
            job = (await http.post(f"/api/episodes/{episode['id']}/export")).json()
            for _ in range(600):
                job = (await http.get(f"/api/exports/{job['id']}")).json()
                if job["status"] != "running":
                    break
                await asyncio.sleep(0.1)
            assert job["status"] == "done", job
            mp4 = await http.get(f"/api/exports/{job['id']}/files/mp4")
            (tmp_path / "episode.mp4").write_bytes(mp4.content)
    finally:
        await peer.close()
        await stop()
    for name in ("take.mp4", "episode.mp4"):
        frames, _, audio = decode(tmp_path / name)
        assert len(frames) == take["frames"] and abs(len(audio) - take["samples"]) < 2048  # AAC's whole frames
        assert _skin_pixels(frames[len(frames) // 2]) > 2000, f"PIP's art is not in {name}"
    # A new process (here: a new store) draws the series' PIP from the kept art, as `talkie render` does.
    store = Store.open(tmp_path / "data")
    try:
        spec = series_cast(store.catalog, series["id"]).resolve("PIP")
        assert spec.art_dir == str(kept.resolve())
    finally:
        store.close()
