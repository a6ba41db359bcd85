"""What a batch holds, and what of it is done already.

A render batch is scripts mapped to episodes of one series. Its tasks are the scripts' scenes
with dialogue, one take each. A scene's key is ``<script>#<n>`` (the n-th scene with dialogue
of that script; the script named as in the folder or list file) and its content hash covers
everything that decides its frames and samples: lines, the cast's specs, the set, the size, the
timeline, the backend and what the director reads (shot notes, action lines, parentheticals).
The driver writes both into the note of the take it commits (``batch sha256=<hash> key=<key>``),
so the store itself says what is done: a scene is done when its episode holds a complete take
with its key and hash. A changed scene gets a new take in
the scene that holds its key; a new one becomes a new scene of the episode, or takes over an
empty scene of its name. That is what a driver killed outright leaves behind: scenes whose only
takes have no frames (closed by the store's recovery). Such frameless render takes hold nothing
to play, and planning clears them from the batch's episodes first.

An export batch is episodes. One is done when a finished export of it was made from the same
timeline (the same takes, cuts, lines and names) with the same encoder settings, as the
``batch.json`` the driver writes beside the export's files says.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lipsync.script import ScriptError
from stream.export.jobs import ExportConfig
from stream.export.stitch import NothingToExportError, Timeline, plan_episode
from stream.record.offline import RenderConfig, ScenePlan, plan_scenes, read_script
from stream.record.script_takes import _scene_label  # the label `talkie render` gives a scene
from stream.store import BadInputError, Scene, Segment, Store
from stream.store.cast import keep_characters, series_cast, spec_to_json
from stream.store.catalog import check_name
from stream.store.segments import SegmentConfig

SCRIPT_SUFFIXES = (".fountain", ".txt", ".spmd")
MAX_SCRIPTS = 1000
EXPORT_MARK = "batch.json"
_MARK_RE = re.compile(r"^batch sha256=([0-9a-f]{64}) key=(.+)$")
_EPISODE_ID_RE = re.compile(r"^ep_[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class ScriptEntry:
    """One script of a batch and the episode it goes into (an ``ep_…`` id, or a name)."""

    path: Path
    key: str  # the script's name in the batch: its path relative to the folder or list file
    episode: str


@dataclass(frozen=True, slots=True)
class SceneWork:
    """One script scene: rendered into ``scene_id`` (None: a new scene) unless ``done``."""

    key: str
    episode_id: str
    plan: ScenePlan
    content: str
    scene_id: str | None
    done: bool


@dataclass(frozen=True, slots=True)
class RenderBatch:
    series_id: str
    config: RenderConfig
    scenes: tuple[SceneWork, ...]  # in script order, episode by episode as listed

    @property
    def todo(self) -> tuple[SceneWork, ...]:
        return tuple(w for w in self.scenes if not w.done)

    @property
    def done(self) -> tuple[SceneWork, ...]:
        return tuple(w for w in self.scenes if w.done)


@dataclass(frozen=True, slots=True)
class EpisodeWork:
    """One episode's timeline, with the segment index of every take it plays."""

    episode_id: str
    name: str
    timeline: Timeline
    segments: dict[str, tuple[Segment, ...]]
    content: str
    done_export_id: str | None  # a finished export of this very content


@dataclass(frozen=True, slots=True)
class ExportBatch:
    config: ExportConfig
    episodes: tuple[EpisodeWork, ...]
    empty: tuple[str, ...]  # episodes with no take to play (left out)

    @property
    def todo(self) -> tuple[EpisodeWork, ...]:
        return tuple(w for w in self.episodes if w.done_export_id is None)

    @property
    def done(self) -> tuple[EpisodeWork, ...]:
        return tuple(w for w in self.episodes if w.done_export_id is not None)


# -- scripts ------------------------------------------------------------------------------------


def read_entries(source: Path) -> list[ScriptEntry]:
    """The scripts of a batch: a folder (each script an episode named after the file) or a list file.

    A list file has one script a line, then its episode, shell-quoted where they hold spaces
    (``ep01.fountain Pilot``, ``"cold open.txt" ep_0123456789abcdef``); ``#`` starts a comment
    and paths are relative to the list file.
    """
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in SCRIPT_SUFFIXES)
        if not files:
            raise BadInputError("no_scripts", f"folder {source} holds no script ({', '.join('*' + s for s in SCRIPT_SUFFIXES)})")
        entries = [ScriptEntry(path=p, key=p.name, episode=p.stem) for p in files]
    elif source.is_file():
        entries = _read_list(source)
    else:
        raise BadInputError("no_scripts", f"{source} is neither a folder of scripts nor a list file")
    if len(entries) > MAX_SCRIPTS:
        raise BadInputError("too_many", f"{source} names {len(entries)} scripts; a batch takes at most {MAX_SCRIPTS}")
    return entries


def _read_list(source: Path) -> list[ScriptEntry]:
    entries = []
    try:
        text = source.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError("bad_list", f"cannot read the list file {source}: {exc}") from exc
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{source} line {number}"
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as exc:
            raise BadInputError("bad_list", f"{where}: {exc}") from exc
        if not words:
            continue
        if len(words) < 2:
            raise BadInputError("bad_list", f"{where}: give a script and its episode (an ep_… id or a name), e.g. `ep01.fountain Pilot`")
        path = source.parent / words[0]
        if not path.is_file():
            raise BadInputError("bad_list", f"{where}: script {path} does not exist")
        entries.append(ScriptEntry(path=path, key=Path(words[0]).as_posix(), episode=" ".join(words[1:])))
    if not entries:
        raise BadInputError("no_scripts", f"the list file {source} names no script")
    return entries


def content_hash(plan: ScenePlan, config: RenderConfig) -> str:
    """sha256 of what decides a scene's frames and samples (not its heading: that is a label)."""
    what: dict[str, Any] = {
        "set": plan.set_name,
        "cast": [{"name": s.name, "art_dir": s.art_dir, **spec_to_json(s)} for s in plan.cast],
        "lines": [asdict(line) for line in plan.lines],
        "size": [config.width_px, config.height_px],
        "timeline": asdict(config.timeline),
        "backend": [config.backend, config.neural_weights_dir, config.voice_backend],
        "segments": asdict(SegmentConfig()),
        "direction": direction_of(plan, config),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def direction_of(plan: ScenePlan, config: RenderConfig) -> dict[str, Any]:
    """What the director reads besides the lines: shot notes, action lines (entrances and
    exits), parentheticals and extensions (addressees, V.O.) in their order in the scene, and
    where everyone stands."""
    if not (config.director and config.backend == "rig") or plan.scene is None:
        return {"director": False}
    scene = plan.scene
    items: list[tuple[int, int, list[Any]]] = [
        *((ln.source_line, 0, ["line", ln.speaker, ln.parenthetical, ln.extension]) for ln in scene.lines),
        *((a.source_line, 1, ["action", a.text]) for a in scene.actions),
        *((n.source_line, 2, ["note", n.text]) for n in scene.notes),
    ]
    return {"director": True, "order": [item for _, _, item in sorted(items, key=lambda t: t[:2])],
            "marks": [list(m) for m in plan.marks]}


def take_mark(key: str, content: str) -> str:
    """The note of a take the batch committed."""
    return f"batch sha256={content} key={key}"


def parse_mark(note: str | None) -> tuple[str, str] | None:
    """(content hash, key) of a batch take's note; None for any other note."""
    found = _MARK_RE.match(note or "")
    return (found.group(1), found.group(2)) if found else None


def held_scenes(store: Store, episode_id: str) -> dict[str, tuple[str, frozenset[str]]]:
    """key -> (the scene holding it, the content hashes of its complete batch takes)."""
    held: dict[str, tuple[str, frozenset[str]]] = {}
    for scene in store.catalog.list_scenes(episode_id):
        for take in store.takes.for_scene(scene.id):
            mark = parse_mark(take.note) if take.status == "complete" else None
            if mark is None:
                continue
            content, key = mark
            scene_id, contents = held.get(key, (scene.id, frozenset()))
            if scene_id == scene.id:  # a key copied into a second scene by hand: the first one keeps it
                held[key] = (scene_id, contents | {content})
    return held


def _clear_frameless(store: Store, episode_id: str) -> list[Scene]:
    """Delete the episode's render takes with no frames; returns its scenes left with no take."""
    empty = []
    for scene in store.catalog.list_scenes(episode_id):
        takes = store.takes.for_scene(scene.id)
        frameless = [t for t in takes if t.source == "render" and t.status == "recovered" and t.frames == 0]
        for take in frameless:
            store.delete("take", take.id)
        if len(frameless) == len(takes):
            empty.append(scene)
    return empty


def _adopt(empty: list[Scene], plan: ScenePlan) -> str | None:
    """An empty scene named as the batch would name this one (taken off ``empty``), if any."""
    for scene in empty:
        named = scene.name == _scene_label(plan, 0) if plan.heading else re.fullmatch(r"Scene \d+", scene.name)
        if named:
            empty.remove(scene)
            return scene.id
    return None


def _episode_ids(store: Store, series_id: str, entries: list[ScriptEntry]) -> list[str]:
    """The episode of each entry: ids are checked, names found or created at the end of the series."""
    catalog = store.catalog
    by_name: dict[str, str] = {}
    for episode in catalog.list_episodes(series_id):
        by_name.setdefault(episode.name, episode.id)
    for entry in entries:  # every name checked before any episode is created
        if not _EPISODE_ID_RE.match(entry.episode):
            check_name("episode", entry.episode)
    ids = []
    for entry in entries:
        if _EPISODE_ID_RE.match(entry.episode):
            episode = catalog.get_episode(entry.episode)
            if episode.series_id != series_id:
                raise BadInputError("bad_episode", f"episode {episode.id} belongs to series {episode.series_id}, not {series_id}")
            ids.append(episode.id)
        else:
            if entry.episode.strip() not in by_name:
                by_name[entry.episode.strip()] = catalog.create_episode(series_id, entry.episode).id
            ids.append(by_name[entry.episode.strip()])
    return ids


def plan_render(
    store: Store, series_id: str, entries: list[ScriptEntry], *, config: RenderConfig, force: bool = False
) -> RenderBatch:
    """Every scene of ``entries`` as a task, marked done where the store holds it already.

    Scripts are all read and checked before anything is written; then missing episodes are
    created and new speakers join the series' cast (as ``talkie render --episode`` does).
    """
    catalog = store.catalog
    catalog.get_series(series_id)
    cast = series_cast(catalog, series_id, language=config.language)
    planned: list[list[ScenePlan]] = []
    for entry in entries:
        try:
            plans = plan_scenes(read_script(entry.path), cast, config)
        except ScriptError as exc:
            raise ScriptError(f"{entry.path}: {exc}") from exc
        if not plans:
            raise ScriptError(f"{entry.path}: the script has no scene with dialogue")
        planned.append(plans)
    episode_ids = _episode_ids(store, series_id, entries)
    seen: set[tuple[str, str]] = set()
    for entry, episode_id in zip(entries, episode_ids, strict=True):
        if (episode_id, entry.key) in seen:
            raise BadInputError("bad_list", f"script {entry.key} is listed twice for episode {episode_id}")
        seen.add((episode_id, entry.key))
    keep_characters(catalog, series_id, {s.name: s for plans in planned for p in plans for s in p.cast}.values())
    held = {episode_id: held_scenes(store, episode_id) for episode_id in dict.fromkeys(episode_ids)}
    empty = {episode_id: _clear_frameless(store, episode_id) for episode_id in held}
    scenes = []
    for entry, episode_id, plans in zip(entries, episode_ids, planned, strict=True):
        for number, plan in enumerate(plans, start=1):
            key = f"{entry.key}#{number}"
            content = content_hash(plan, config)
            scene_id, contents = held[episode_id].get(key, (None, frozenset()))
            if scene_id is None:
                scene_id = _adopt(empty[episode_id], plan)
            scenes.append(SceneWork(key, episode_id, plan, content, scene_id, done=content in contents and not force))
    return RenderBatch(series_id, config, tuple(scenes))


# -- episodes ------------------------------------------------------------------------------------


def timeline_hash(timeline: Timeline, config: ExportConfig) -> str:
    """sha256 of what decides an export's files: clips, cuts, lines, names, encoder settings."""
    what = {
        "title": timeline.title,
        "size": [timeline.width_px, timeline.height_px],
        "clips": [[c.scene.id, c.scene.name, c.take.id, c.take.name, c.take.frames, c.start_frame, c.fade_in_frames]
                  for c in timeline.clips],
        "events": [[e.speaker, e.text, e.start_sample, e.end_sample] for e in timeline.events],
        "config": {k: v for k, v in asdict(config).items() if k != "progress_every_frames"},
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def finished_export(store: Store, episode_id: str, content: str) -> str | None:
    """The newest finished export of ``episode_id`` made from ``content``, if its files are there."""
    for record in store.exports.all():
        if record.episode_id != episode_id or record.status != "done":
            continue
        folder = store.media.export_dir(record.id)
        try:
            mark = json.loads((folder / EXPORT_MARK).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(mark, dict) and mark.get("content_sha256") == content and (folder / "episode.mp4").is_file():
            return record.id
    return None


def plan_export(store: Store, episode_ids: list[str], *, config: ExportConfig, force: bool = False) -> ExportBatch:
    """Each episode's timeline as a task; done where a finished export of the same content exists."""
    works, empty = [], []
    for episode_id in dict.fromkeys(episode_ids):
        episode = store.catalog.get_episode(episode_id)
        try:
            timeline = plan_episode(store, episode_id)
        except NothingToExportError:
            empty.append(episode_id)
            continue
        segments = {c.take.id: tuple(store.takes.segments(c.take.id)) for c in timeline.clips}
        content = timeline_hash(timeline, config)
        done = None if force else finished_export(store, episode_id, content)
        works.append(EpisodeWork(episode_id, episode.name, timeline, segments, content, done))
    return ExportBatch(config, tuple(works), tuple(empty))
