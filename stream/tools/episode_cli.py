"""``talkie episode …``: the episode store from the command line.

    talkie episode series                         list series (create one: series --create NAME)
    talkie episode list SERIES_ID                 episodes of a series, in order
    talkie episode create SERIES_ID NAME          a new episode (--position N)
    talkie episode show ID                        a series, episode, scene or take, with what it holds
    talkie episode scene EPISODE_ID NAME          a new scene (--position N, --crossfade-ms N)
    talkie episode rename ID NAME                 any series, character, set, episode, scene or take
    talkie episode move ID POSITION               an episode or scene, 0-based
    talkie episode choose TAKE_ID                 make a take the one its scene plays
    talkie episode delete ID                      anything, with what it holds
    talkie episode export ID -o out.mp4           an episode or scene → MP4 + SRT + VTT + OTIO

Ids carry their kind (``ser_``, ``ch_``, ``set_``, ``ep_``, ``sc_``, ``tk_``), so one command
serves every kind. The store is ``--data-dir`` (default ``data``), the server's too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream.store import Store

KIND_OF_PREFIX = {"ser": "series", "ch": "character", "set": "set", "ep": "episode", "sc": "scene", "tk": "take"}


def kind_of(ident: str) -> str:
    from stream.store.errors import BadInputError

    kind = KIND_OF_PREFIX.get(ident.split("_", 1)[0])
    if kind is None:
        raise BadInputError("bad_id", f"{ident!r} is not a store id (they start with ser_, ch_, set_, ep_, sc_ or tk_)")
    return kind


def add_parser(sub: Any) -> None:
    """Register ``episode`` and its subcommands on the top-level subparsers."""
    episode = sub.add_parser("episode", help="series, episodes, scenes and takes in the store; exports")
    episode.add_argument("--data-dir", default="data", help="the store's data directory")
    episode.add_argument("--json", action="store_true", help="print JSON instead of text")
    cmds = episode.add_subparsers(dest="episode_command", required=True)

    series = cmds.add_parser("series", help="list series, or create one")
    series.add_argument("--create", metavar="NAME", help="create a series called NAME")
    listing = cmds.add_parser("list", help="the episodes of a series")
    listing.add_argument("series_id")
    create = cmds.add_parser("create", help="a new episode")
    create.add_argument("series_id")
    create.add_argument("name")
    create.add_argument("--position", type=int, default=None)
    show = cmds.add_parser("show", help="show a series, episode, scene or take")
    show.add_argument("id")
    scene = cmds.add_parser("scene", help="a new scene in an episode")
    scene.add_argument("episode_id")
    scene.add_argument("name")
    scene.add_argument("--position", type=int, default=None)
    scene.add_argument("--crossfade-ms", type=int, default=0, help="crossfade in from the previous scene (0: cut)")
    rename = cmds.add_parser("rename", help="rename anything")
    rename.add_argument("id")
    rename.add_argument("name")
    move = cmds.add_parser("move", help="move an episode or scene to POSITION (0-based)")
    move.add_argument("id")
    move.add_argument("position", type=int)
    choose = cmds.add_parser("choose", help="make a take the one its scene plays")
    choose.add_argument("take_id")
    delete = cmds.add_parser("delete", help="delete anything, with what it holds")
    delete.add_argument("id")
    export = cmds.add_parser("export", help="export an episode or a scene to MP4 + SRT + VTT + OTIO")
    export.add_argument("id")
    export.add_argument("-o", "--output", required=True, help="output .mp4 path")
    export.add_argument("--preset", default="veryfast", help="x264 preset")
    export.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    episode.set_defaults(func=run)


def _show(store: Store, ident: str) -> dict[str, Any]:
    kind = kind_of(ident)
    c = store.catalog
    if kind == "series":
        return {**c.get_series(ident).to_json(), "characters": [x.name for x in c.list_characters(ident)],
                "sets": [x.to_json() for x in c.list_sets(ident)],
                "episodes": [x.to_json() for x in c.list_episodes(ident)]}
    if kind == "episode":
        scenes = []
        for scene in c.list_scenes(ident):
            playing = store.takes.playable(scene.id, scene.chosen_take_id)
            scenes.append({**scene.to_json(), "playing_take_id": playing.id if playing else None,
                           "takes": [t.to_json() for t in store.takes.for_scene(scene.id)]})
        return {**c.get_episode(ident).to_json(), "scenes": scenes}
    if kind == "scene":
        return {**c.get_scene(ident).to_json(), "takes": [t.to_json() for t in store.takes.for_scene(ident)]}
    if kind == "take":
        return {**store.takes.get(ident).to_json(), "lines": [ln.to_json() for ln in store.takes.lines(ident)]}
    if kind == "character":
        return c.get_character(ident).to_json()
    return c.get_set(ident).to_json()


def _text(data: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(data, list):
        return "\n".join(_text(item, indent) for item in data) or f"{pad}(none)"
    if not isinstance(data, dict):
        return f"{pad}{data}"
    head = f"{pad}{data.get('id', '')}  {data.get('name', '')}".rstrip()
    extras = [f"{k}={v}" for k, v in data.items() if k in ("status", "position", "duration_s", "playing_take_id", "transition_ms")]
    out = [head + ("  " + " ".join(extras) if extras else "")]
    for key in ("episodes", "scenes", "takes", "sets", "lines"):
        if data.get(key):
            out.append(f"{pad}  {key}:")
            out.append(_text(data[key], indent + 2))
    return "\n".join(out)


def _export(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    from stream.export.jobs import ExportConfig, export_timeline
    from stream.export.stitch import plan_episode, plan_scene

    kind = kind_of(args.id)
    if kind not in ("episode", "scene"):
        raise ValueError(f"export takes an episode or scene id, got a {kind} id")
    timeline = plan_episode(store, args.id) if kind == "episode" else plan_scene(store, args.id)
    with tqdm(total=timeline.n_frames, unit="frame", disable=args.quiet, desc=Path(args.output).name) as bar:
        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        result = export_timeline(store, timeline, Path(args.output), config=ExportConfig(preset=args.preset), progress=progress)
    return {
        "mp4": str(result.mp4), "srt": str(result.srt), "vtt": str(result.vtt), "otio": str(result.otio),
        "frames": result.n_frames, "duration_s": round(result.n_samples / 48000, 3), "clips": result.clips,
        "skipped_scenes": [s.id for s in timeline.skipped_scenes],
    }


def run(args: argparse.Namespace) -> int:
    from stream.store import Store

    store = Store.open(Path(args.data_dir))
    try:
        result = _dispatch(store, args)
    finally:
        store.close()
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    elif args.episode_command == "export":
        print(f"wrote {result['mp4']} ({result['frames']} frames, {result['duration_s']:.2f} s, {result['clips']} takes), "
              f"{Path(result['srt']).name}, {Path(result['vtt']).name}, {Path(result['otio']).name}")
        if result["skipped_scenes"]:
            print(f"scenes with no take to play (left out): {', '.join(result['skipped_scenes'])}")
    else:
        print(_text(result))
    return 0


def _dispatch(store: Store, args: argparse.Namespace) -> Any:
    c, cmd = store.catalog, args.episode_command
    if cmd == "series":
        if args.create:
            return c.create_series(args.create).to_json()
        return [s.to_json() for s in c.list_series()]
    if cmd == "list":
        return [e.to_json() for e in c.list_episodes(args.series_id)]
    if cmd == "create":
        return c.create_episode(args.series_id, args.name, position=args.position).to_json()
    if cmd == "show":
        return _show(store, args.id)
    if cmd == "scene":
        return c.create_scene(args.episode_id, args.name, position=args.position, transition_ms=args.crossfade_ms).to_json()
    if cmd == "rename":
        c.rename(kind_of(args.id), args.id, args.name)
        return _show(store, args.id)
    if cmd == "move":
        c.move(kind_of(args.id), args.id, args.position)
        return _show(store, args.id)
    if cmd == "choose":
        take = store.takes.get(args.take_id)
        return c.update_scene(take.scene_id, chosen_take_id=take.id).to_json()
    if cmd == "delete":
        removed = store.delete(kind_of(args.id), args.id)
        return {"deleted": args.id, "takes_removed": len(removed)}
    if cmd == "export":
        return _export(store, args)
    raise ValueError(f"unknown episode command {cmd!r}")
