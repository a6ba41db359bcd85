"""What the studio page needs beyond the store's REST API: take playback, previews, scripts
checked line by line, PNG-art characters uploaded into a series, voices changed, and the series'
cast for a session that opens a scene. The handlers are routed (behind the token) and described
in the schema by ``stream.web.api.ENDPOINTS``.

- ``GET /api/takes/{id}/media``: the take as an MP4 (H.264 + AAC), made on first request from
  its segments into ``previews/<take id>.mp4`` and kept (a finished take never changes).
- ``GET /api/characters/{id}/preview.png`` / ``GET /api/sets/{id}/preview.png``: a still of the
  series' character on a plain set, or of the set itself.
- ``POST /api/script/check`` ``{"text"}``: the script's lines with their speakers and source
  lines, or ``bad_script`` (400) whose message starts ``line N:`` when the parser knows the line.
- ``POST /api/series/{id}/characters/art`` ``{"name"?, "files": {"character.json": BASE64, ...}}``:
  a folder of layered PNGs (``avatar.custom``) kept in the data directory (``stream.store.art``)
  and added to the series, so every session and render of the series draws it.
- ``PATCH /api/characters/{id}/voice`` ``{"variant"?, "pitch"?, "rate_wpm"?, "language"?, "backend"?,
  "voice_id"?, "speed"?}`` (``"backend": "kokoro"`` with a ``voice_id`` such as ``"af_heart"``).
- ``PUT /api/characters/{id}/cast`` ``{"cast": "a white man, 40; hair_style=bald voice.variant=m2"}``:
  the character recast from a cast file's line (look and voice, as ``talkie render --cast``);
  a PNG-art or photo character keeps its pictures and takes the line's voice.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from avatar.casting import CastFileError, parse_cast, pinned_spec
from avatar.pose import Pose
from avatar.scene import Compositor, SceneLayout
from avatar.sets import render_set
from avatar.spec import Cast
from lipsync.script import ScriptError, parse_script
from lipsync.timeline import LineEvent
from stream.export.jobs import ExportConfig, export_timeline
from stream.export.stitch import Clip, Timeline
from stream.store import Store
from stream.store.art import MAX_TOTAL_BYTES, ArtShelf
from stream.store.cast import merged_voice, series_cast, spec_from_json, spec_to_json
from stream.store.catalog import check_name
from stream.store.errors import BadInputError, ConflictError, NotFoundError
from stream.store.photos import PhotoLibrary
from stream.web.errors import read_json

PREVIEW_PX = 256
MAX_SCRIPT_BYTES = 256 * 1024
MAX_SCENE_CAST = 4
PLAYBACK = ExportConfig(preset="ultrafast", crf=23)  # watched once in the page: fast to make


@dataclass(frozen=True, slots=True)
class ScenePlay:
    """What a session that opens a scene plays: the series' cast, who is on screen, the set."""

    series_id: str
    cast: Cast
    names: list[str]
    set_name: str | None


def scene_play(store: Store, scene_id: str, *, default_names: list[str]) -> ScenePlay:
    """The series' cast (its kept characters, PNG art and photos included) and the scene's set
    (blocking: run in a worker). On screen: the series' first four characters, else the default."""
    catalog = store.catalog
    scene = catalog.get_scene(scene_id)
    series_id = catalog.scene_series_id(scene_id)
    cast = series_cast(catalog, series_id)
    names = [c.name for c in catalog.list_characters(series_id)][:MAX_SCENE_CAST] or default_names
    set_name = catalog.get_set(scene.set_id).backdrop if scene.set_id else None
    return ScenePlay(series_id, cast, names, set_name)


# -- take playback ------------------------------------------------------------------------------


def take_timeline(store: Store, take_id: str) -> Timeline:
    """One take alone on a timeline (``ConflictError`` while it records or when it is empty)."""
    take = store.takes.get(take_id)
    if take.status == "recording":
        raise ConflictError("not_ready", f"take {take_id} is still recording; stop it first")
    if take.frames <= 0:
        raise ConflictError("nothing_to_export", f"take {take_id} holds no frames")
    scene = store.catalog.get_scene(take.scene_id)
    events = tuple(
        LineEvent(i, ln.speaker, ln.text, ln.start_sample, ln.end_sample or take.samples)
        for i, ln in enumerate(store.takes.lines(take.id))
    )
    return Timeline(
        f"take {take.name!r}", (Clip(scene, take, 0, 0),), take.width_px, take.height_px, events, (events,), (),
    )


def playback_file(store: Store, take_id: str) -> Path:
    """The take's playback MP4, made once (blocking: run in a worker)."""
    timeline = take_timeline(store, take_id)
    folder = store.media.data_dir / "previews"
    mp4 = folder / f"{timeline.clips[0].take.id}.mp4"
    if mp4.is_file():
        return mp4
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / f".{take_id}.{os.getpid()}.mp4"
    result = export_timeline(store, timeline, work, config=PLAYBACK)
    for companion in (result.srt, result.vtt, result.otio):
        companion.unlink(missing_ok=True)
    os.replace(work, mp4)
    _sweep_previews(store, folder)
    return mp4


def _sweep_previews(store: Store, folder: Path) -> None:
    """Remove the playback files of takes that were deleted since."""
    for path in folder.glob("tk_*.mp4"):
        try:
            store.takes.get(path.stem)
        except NotFoundError:
            path.unlink(missing_ok=True)


async def take_media(request: Request) -> Response:
    store: Store = request.app.state.store
    take_id = str(request.path_params["take_id"])
    locks: dict[str, asyncio.Lock] = request.app.state.playback_locks
    async with locks.setdefault(take_id, asyncio.Lock()):  # one encoder per take, the rest wait for it
        path = await asyncio.to_thread(playback_file, store, take_id)
    locks.pop(take_id, None)
    return FileResponse(path, media_type="video/mp4", filename=f"{take_id}.mp4")


# -- previews ----------------------------------------------------------------------------------


def _png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb[..., :3])).save(out, format="PNG")
    return out.getvalue()


def character_png(store: Store, character_id: str) -> bytes:
    character = store.catalog.get_character(character_id)
    data_dir = store.media.data_dir
    spec = spec_from_json(
        character.name, character.spec, photos=PhotoLibrary(data_dir), art=ArtShelf.for_data_dir(data_dir)
    )
    layout = SceneLayout.for_count(1, width_px=PREVIEW_PX, height_px=PREVIEW_PX)
    compositor = Compositor(layout=layout, characters=[spec], set_name="studio")
    return _png(compositor.compose([Pose.rest()]))


def set_png(store: Store, set_id: str) -> bytes:
    return _png(render_set(store.catalog.get_set(set_id).backdrop, width_px=PREVIEW_PX, height_px=PREVIEW_PX))


def _png_response(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})


async def character_preview(request: Request) -> Response:
    return _png_response(await asyncio.to_thread(character_png, request.app.state.store, str(request.path_params["character_id"])))


async def set_preview(request: Request) -> Response:
    return _png_response(await asyncio.to_thread(set_png, request.app.state.store, str(request.path_params["set_id"])))


# -- scripts ----------------------------------------------------------------------------------


def check_script(text: object) -> dict[str, Any]:
    """A script's lines for the editor, or ``bad_script`` naming the line at fault."""
    if not isinstance(text, str):
        raise BadInputError("bad_script", "'text' must be the script as a string")
    try:
        script = parse_script(text)
    except ScriptError as exc:
        raise BadInputError("bad_script", str(exc)) from None
    lines = [
        {"speaker": ln.speaker, "text": ln.text, "source_line": ln.source_line, "dual": ln.dual_group is not None}
        for ln in script.lines
    ]
    return {"format": script.format, "lines": lines}


async def script_check(request: Request) -> Response:
    body = await read_json(request, max_bytes=MAX_SCRIPT_BYTES, what="script")
    return JSONResponse(check_script(body.get("text")))


# -- PNG-art characters ---------------------------------------------------------------------


def _decoded(files: object) -> dict[str, bytes]:
    if not isinstance(files, dict) or not files:
        raise BadInputError("bad_art", "'files' must be an object of file name -> base64 contents")
    out: dict[str, bytes] = {}
    for name, data in files.items():
        if not isinstance(data, str):
            raise BadInputError("bad_art", f"art file {str(name)[:40]!r}: its contents must be a base64 string")
        try:
            out[name] = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise BadInputError("bad_art", f"art file {str(name)[:40]!r} is not valid base64") from None
    return out


async def add_art_character(request: Request) -> Response:
    store: Store = request.app.state.store
    series_id = str(request.path_params["series_id"])
    body = await read_json(request, max_bytes=MAX_TOTAL_BYTES * 4 // 3 + 65536, what="art upload")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise BadInputError("bad_field", "'name' must be a string")
    files = _decoded(body.get("files"))

    def work() -> dict[str, Any]:
        store.catalog.get_series(series_id)  # 404 before any file is kept
        spec = ArtShelf.for_data_dir(store.media.data_dir).spec_for(
            files, name=check_name("character", name).upper() if name else None
        )
        return store.catalog.add_character(series_id, spec.name, spec_to_json(spec)).to_json()

    return JSONResponse(await asyncio.to_thread(work), status_code=201)


async def change_voice(request: Request) -> Response:
    """``PATCH /api/characters/{id}/voice`` with voice fields (language, variant, pitch, rate_wpm,
    backend, voice_id, speed). Going back to ``"backend": "espeak"`` drops the natural voice id."""
    store: Store = request.app.state.store
    ident = str(request.path_params["character_id"])
    given = await read_json(request, max_bytes=4096, what="voice")

    def work() -> dict[str, Any]:
        character = store.catalog.get_character(ident)
        data = {**character.spec, "voice": merged_voice(character.spec.get("voice", {}), given)}
        data_dir = store.media.data_dir
        spec = spec_from_json(character.name, data, photos=PhotoLibrary(data_dir), art=ArtShelf.for_data_dir(data_dir))
        return store.catalog.set_character_spec(ident, spec_to_json(spec)).to_json()

    return JSONResponse(await asyncio.to_thread(work))


async def recast(request: Request) -> Response:
    """``PUT /api/characters/{id}/cast`` ``{"cast": LINE}``: look and voice from a cast file's line."""
    store: Store = request.app.state.store
    ident = str(request.path_params["character_id"])
    given = await read_json(request, max_bytes=4096, what="cast")
    line = given.get("cast")
    if not isinstance(line, str) or not line.strip() or "\n" in line:
        raise BadInputError("bad_cast", "'cast' must be one line: a description and/or field=value pairs")

    def work() -> dict[str, Any]:
        character = store.catalog.get_character(ident)
        try:
            (entry,) = parse_cast(f"{character.name}: {line}", source="cast").values()
            spec = pinned_spec(entry, source="cast")
        except CastFileError as exc:
            raise BadInputError("bad_cast", str(exc)) from None
        data = spec_to_json(spec)
        if "art" in character.spec or "photo" in character.spec:  # its own pictures: the voice changes
            data = {**character.spec, "voice": data["voice"]}
        data_dir = store.media.data_dir
        checked = spec_from_json(character.name, data, photos=PhotoLibrary(data_dir), art=ArtShelf.for_data_dir(data_dir))
        return store.catalog.set_character_spec(ident, spec_to_json(checked)).to_json()

    return JSONResponse(await asyncio.to_thread(work))
