"""Real people from one photo: landmarks on real faces, the puppet's mouth and eyes, a photo
character in scenes, a live session and a series, and every bad photo named clearly.

Uses ../shared/testdata (a portrait and GRID clips); each test skips with a message naming the
missing file when it is absent. Pictures to look at go to test-artifacts/photo/.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatar.photo.character import PhotoCharacter, PhotoFrames, locate_face, mouth_key, photo_spec
from avatar.photo.image import PhotoError, decode_photo, read_photo
from avatar.photo.landmarks import FaceTracker, find_faces
from avatar.photo.puppet import PhotoPuppet
from avatar.pose import Pose
from lipsync.visemes import VISEME_INDEX

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
PORTRAIT = TESTDATA / "portrait_astronaut_512.png"
GRID = ("grid_bbaf2n.mpg", "grid_lbbc2a.mpg", "grid_swiz3n.mpg")
ARTEFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "photo"


def need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path} is absent (real-world test material, see ../shared/testdata/SOURCES.md)")
    return path


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return read_photo(need(PORTRAIT))


@pytest.fixture(scope="module")
def puppet(portrait: np.ndarray) -> PhotoPuppet:
    return PhotoPuppet(portrait, locate_face(portrait, face=None, label="portrait"))


def first_frame(name: str) -> np.ndarray:
    from lipsync.neural.video_io import iter_frames, open_source

    source = open_source(need(TESTDATA / name), require_audio=False, min_seconds=0.1)
    return next(iter_frames(source)).copy()


def pose(viseme: str, *, eyes_open: float = 1.0) -> Pose:
    return Pose(mouth=((VISEME_INDEX[viseme], 1.0),), eyes_open=eyes_open)


def test_landmarks_on_the_portrait_and_the_grid_faces(portrait: np.ndarray) -> None:
    faces = find_faces(portrait)
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box()
    assert 150 < x0 < x1 < 330 and 60 < y0 < y1 < 260  # the astronaut's face, mid-upper frame
    assert face.points.shape == (478, 2) and 80 < face.width_px < 110
    for name in GRID:
        frame = first_frame(name)
        (grid_face,) = find_faces(frame)
        gx0, gy0, gx1, gy1 = grid_face.box()
        assert 100 < (gx0 + gx1) / 2 < 260 and 60 < grid_face.width_px < 160, name
        nose, chin = grid_face.points[1], grid_face.points[152]
        assert chin[1] > nose[1] + 20  # upright: the chin well below the nose


def track_gap(frames: list[np.ndarray]) -> np.ndarray:
    with FaceTracker() as tracker:
        faces = [tracker.track(f) for f in frames]
    assert all(f is not None for f in faces)
    return np.array([f.inner_lip_gap_px() / f.height_px for f in faces])


@pytest.mark.parametrize("source", ["portrait", *GRID])
def test_the_puppet_opens_and_closes_with_a_viseme_track(source: str, portrait: np.ndarray) -> None:
    rgb = portrait if source == "portrait" else first_frame(source)
    puppet = PhotoPuppet(rgb, locate_face(rgb, face=None, label=source))
    frames = PhotoFrames(puppet)
    track = ["sil"] * 4 + ["PP", "aa", "aa", "DD", "E", "PP", "oh", "ou", "ih", "aa"] + ["sil"] * 4
    shots = [frames.frame(pose(v)) for v in track]
    gap = track_gap(shots)
    silent = np.array([v == "sil" for v in track])
    wide = np.array([v in ("aa", "E", "oh") for v in track])
    pressed = np.array([v == "PP" for v in track])
    # Silence is the photo's own mouth (lips parted in the photo stay parted), pixel for pixel.
    assert all(np.array_equal(shot, rgb) for shot, quiet in zip(shots, silent, strict=True) if quiet)
    assert gap[pressed].max() < 0.02, (source, gap.round(3))  # p/b/m shut the lips (tracker noise ~0.01)
    rest = float(np.median(gap[silent]))
    assert gap[wide].min() > max(0.035, rest + 0.01), (source, gap.round(3))  # open for the open vowels
    assert gap[VISEME_INDEX["aa"] == np.array([VISEME_INDEX[v] for v in track])].mean() > gap[wide].mean() * 0.95
    assert np.array_equal(shots[0], shots[-1])  # silence draws the same picture every time
    assert silent.sum() == 8
    # To look at: the track's frames, and its mouths zoomed 3x.
    from stream.tools.face_pictures import face_boxes

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    stem = source.removesuffix(".mpg")
    for kind, (x0, y0, x1, y1), zoom in zip(("strip", "mouth"), face_boxes(puppet), (1, 3), strict=True):
        row = np.concatenate([s[max(0, y0) : y1, max(0, x0) : x1] for s in shots[3:15]], axis=1)
        im = Image.fromarray(row)
        im.resize((im.width * zoom, im.height * zoom), Image.Resampling.LANCZOS).save(ARTEFACTS / f"{stem}_track_{kind}.png")


def test_pixels_outside_the_face_region_are_unchanged(puppet: PhotoPuppet, portrait: np.ndarray) -> None:
    frames = PhotoFrames(puppet)
    shot = frames.frame(pose("aa", eyes_open=0.0))
    changed = np.any(shot != portrait, axis=2)
    allowed = np.zeros_like(changed)
    for x0, y0, x1, y1 in (puppet.mouth_box, *puppet.eye_boxes):
        allowed[y0:y1, x0:x1] = True
        # no seam: each box's own outer rows and columns are the photo's
        ring = np.ones((y1 - y0, x1 - x0), bool)
        ring[2:-2, 2:-2] = False
        assert not changed[y0:y1, x0:x1][ring].any()
    assert changed.any() and not (changed & ~allowed).any()
    mx0, my0, mx1, my1 = puppet.mouth_box
    assert (mx1 - mx0) * (my1 - my0) < 0.1 * portrait.shape[0] * portrait.shape[1]


def test_blinks_close_the_eyes_and_head_motion_is_smooth(puppet: PhotoPuppet, portrait: np.ndarray) -> None:
    frames = PhotoFrames(puppet)
    shut = frames.frame(pose("sil", eyes_open=0.0))
    with FaceTracker() as tracker:
        face_open, face_shut = tracker.track(portrait), tracker.track(shut)
    assert face_open is not None and face_shut is not None

    def eye_gap(points: np.ndarray) -> float:
        return float(np.linalg.norm(points[159] - points[145]) + np.linalg.norm(points[386] - points[374]))

    assert eye_gap(face_shut.points) < 0.5 * eye_gap(face_open.points)
    still, moved = frames.frame(Pose()), frames.frame(Pose(head_dx_px=3.0, head_dy_px=-2.0))
    x0, y0, x1, y1 = puppet.mouth_box  # the face moves by whole pixels, exactly
    assert np.array_equal(moved[y0 - 2 : y1 - 2, x0 + 3 : x1 + 3], still[y0:y1, x0:x1])
    # the background well away from the head, and the shoulders, stay where they are
    for part in (np.s_[:, :60], np.s_[:, -60:], np.s_[-40:]):
        assert np.array_equal(moved[part], still[part])
    assert not np.array_equal(moved[:80], still[:80])  # the hair goes with the head


def test_a_photo_character_stands_in_a_scene_beside_the_cartoon_cast(tmp_path: Path, portrait: np.ndarray) -> None:
    from avatar.scene import Compositor, SceneLayout
    from avatar.spec import Cast
    from stream.store.photos import PhotoLibrary

    library = PhotoLibrary(tmp_path)
    ident = library.add(portrait, locate_face(portrait, face=None, label="p"), name="Eileen", voice=Cast.builtin().resolve("MAYA").voice, face=1)
    spec = photo_spec(library.folder(ident))
    assert spec.name == "EILEEN" and ident.startswith("ph_")
    cast = Cast.builtin()
    specs = [cast.resolve("MAYA"), spec, cast.resolve("LEO")]
    comp = Compositor(layout=SceneLayout.for_count(3, width_px=768, height_px=432), characters=specs, set_name="kitchen")
    rig = comp.rigs[1]
    assert isinstance(rig, PhotoCharacter)
    rest = comp.compose([Pose(), Pose(), Pose()])
    slot = comp.layout.slots[1]  # cut out by its matte: the set shows around the person
    assert np.array_equal(rest[slot.y_px + 2, slot.x_px + 2], comp.background()[slot.y_px + 2, slot.x_px + 2])
    talking = comp.compose([Pose(), pose("aa"), Pose()])
    x0, y0, x1, y1 = comp.mouth_boxes()[1]
    diff = np.any(rest != talking, axis=2)
    assert diff[y0:y1, x0:x1].sum() > 30 and diff.sum() == diff[y0:y1, x0:x1].sum()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([rest, talking], axis=0)).save(ARTEFACTS / "scene.png")
    assert mouth_key(Pose(mouth=((0, 0.5), (10, 0.5)))) == (0, 10, 8)  # 1/16 steps


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_photos_are_named(tmp_path: Path, portrait: np.ndarray) -> None:
    with pytest.raises(PhotoError, match="is not an image"):
        decode_photo(b"hello, not a picture")
    with pytest.raises(PhotoError, match="could not be decoded|not an image"):
        decode_photo(_png(portrait)[:400])
    with pytest.raises(PhotoError, match="does not exist"):
        read_photo(tmp_path / "missing.jpg")
    blank = np.full((300, 300, 3), 200, np.uint8)
    with pytest.raises(PhotoError, match="no face found") as err:
        locate_face(blank, face=None, label="blank.png")
    assert err.value.code == "no_face"
    head = portrait[40:300, 100:360]  # close enough for the short-range detector to see two
    pair = np.concatenate([head, head[:, ::-1]], axis=1)
    with pytest.raises(PhotoError, match=r"2 faces .*--face N") as err:
        locate_face(pair, face=None, label="pair.png")
    assert err.value.code == "several_faces"
    right = locate_face(pair, face=2, label="pair.png")
    assert right.centre()[0] > head.shape[1]
    with pytest.raises(PhotoError, match="--face 3 but the photo has 2"):
        locate_face(pair, face=3, label="pair.png")
    small = np.asarray(Image.fromarray(portrait).resize((220, 220)), np.uint8)
    with pytest.raises(PhotoError, match="the face is 39 px wide; at least 48") as err:
        locate_face(small, face=None, label="small.png")
    assert err.value.code == "face_too_small"


def test_build_command_and_its_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stream.tools.cli import main

    assert main(["avatar", "build", "--photo", str(need(PORTRAIT)), "--name", "Eileen", "--voice", "en-us+f2", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert '"photo_id": "ph_' in out and '"faces_found": 1' in out
    (folder,) = (tmp_path / "photos").iterdir()
    assert photo_spec(folder).voice.variant == "f2"
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    assert main(["avatar", "build", "--photo", str(text), "--name", "X", "--data-dir", str(tmp_path)]) != 0
    assert "is not an image" in capsys.readouterr().err


@pytest.mark.slow
def test_a_series_keeps_its_photo_character_across_episodes(tmp_path: Path, portrait: np.ndarray, speech: object) -> None:
    from lipsync.script import parse_script
    from stream.record.offline import RenderConfig
    from stream.record.script_takes import record_script
    from stream.store import Store
    from stream.store.cast import keep_characters, series_cast, spec_to_json
    from stream.store.photos import PhotoLibrary

    store = Store.open(tmp_path / "data")
    try:
        library = PhotoLibrary(tmp_path / "data")
        ident = library.add(portrait, locate_face(portrait, face=None, label="p"), name="EILEEN", voice=photo_spec_voice(), face=1)
        series = store.catalog.create_series("Orbit")
        spec = photo_spec(library.folder(ident))
        store.catalog.add_character(series.id, spec.name, spec_to_json(spec))
        stored = store.catalog.list_characters(series.id)[0].spec
        assert stored["photo"] == ident and "art_dir" not in stored and "/" not in str(stored)
        config = RenderConfig(width_px=256, height_px=256)
        looks = []
        for n in (1, 2):
            episode = store.catalog.create_episode(series.id, f"Episode {n}")
            script = parse_script("EILEEN: Hello there.\nMAYA: Hi.")
            takes = record_script(store, script, episode_id=episode.id, config=config, speech=speech)
            assert len(takes) == 1 and takes[0].frames > 10
            cast = series_cast(store.catalog, series.id)
            looks.append(cast.get("EILEEN"))
            keep_characters(store.catalog, series.id, [looks[-1]])  # the same person: no cast_mismatch
        assert looks[0] == looks[1] and looks[0].art_dir == str(library.folder(ident).resolve())
        assert [c.name for c in store.catalog.list_characters(series.id)] == ["EILEEN", "MAYA"]
    finally:
        store.close()


def photo_spec_voice():  # type: ignore[no-untyped-def]
    from lipsync.voices import VoiceSpec

    return VoiceSpec(variant="f2")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_upload_a_photo_and_it_talks_in_a_live_session(tmp_path: Path, engine: object) -> None:
    import httpx
    from support import start_server

    from stream.live.config import ServerConfig
    from stream.tools.client import ScenePeer

    need(PORTRAIT)
    app, url, stop = await start_server(ServerConfig(data_dir=tmp_path), engine)
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            bad = await http.post("/api/photos?name=NOBODY", content=b"not an image at all")
            assert bad.status_code == 400 and bad.json()["error"] == "not_an_image"
            noname = await http.post("/api/photos", content=PORTRAIT.read_bytes())
            assert noname.status_code == 400 and "name" in noname.json()["message"]
            up = await http.post("/api/photos?name=Astro&variant=f2", content=PORTRAIT.read_bytes())
            assert up.status_code == 201, up.text
            ident = up.json()["photo_id"]
            assert (tmp_path / "photos" / ident / "photo.png").is_file() and up.json()["character"]["photo"] == ident
        peer = ScenePeer()
        response = await peer.connect(url, cast=["MAYA", "ASTRO"])
        assert response.status_code == 200, response.text
        hello = await peer.event("hello")
        assert hello["cast"] == ["MAYA", "ASTRO"]
        await peer.wait_for(lambda: len(peer.video) >= 10)
        peer.send({"type": "say", "speaker": "ASTRO", "text": "Hello from orbit, we are all fine up here today."})
        started = await peer.event("line_started")
        ended = await peer.event("line_ended")
        v0 = peer.video[0][0]
        await peer.wait_for(lambda: (peer.video[-1][0] - v0) / 90000 > ended["media_time_s"] + 0.8)
        # A live input (here a file; a mic or WHIP bind the same way) drives the photo too.
        speech_file = TESTDATA / "en_jfk_16k.wav"
        n_line = len(peer.video)
        if speech_file.is_file():
            async with httpx.AsyncClient(base_url=url) as http:
                bound = await http.post(
                    f"/sessions/{peer.session_id}/inputs?character=ASTRO", content=speech_file.read_bytes()[:200_000],
                    headers=peer.credential,
                )
            assert bound.status_code in (200, 201), bound.text
            await peer.wait_for(lambda: len(peer.video) > n_line + 100, timeout=30)
        await peer.close()
    finally:
        await stop()
    # The photo's mouth, read by the landmark model from the received (VP8) frames.
    from avatar.scene import Compositor, SceneLayout

    specs = [engine.cast.resolve("MAYA"), engine.cast.resolve("ASTRO")]  # type: ignore[attr-defined]
    layout = SceneLayout.for_count(2)
    slot = layout.slots[1]
    t = np.array([(p - v0) / 90000 for p, _ in peer.video])
    frames = [f[slot.y_px : slot.y_px + slot.height_px, slot.x_px : slot.x_px + slot.width_px].copy() for _, f in peer.video]
    gap = track_gap(frames)
    during = (t > started["media_time_s"] + 0.1) & (t < ended["media_time_s"] - 0.1)
    quiet = (t < started["media_time_s"] - 0.1) | (t > ended["media_time_s"] + 0.3)
    line = np.arange(len(t)) < n_line
    # The astronaut's lips are parted in the photo: quiet, they stay as the photo has them;
    # speaking, they open further and shut on p/b/m.
    rest = float(np.median(gap[quiet & line]))
    assert np.abs(gap[quiet & line] - rest).max() < 0.012, gap[quiet & line].round(3)
    assert (np.abs(gap[during] - rest) > 0.015).mean() > 0.3, (rest, gap[during].round(3))
    if n_line < len(t):  # the file's speech moves the mouth too
        assert (np.abs(gap[~line] - rest) > 0.015).mean() > 0.2, (rest, gap[~line].round(3))
    assert isinstance(Compositor(layout=layout, characters=specs).rigs[1], PhotoCharacter)


def test_a_photo_folder_from_elsewhere_is_kept_by_id(tmp_path: Path, portrait: np.ndarray) -> None:
    from dataclasses import replace

    from avatar.photo.character import write_photo_folder
    from lipsync.voices import VoiceSpec
    from stream.store import Store
    from stream.store.cast import keep_characters, series_cast

    outside = write_photo_folder(tmp_path / "me", portrait, locate_face(portrait, face=None, label="p"), name="Me", voice=VoiceSpec(), face=1)
    spec = replace(photo_spec(outside), name="ME")
    store = Store.open(tmp_path / "data")
    try:
        series = store.catalog.create_series("S")
        keep_characters(store.catalog, series.id, [spec])
        (kept,) = store.catalog.list_characters(series.id)
        assert kept.spec["photo"].startswith("ph_")
        again = series_cast(store.catalog, series.id).get("ME")
        assert again is not None and Path(again.art_dir).parent == (tmp_path / "data" / "photos").resolve()
        keep_characters(store.catalog, series.id, [spec])  # the same person again: no cast_mismatch
    finally:
        store.close()


def test_animate_a_photo_with_the_face_drive(tmp_path: Path, speech: object) -> None:
    """``avatar animate --photo``: the face drive opens the lips while the voice speaks, wide for
    open vowels, and leaves the photo's own mouth pixels in the silence around it."""
    import av

    from lipsync.audio import to_int16
    from lipsync.audio_mouth import jaw_of
    from lipsync.lip_drive import LipDrive, lip_mouths
    from lipsync.voices import VoiceSpec
    from stream.tools.avatar_photo import PhotoAnimator, animate_photo

    voice = speech.synthesize("Father, are you calm?", VoiceSpec(variant="f2")).pcm  # type: ignore[attr-defined]
    pcm = np.concatenate([np.zeros(24_000, np.int16), voice, np.zeros(24_000, np.int16)])
    wav = tmp_path / "line.wav"
    with av.open(str(wav), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=48_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(to_int16(pcm).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48_000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    summary = animate_photo(need(PORTRAIT), wav, tmp_path / "out.mp4")
    assert summary["frames"] == -(-pcm.shape[0] // 1920) and 0 < summary["speaking_frames"] < summary["frames"]
    drive = LipDrive.load()
    mouths = lip_mouths(pcm, drive)
    assert all(w is None for w in mouths[:8]) and all(w is None for w in mouths[-4:])
    animator = PhotoAnimator(read_photo(need(PORTRAIT)), motion=False)
    rest = animator.frame(0, None)
    x0, y0, x1, y1 = animator.frames.puppet.mouth_box
    widest = max((w for w in mouths if w is not None), key=jaw_of)
    assert jaw_of(widest) > 0.5
    assert np.array_equal(animator.frame(1, None), rest)  # silence: the photo's own mouth
    assert np.abs(animator.frame(2, widest)[y0:y1, x0:x1].astype(int) - rest[y0:y1, x0:x1]).max() > 60
