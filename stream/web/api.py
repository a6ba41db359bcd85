"""REST API of the episode store: series, characters, sets, episodes, scenes, takes, recording, exports.

Every endpoint answers JSON; errors are ``{"error": code, "message": ...}`` with 400 (bad
input), 401, 404 (unknown id), 409 (conflicting state), 413 (body too large), 500 or 507 (disk
full), raised as ``StoreError`` and answered by the app's one handler. Store calls run in worker
threads. ``ENDPOINTS`` builds the routes here and the schema in ``stream.web.openapi``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from avatar.sets import check_set_name
from avatar.spec import Cast
from stream.export.jobs import ExportJobs
from stream.record.recorder import Recordings
from stream.store import Store
from stream.store.cast import merged_voice, spec_from_json, spec_to_json
from stream.store.catalog import UNSET, check_name
from stream.store.errors import BadInputError, NotFoundError
from stream.store.photos import PhotoLibrary
from stream.web.auth import Handler, require_session, token_guard
from stream.web.errors import read_json
from stream.web.photos import upload_photo
from stream.web.studio import (
    add_art_character,
    change_voice,
    character_preview,
    recast,
    script_check,
    set_preview,
    take_media,
)

MAX_BODY_BYTES = 64 * 1024


async def _body(request: Request) -> dict[str, Any]:
    return await read_json(request, max_bytes=MAX_BODY_BYTES, what="request body")


def _str(data: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise BadInputError("bad_field", f"'{name}' must be a string" + (" and is required" if required else ""))
    return value


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
    return asyncio.to_thread(fn, *args, **kwargs)


def _p(request: Request, name: str) -> str:
    return str(request.path_params[name])


# -- series, characters, sets ---------------------------------------------------------------


async def list_series(r: Request) -> Any:
    return {"series": [s.to_json() for s in await _run(_store(r).catalog.list_series)]}


async def create_series(r: Request) -> Any:
    return (await _run(_store(r).catalog.create_series, (await _body(r)).get("name"))).to_json()


def _series_detail(store: Store, series_id: str) -> dict[str, Any]:
    c = store.catalog
    return {
        **c.get_series(series_id).to_json(),
        "characters": [x.to_json() for x in c.list_characters(series_id)],
        "sets": [x.to_json() for x in c.list_sets(series_id)],
        "episodes": [x.to_json() for x in c.list_episodes(series_id)],
    }


async def get_series(r: Request) -> Any:
    return await _run(_series_detail, _store(r), _p(r, "series_id"))


async def _rename(r: Request, kind: str, key: str, get: Callable[[str], Any]) -> Any:
    store, ident, body = _store(r), _p(r, key), await _body(r)

    def work() -> Any:
        store.catalog.rename(kind, ident, body.get("name"))
        return get(ident).to_json()

    return await _run(work)


async def patch_series(r: Request) -> Any:
    return await _rename(r, "series", "series_id", _store(r).catalog.get_series)


async def list_characters(r: Request) -> Any:
    return {"characters": [c.to_json() for c in await _run(_store(r).catalog.list_characters, _p(r, "series_id"))]}


async def create_character(r: Request) -> Any:
    store, series_id, body = _store(r), _p(r, "series_id"), await _body(r)
    name = check_name("character", body.get("name")).upper()
    # Start from the built-in (or the name's deterministic auto-cast) and apply what was given.
    base = spec_to_json(Cast.builtin().resolve(name))
    if body.get("photo") is not None:  # a photo character kept by id (POST /api/photos)
        base["photo"] = body["photo"]
    for part in ("look", "voice"):
        given = body.get(part) or {}
        if not isinstance(given, dict):
            raise BadInputError("bad_character", f"'{part}' must be an object of {part} fields")
        base[part] = merged_voice(base[part], given) if part == "voice" else {**base[part], **given}
    if "seed" in body:
        base["seed"] = body["seed"]
    photos = PhotoLibrary(store.data_dir)
    spec = await _run(spec_from_json, name, base, photos=photos)  # the first call reads the speech engine's languages
    return (await _run(store.catalog.add_character, series_id, name, spec_to_json(spec))).to_json()


async def patch_character(r: Request) -> Any:
    return await _rename(r, "character", "character_id", _store(r).catalog.get_character)


async def list_sets(r: Request) -> Any:
    return {"sets": [s.to_json() for s in await _run(_store(r).catalog.list_sets, _p(r, "series_id"))]}


async def create_set(r: Request) -> Any:
    body = await _body(r)
    backdrop = _str(body, "backdrop", required=True) or ""
    try:
        check_set_name(backdrop)
    except ValueError as exc:
        raise BadInputError("bad_set", str(exc)) from None
    return (await _run(_store(r).catalog.add_set, _p(r, "series_id"), body.get("name"), backdrop.strip().lower())).to_json()


async def patch_set(r: Request) -> Any:
    return await _rename(r, "set", "set_id", _store(r).catalog.get_set)


# -- episodes and scenes ----------------------------------------------------------------------


async def list_episodes(r: Request) -> Any:
    return {"episodes": [e.to_json() for e in await _run(_store(r).catalog.list_episodes, _p(r, "series_id"))]}


async def create_episode(r: Request) -> Any:
    body = await _body(r)
    return (await _run(_store(r).catalog.create_episode, _p(r, "series_id"), body.get("name"), position=body.get("position"))).to_json()


def _episode_detail(store: Store, episode_id: str) -> dict[str, Any]:
    scenes = []
    for scene in store.catalog.list_scenes(episode_id):
        playing = store.takes.playable(scene.id, scene.chosen_take_id)
        scenes.append({**scene.to_json(), "playing_take_id": playing.id if playing else None})
    return {**store.catalog.get_episode(episode_id).to_json(), "scenes": scenes}


async def get_episode(r: Request) -> Any:
    return await _run(_episode_detail, _store(r), _p(r, "episode_id"))


async def patch_episode(r: Request) -> Any:
    store, ident, body = _store(r), _p(r, "episode_id"), await _body(r)

    def work() -> Any:
        if "name" in body:
            store.catalog.rename("episode", ident, body["name"])
        if "position" in body:
            store.catalog.move("episode", ident, body["position"])
        return store.catalog.get_episode(ident).to_json()

    return await _run(work)


async def list_scenes(r: Request) -> Any:
    return {"scenes": [s.to_json() for s in await _run(_store(r).catalog.list_scenes, _p(r, "episode_id"))]}


async def create_scene(r: Request) -> Any:
    body = await _body(r)
    scene = await _run(
        _store(r).catalog.create_scene, _p(r, "episode_id"), body.get("name"), position=body.get("position"),
        set_id=_str(body, "set_id"), transition_ms=body.get("transition_ms", 0),
    )
    return scene.to_json()


def _scene_detail(store: Store, scene_id: str) -> dict[str, Any]:
    scene = store.catalog.get_scene(scene_id)
    playing = store.takes.playable(scene.id, scene.chosen_take_id)
    return {
        **scene.to_json(), "playing_take_id": playing.id if playing else None,
        "takes": [t.to_json() for t in store.takes.for_scene(scene_id)],
    }


async def get_scene(r: Request) -> Any:
    return await _run(_scene_detail, _store(r), _p(r, "scene_id"))


async def patch_scene(r: Request) -> Any:
    store, ident, body = _store(r), _p(r, "scene_id"), await _body(r)
    updates = {k: body.get(k, UNSET) for k in ("set_id", "transition_ms", "chosen_take_id")}

    def work() -> Any:
        if "name" in body:
            store.catalog.rename("scene", ident, body["name"])
        if "position" in body:
            store.catalog.move("scene", ident, body["position"])
        store.catalog.update_scene(ident, **updates)
        return _scene_detail(store, ident)

    return await _run(work)


# -- takes, recording -------------------------------------------------------------------------


async def list_takes(r: Request) -> Any:
    return {"takes": [t.to_json() for t in await _run(_store(r).takes.for_scene, _p(r, "scene_id"))]}


async def get_take(r: Request) -> Any:
    store, ident = _store(r), _p(r, "take_id")
    take, lines, shots = await _run(lambda: (store.takes.get(ident), store.takes.lines(ident), store.takes.shots(ident)))
    return {**take.to_json(), "lines": [ln.to_json() for ln in lines], "shots": [s.to_json() for s in shots]}


async def patch_take(r: Request) -> Any:
    return await _rename(r, "take", "take_id", _store(r).takes.get)


async def choose_take(r: Request) -> Any:
    store, ident = _store(r), _p(r, "take_id")

    def work() -> Any:
        take = store.takes.get(ident)
        store.catalog.update_scene(take.scene_id, chosen_take_id=ident)
        return _scene_detail(store, take.scene_id)

    return await _run(work)


def _deleter(kind: str, key: str) -> Handler:
    async def delete(r: Request) -> Any:
        await _run(_store(r).delete, kind, _p(r, key))
        return Response(status_code=204)

    return delete


def _session(r: Request) -> Any:
    if _p(r, "session_id") not in r.app.state.sessions.sessions:
        raise NotFoundError("session", _p(r, "session_id"))
    return require_session(r)  # it exists: the caller must hold its secret


async def start_recording(r: Request) -> Any:
    session, body = _session(r), await _body(r)
    recordings: Recordings = r.app.state.recordings
    scene_id = _str(body, "scene_id", required=True) or ""
    take = await recordings.start(session, scene_id=scene_id, take_name=_str(body, "take_name"))
    return take.to_json()


async def stop_recording(r: Request) -> Any:
    recordings: Recordings = r.app.state.recordings
    return (await recordings.stop(_session(r))).to_json()


# -- exports ----------------------------------------------------------------------------------


async def export_episode(r: Request) -> Any:
    jobs: ExportJobs = r.app.state.exports
    return (await _run(jobs.submit, episode_id=_p(r, "episode_id"))).to_json()


async def export_scene(r: Request) -> Any:
    jobs: ExportJobs = r.app.state.exports
    return (await _run(jobs.submit, scene_id=_p(r, "scene_id"))).to_json()


async def get_export(r: Request) -> Any:
    return (await _run(_store(r).exports.get, _p(r, "export_id"))).to_json()


MEDIA_TYPES = {"mp4": "video/mp4", "srt": "application/x-subrip", "vtt": "text/vtt", "otio": "application/json"}


async def export_file(r: Request) -> Any:
    jobs: ExportJobs = r.app.state.exports
    kind = _p(r, "kind")
    if kind not in MEDIA_TYPES:
        raise BadInputError("bad_kind", f"unknown file kind {kind!r}; choose one of {', '.join(MEDIA_TYPES)}")
    path = (await _run(jobs.files, _p(r, "export_id")))[kind]
    return FileResponse(path, media_type=MEDIA_TYPES[kind], filename=path.name)


# -- the table and the routes ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route of the API: it builds the route and its entry in the OpenAPI schema."""

    method: str
    path: str
    handler: Handler
    summary: str
    body: dict[str, Any] | None = None  # JSON schema properties of the request body
    required: tuple[str, ...] = ()
    status: int = 200
    returns: str | None = None  # a component schema name
    query: tuple[str, ...] = ()  # query parameters (strings)
    upload: str | None = None  # the media type of a raw (non-JSON) body, e.g. an image


_S, _I = {"type": "string"}, {"type": "integer"}
_NAME = {"name": _S}
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/api/series", list_series, "List series"),
    Endpoint("POST", "/api/series", create_series, "Create a series", _NAME, ("name",), 201, "Series"),
    Endpoint("GET", "/api/series/{series_id}", get_series, "A series with its characters, sets and episodes", returns="Series"),
    Endpoint("PATCH", "/api/series/{series_id}", patch_series, "Rename a series", _NAME, ("name",), returns="Series"),
    Endpoint("DELETE", "/api/series/{series_id}", _deleter("series", "series_id"), "Delete a series and all it holds", status=204),
    Endpoint("GET", "/api/series/{series_id}/characters", list_characters, "List a series' characters"),
    Endpoint("POST", "/api/series/{series_id}/characters", create_character,
             "Add a character (look and voice; omitted: the built-in or auto-cast one for the name)",
             {"name": _S, "look": {"type": "object"}, "voice": {"type": "object"}, "seed": _I, "photo": _S}, ("name",), 201, "Character"),
    Endpoint("POST", "/api/photos", upload_photo,
             "Add a character from one photo (the body is the image); it joins the server's cast, kept by photo id",
             status=201, query=("name", "face", "language", "variant"), upload="image/*"),
    Endpoint("PATCH", "/api/characters/{character_id}", patch_character, "Rename a character", _NAME, ("name",), returns="Character"),
    Endpoint("DELETE", "/api/characters/{character_id}", _deleter("character", "character_id"), "Delete a character", status=204),
    Endpoint("GET", "/api/series/{series_id}/sets", list_sets, "List a series' sets"),
    Endpoint("POST", "/api/series/{series_id}/sets", create_set, "Add a set (a set name or a #rrggbb colour)",
             {"name": _S, "backdrop": _S}, ("name", "backdrop"), 201, "SetRecord"),
    Endpoint("PATCH", "/api/sets/{set_id}", patch_set, "Rename a set", _NAME, ("name",), returns="SetRecord"),
    Endpoint("DELETE", "/api/sets/{set_id}", _deleter("set", "set_id"), "Delete a set", status=204),
    Endpoint("GET", "/api/series/{series_id}/episodes", list_episodes, "List a series' episodes in order"),
    Endpoint("POST", "/api/series/{series_id}/episodes", create_episode, "Create an episode (at the end, or at position)",
             {"name": _S, "position": _I}, ("name",), 201, "Episode"),
    Endpoint("GET", "/api/episodes/{episode_id}", get_episode, "An episode with its scenes", returns="Episode"),
    Endpoint("PATCH", "/api/episodes/{episode_id}", patch_episode, "Rename and/or move an episode",
             {"name": _S, "position": _I}, returns="Episode"),
    Endpoint("DELETE", "/api/episodes/{episode_id}", _deleter("episode", "episode_id"), "Delete an episode", status=204),
    Endpoint("GET", "/api/episodes/{episode_id}/scenes", list_scenes, "List an episode's scenes in order"),
    Endpoint("POST", "/api/episodes/{episode_id}/scenes", create_scene, "Create a scene",
             {"name": _S, "position": _I, "set_id": _S, "transition_ms": _I}, ("name",), 201, "Scene"),
    Endpoint("GET", "/api/scenes/{scene_id}", get_scene, "A scene with its takes", returns="Scene"),
    Endpoint("PATCH", "/api/scenes/{scene_id}", patch_scene,
             "Rename, move, change the set or transition (0 = cut, else a crossfade), or choose a take (null: latest)",
             {"name": _S, "position": _I, "set_id": _S, "transition_ms": _I, "chosen_take_id": _S}, returns="Scene"),
    Endpoint("DELETE", "/api/scenes/{scene_id}", _deleter("scene", "scene_id"), "Delete a scene and its takes", status=204),
    Endpoint("GET", "/api/scenes/{scene_id}/takes", list_takes, "List a scene's takes"),
    Endpoint("GET", "/api/takes/{take_id}", get_take, "A take with its lines", returns="Take"),
    Endpoint("PATCH", "/api/takes/{take_id}", patch_take, "Rename a take", _NAME, ("name",), returns="Take"),
    Endpoint("POST", "/api/takes/{take_id}/choose", choose_take, "Make this the take its scene plays", returns="Scene"),
    Endpoint("DELETE", "/api/takes/{take_id}", _deleter("take", "take_id"), "Delete a take and its media", status=204),
    Endpoint("POST", "/api/sessions/{session_id}/record", start_recording, "Start recording a take of a live session",
             {"scene_id": _S, "take_name": _S}, ("scene_id",), 201, "Take"),
    Endpoint("DELETE", "/api/sessions/{session_id}/record", stop_recording, "Stop the session's take", returns="Take"),
    Endpoint("POST", "/api/episodes/{episode_id}/export", export_episode, "Export an episode (MP4, SRT, VTT, OTIO)",
             status=202, returns="ExportRecord"),
    Endpoint("POST", "/api/scenes/{scene_id}/export", export_scene, "Export one scene", status=202, returns="ExportRecord"),
    Endpoint("GET", "/api/exports/{export_id}", get_export, "An export's status and progress", returns="ExportRecord"),
    Endpoint("GET", "/api/exports/{export_id}/files/{kind}", export_file, "Download a finished export's mp4, srt, vtt or otio"),
    # The studio page's own needs (stream.web.studio).
    Endpoint("GET", "/api/takes/{take_id}/media", take_media, "The take as an MP4 (H.264 + AAC) to play back"),
    Endpoint("POST", "/api/series/{series_id}/characters/art", add_art_character,
             "Add a character from a folder of layered PNGs (files: name -> base64), kept in the data directory",
             {"name": _S, "files": {"type": "object"}}, ("files",), 201, "Character"),
    Endpoint("PATCH", "/api/characters/{character_id}/voice", change_voice,
             "Change a character's voice (variant, pitch, rate_wpm, language)",
             {"variant": _S, "pitch": _I, "rate_wpm": _I, "language": _S}, returns="Character"),
    Endpoint("PUT", "/api/characters/{character_id}/cast", recast,
             "Recast a character from a cast file's line (description; field=value ...): look and voice",
             {"cast": _S}, ("cast",), returns="Character"),
    Endpoint("GET", "/api/characters/{character_id}/preview.png", character_preview, "A still of the character (PNG)"),
    Endpoint("GET", "/api/sets/{set_id}/preview.png", set_preview, "A still of the set (PNG)"),
    Endpoint("POST", "/api/script/check", script_check, "A script's lines, or bad_script naming the line at fault",
             {"text": _S}, ("text",)),
)


def _respond(endpoint: Endpoint) -> Handler:
    """The endpoint's handler behind the token, its result sent as JSON with the endpoint's status."""

    async def handle(request: Request) -> Response:
        result = await endpoint.handler(request)
        if isinstance(result, Response):
            return result
        return JSONResponse(result, status_code=endpoint.status)

    handle.__name__ = endpoint.handler.__name__
    return token_guard(handle)


def api_routes() -> list[BaseRoute]:
    """The store's routes, each behind the access token (the schema's route is ``stream.web.openapi``)."""
    return [Route(ep.path, _respond(ep), methods=[ep.method]) for ep in ENDPOINTS]
