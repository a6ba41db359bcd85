"""The episode store: migrations, ordering, names, the series' cast, crash recovery, deletion."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support import solid, synthetic_take, tone

from avatar.spec import Cast
from lipsync.timebase import SAMPLES_PER_FRAME
from stream.store import BadInputError, ConflictError, NotFoundError, StorageError, Store
from stream.store.cast import keep_characters, series_cast, spec_from_json, spec_to_json
from stream.store.schema import SCHEMA_VERSION
from stream.store.segments import SegmentWriter


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(tmp_path / "data")
    yield opened
    opened.close()


def episode_with_scenes(store: Store, n: int = 3) -> tuple[str, list[str]]:
    series = store.catalog.create_series("Harbour Lights")
    episode = store.catalog.create_episode(series.id, "Pilot")
    return episode.id, [store.catalog.create_scene(episode.id, f"Scene {i}").id for i in range(n)]


def test_migrations_are_versioned_wal_and_a_newer_database_is_refused(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    assert store.db.version == SCHEMA_VERSION
    store.close()
    conn = sqlite3.connect(tmp_path / "talkie.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    Store.open(tmp_path).close()  # reopening applies nothing twice
    conn = sqlite3.connect(tmp_path / "talkie.db")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer than this talkie"):
        Store.open(tmp_path)


def test_episodes_and_scenes_keep_their_order_when_moved_inserted_and_deleted(store: Store) -> None:
    series = store.catalog.create_series("S")
    eps = [store.catalog.create_episode(series.id, f"Episode {i}") for i in range(4)]
    store.catalog.move("episode", eps[3].id, 0)
    first = store.catalog.create_episode(series.id, "Cold open", position=1)
    names = [e.name for e in store.catalog.list_episodes(series.id)]
    assert names == ["Episode 3", "Cold open", "Episode 0", "Episode 1", "Episode 2"]
    store.delete("episode", first.id)
    listed = store.catalog.list_episodes(series.id)
    assert [e.position for e in listed] == [0, 1, 2, 3]
    with pytest.raises(BadInputError, match="from 0 to 3"):
        store.catalog.move("episode", eps[0].id, 4)
    _, scenes = episode_with_scenes(store)
    store.catalog.move("scene", scenes[0], 2)
    episode_id = store.catalog.get_scene(scenes[0]).episode_id
    assert [s.id for s in store.catalog.list_scenes(episode_id)] == [scenes[1], scenes[2], scenes[0]]


@pytest.mark.parametrize("name", ["EP/1", "a\\b", "", "   ", "x" * 201, "bad\x00name", "tab\tname", ".."])
def test_bad_names_are_refused_with_a_reason(store: Store, name: str) -> None:
    with pytest.raises(BadInputError) as info:
        store.catalog.create_series(name)
    assert info.value.code == "bad_name" and "series name" in str(info.value)


def test_names_are_labels_and_media_folders_are_ids(store: Store) -> None:
    series = store.catalog.create_series("Ünïcode: «Épisode» #1 — ok?")
    episode = store.catalog.create_episode(series.id, "...and then: *everything*")
    scene = store.catalog.create_scene(episode.id, "~root")
    take = synthetic_take(store, scene.id, colour=(9, 9, 9), freq_hz=300, frames=3, name="take * 1")
    assert [p.name for p in store.media.takes_dir.iterdir()] == [take.id]
    assert store.catalog.get_series(series.id).name.startswith("Ünïcode")


def test_unknown_ids_raise_not_found(store: Store) -> None:
    for call in (
        lambda: store.catalog.get_episode("ep_0000000000000000"),
        lambda: store.catalog.create_episode("ser_0000000000000000", "x"),
        lambda: store.catalog.list_scenes("ep_0000000000000000"),
        lambda: store.takes.get("tk_0000000000000000"),
        lambda: store.takes.begin("sc_0000000000000000", None, source="live", width_px=8, height_px=8),
        lambda: store.delete("scene", "sc_0000000000000000"),
    ):
        with pytest.raises(NotFoundError) as info:
            call()
        assert info.value.http_status == 404 and "0000000000000000" in str(info.value)


def test_a_series_keeps_its_characters_look_and_voice(store: Store) -> None:
    series = store.catalog.create_series("S")
    builtin = Cast.builtin()
    maya, newcomer = builtin.resolve("MAYA"), builtin.resolve("Bartholomew")
    keep_characters(store.catalog, series.id, [maya, newcomer])
    assert spec_from_json("MAYA", spec_to_json(maya)) == maya
    cast = series_cast(store.catalog, series.id)
    assert cast.resolve("bartholomew") == newcomer
    # A custom look for LEO, kept by the series, wins over the built-in one in every episode.
    leo = replace(builtin.resolve("LEO"), seed=7)
    store.catalog.add_character(series.id, "LEO", spec_to_json(leo))
    assert series_cast(store.catalog, series.id).resolve("LEO") == leo
    with pytest.raises(ConflictError, match="does not look or sound like") as info:
        keep_characters(store.catalog, series.id, [builtin.resolve("LEO")])
    assert info.value.code == "cast_mismatch"
    with pytest.raises(ConflictError, match="already has a character called MAYA"):
        store.catalog.add_character(series.id, "maya", spec_to_json(maya))


def test_choosing_a_take_checks_it_belongs_to_the_scene(store: Store) -> None:
    _, (a, b, _) = episode_with_scenes(store)
    take_a = synthetic_take(store, a, colour=(200, 0, 0), freq_hz=440, frames=5)
    with pytest.raises(BadInputError, match="another scene"):
        store.catalog.update_scene(b, chosen_take_id=take_a.id)
    recording = store.takes.begin(a, "still going", source="live", width_px=8, height_px=8)
    with pytest.raises(ConflictError, match="still recording"):
        store.catalog.update_scene(a, chosen_take_id=recording.id)
    with pytest.raises(ConflictError, match="still recording"):
        store.delete("scene", a)
    assert store.takes.playable(a, None) == take_a  # the latest finished take plays by default


def test_a_crash_mid_take_recovers_whole_segments_and_sweeps_unindexed_files(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    _, (scene, *_) = episode_with_scenes(store, 1)
    take = store.takes.begin(scene, None, source="live", width_px=64, height_px=64)
    writer = SegmentWriter(store, take)
    pcm = tone(500, 50 * SAMPLES_PER_FRAME)
    writer.line_started("L1", "MAYA", "a line cut by the crash", 5 * SAMPLES_PER_FRAME)
    writer.line_started("L2", "LEO", "a line that starts after the last segment", 45 * SAMPLES_PER_FRAME)
    for k in range(50):  # 2.5 segments of 20 frames: the last half segment is never committed
        writer.video(k, solid((k * 5, 0, 0)))
        writer.audio(k * SAMPLES_PER_FRAME, pcm[k * SAMPLES_PER_FRAME : (k + 1) * SAMPLES_PER_FRAME])
    folder = store.media.take_dir(take.id)
    (folder / "000002.pcm").write_bytes(b"renamed just before the kill, never indexed")
    orphan = store.media.takes_dir / "tk_00000000000000ff"
    orphan.mkdir()
    (orphan / "000000.pcm").write_bytes(b"x")
    store.close()  # no finish: as if the process died here

    store = Store.open(tmp_path)
    recovered = store.takes.get(take.id)
    assert recovered.status == "recovered" and "server stopped" in (recovered.note or "")
    assert recovered.frames == 40 and recovered.samples == 40 * SAMPLES_PER_FRAME
    assert sorted(p.name for p in folder.iterdir()) == ["000000.h264", "000000.pcm", "000001.h264", "000001.pcm"]
    assert not orphan.exists()
    lines = store.takes.lines(take.id)
    assert [(ln.line_id, ln.end_sample) for ln in lines] == [("L1", 40 * SAMPLES_PER_FRAME)]
    from stream.store.segments import read_take

    played = list(read_take(store, recovered))
    assert len(played) == 40
    assert np.array_equal(np.concatenate([a for _, a in played]), pcm[: 40 * SAMPLES_PER_FRAME])
    assert store.integrity_check() == "ok"
    store.close()


def test_a_second_process_on_the_same_data_dir_leaves_recovery_to_the_first(tmp_path: Path) -> None:
    first = Store.open(tmp_path)
    _, (scene, *_) = episode_with_scenes(first, 1)
    take = first.takes.begin(scene, None, source="live", width_px=8, height_px=8)
    second = Store.open(tmp_path)  # e.g. `talkie episode` beside a running server
    assert first.owns_lock and not second.owns_lock
    assert second.takes.get(take.id).status == "recording"
    second.close()
    first.close()


def test_deleting_removes_the_media_of_every_take_below(store: Store) -> None:
    episode_id, (a, b, _) = episode_with_scenes(store)
    takes = [synthetic_take(store, s, colour=(0, 90, 0), freq_hz=300, frames=4) for s in (a, b)]
    assert all(store.media.take_dir(t.id).is_dir() for t in takes)
    assert sorted(store.delete("episode", episode_id)) == sorted(t.id for t in takes)
    assert not any(store.media.take_dir(t.id).exists() for t in takes)
    with pytest.raises(NotFoundError):
        store.takes.get(takes[0].id)


def test_an_unusable_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match=f"cannot use data directory {blocker}"):
        Store.open(blocker / "data")
