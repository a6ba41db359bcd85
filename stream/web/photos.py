"""``POST /api/photos``: a photo uploaded becomes a character of the running server.

The body is the image itself (JPEG, PNG, WebP, ..., 20 MiB at most); the query names the
character (``name``, required), picks a face (``face``, 1 = leftmost, when there are several)
and a voice (``language``, ``variant``). The photo is checked and its face found in a worker
thread, kept in the data directory by id (``photos/<id>/``), and the character joins the
server's cast: any session can then put it on screen (``{"type": "scene", ...}``), give it lines
or bind a live input to it; a series keeps it by that id (``POST /api/series/{id}/characters``
with ``"photo": id``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request

from avatar.photo.character import locate_face
from avatar.photo.image import MAX_PHOTO_BYTES, PhotoError, decode_photo
from lipsync.voices import name_digest
from stream.store.cast import spec_from_json, spec_to_json
from stream.store.catalog import check_name
from stream.store.errors import BadInputError
from stream.store.photos import PhotoLibrary
from stream.web.errors import read_body


def _face(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise BadInputError("bad_face", f"'face' must be a whole number 1..64 (1 = leftmost face), got {text!r}")
    return int(text)


async def upload_photo(r: Request) -> Any:
    q = r.query_params
    name = check_name("character", q.get("name")).upper()
    face = _face(q.get("face"))
    voice = {k: q[k] for k in ("language", "variant") if q.get(k)}
    data = await read_body(r, max_bytes=MAX_PHOTO_BYTES, what="photo")
    library = PhotoLibrary(r.app.state.config.data_dir)

    def work() -> Any:
        checked = spec_from_json(name, {"voice": voice})  # a bad voice is refused before any work
        try:
            rgb = decode_photo(data, label="the uploaded photo")
            landmarks = locate_face(rgb, face=face, label="the uploaded photo")
        except PhotoError as exc:
            raise BadInputError(exc.code, str(exc)) from None
        ident = library.add(rgb, landmarks, name=name, voice=checked.voice, face=face or 1)
        seed = int.from_bytes(name_digest(name)[16:24], "big")
        return spec_from_json(name, {"voice": voice, "seed": seed, "photo": ident}, photos=library), ident

    spec, ident = await asyncio.to_thread(work)
    r.app.state.engine.cast.add(spec)
    return {"photo_id": ident, "name": spec.name, "character": spec_to_json(spec)}
