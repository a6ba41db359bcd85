"""Series batches: scripts rendered and episodes exported on Ray or a process pool, one writer.

Every batch is checked against the single-process path (``record_script``, ``export_timeline``):
the same script gives the same decoded frames, the same samples and the same lines. Failures are
planted through a fault folder (``stream.batch.tasks.claim_fault``): a file reading ``raise``
makes one task attempt raise, ``exit`` kills its worker process.

Samples: espeak-ng would seed its voice jitter from the clock's second; ``lipsync/espeak.py``
gives it one fixed seed, so the same line said in another second, by another process, gives the
same samples.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream.batch.driver import BatchReport, export_series, render_series
from stream.batch.plan import parse_mark, plan_export, plan_render, read_entries
from stream.batch.runners import PoolRunner, Runner, run_tasks
from stream.export.jobs import ExportConfig, export_timeline
from stream.export.stitch import plan_episode
from stream.record.offline import RenderConfig, read_script
from stream.record.script_takes import record_script
from stream.store import BadInputError, Store
from stream.store.segments import read_take

CONFIG = RenderConfig(width_px=128, height_px=128)
SCRIPTS = {
    "ep01.txt": "MAYA: You're late.\nLEO: The bus.\n",
    "ep02.txt": "IRIS: Rain again.\n",
    "ep03.fountain": "INT. KITCHEN - NIGHT\n\nMAYA\nWho ate it?\n\nEXT. PARK - DAY\n\nZEB\nNot me.\n",
    "ep04.txt": "OMAR: Good night.\nSAM: Night.\n",
}
Decoded = dict[str, list[tuple[str, np.ndarray, np.ndarray, list[str]]]]  # episode -> scenes in order


class InlineRunner:
    """Runs each task in this process as it is submitted; can stop the batch like a Ctrl-C."""

    kind = "inline"
    workers = 2

    def __init__(self, *, interrupt_after: int | None = None) -> None:
        self._finished: list[tuple[Any, Any, BaseException | None]] = []
        self._interrupt_after = interrupt_after
        self.delivered = 0
        self.cancelled = False

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        handle = object()
        try:
            self._finished.append((handle, fn(arg), None))
        except Exception as exc:  # noqa: BLE001 - handed back like a worker's failure
            self._finished.append((handle, None, exc))
        return handle

    def wait(self, handles: list[Any]) -> list[tuple[Any, Any, BaseException | None]]:
        if self._interrupt_after is not None and self.delivered >= self._interrupt_after:
            raise KeyboardInterrupt
        first = next(f for f in self._finished if f[0] in handles)
        self._finished.remove(first)
        self.delivered += 1
        return [first]

    def cancel(self) -> None:
        self.cancelled = True

    def close(self) -> None:
        pass


def _write_scripts(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in SCRIPTS.items():
        (folder / name).write_text(text)
    return folder


def _decode(store: Store, series_id: str) -> Decoded:
    out: Decoded = {}
    for episode in store.catalog.list_episodes(series_id):
        scenes = []
        for scene in store.catalog.list_scenes(episode.id):
            take = store.takes.playable(scene.id, scene.chosen_take_id)
            assert take is not None and take.status == "complete", (scene, take)
            frames, pcm = zip(*read_take(store, take), strict=True)
            scenes.append((scene.name, np.stack([f.to_ndarray() for f in frames]), np.concatenate(pcm),
                           [ln.text for ln in store.takes.lines(take.id)]))
        out[episode.name] = scenes
    return out


def _assert_same(got: Decoded, want: Decoded, *, samples: bool = True) -> None:
    assert list(got) == list(want)
    for name in want:
        assert [s[0] for s in got[name]] == [s[0] for s in want[name]], name
        for (scene, frames, pcm, lines), (_, frames0, pcm0, lines0) in zip(got[name], want[name], strict=True):
            assert frames.shape == frames0.shape and np.array_equal(frames, frames0), f"{name} / {scene}: frames differ"
            assert pcm.shape == pcm0.shape, f"{name} / {scene}: sample counts differ"
            if samples:
                assert np.array_equal(pcm, pcm0), f"{name} / {scene}: samples differ"
            assert lines == lines0


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_scripts(tmp_path_factory.mktemp("scripts"))


@pytest.fixture(scope="module")
def reference(scripts: Path, tmp_path_factory: pytest.TempPathFactory, speech: Any) -> Decoded:
    """The single-process render of the same scripts: each script's scenes into its episode."""
    store = Store.open(tmp_path_factory.mktemp("reference"))
    series = store.catalog.create_series("Reference")
    for path in sorted(scripts.iterdir()):
        episode = store.catalog.create_episode(series.id, path.stem)
        record_script(store, read_script(path), episode_id=episode.id, config=CONFIG, speech=speech)
    decoded = _decode(store, series.id)
    store.close()
    return decoded


def _render(store: Store, series_id: str, scripts: Path, runner: Runner, **kwargs: Any) -> BatchReport:
    force = kwargs.pop("force", False)
    batch = plan_render(store, series_id, read_entries(scripts), config=CONFIG, force=force)
    return render_series(store, batch, runner, **kwargs)


def _takes(store: Store) -> list[Any]:
    """Every take of every series."""
    c = store.catalog
    return [t for series in c.list_series() for e in c.list_episodes(series.id) for sc in c.list_scenes(e.id)
            for t in store.takes.for_scene(sc.id)]


def test_pool_batch_renders_what_one_process_renders_then_skips_it_and_redoes_a_changed_scene(
    tmp_path: Path, scripts: Path, reference: Decoded
) -> None:
    store = Store.open(tmp_path / "data")
    series = store.catalog.create_series("Harbour")
    runner = PoolRunner(workers=2)
    try:
        report = _render(store, series.id, scripts, runner)
        assert report.runner == "process pool" and report.failed == () and len(report.done) == 5
        assert report.skipped == () and report.retries == 0
        _assert_same(_decode(store, series.id), reference)
        marks = sorted(parse_mark(t.note)[1] for t in _takes(store))  # type: ignore[index]
        assert marks == ["ep01.txt#1", "ep02.txt#1", "ep03.fountain#1", "ep03.fountain#2", "ep04.txt#1"]

        again = _render(store, series.id, scripts, runner)
        assert again.done == () and len(again.skipped) == 5 and len(_takes(store)) == 5

        changed = _write_scripts(tmp_path / "changed")
        (changed / "ep02.txt").write_text("IRIS: Sun at last.\n")
        before = {e.name: [s.id for s in store.catalog.list_scenes(e.id)] for e in store.catalog.list_episodes(series.id)}
        redo = _render(store, series.id, changed, runner)
        assert [d["key"] for d in redo.done] == ["ep02.txt#1"] and len(redo.skipped) == 4
        after = {e.name: [s.id for s in store.catalog.list_scenes(e.id)] for e in store.catalog.list_episodes(series.id)}
        assert after == before  # the new take went into the scene that held the old one
        (scene_id,) = before["ep02"]
        scene = store.catalog.get_scene(scene_id)
        assert scene.chosen_take_id == redo.done[0]["take_id"] and len(store.takes.for_scene(scene_id)) == 2
        assert [ln.text for ln in store.takes.lines(redo.done[0]["take_id"])] == ["Sun at last."]
    finally:
        runner.close()
        store.close()


def test_pool_retries_a_task_that_raises_and_one_whose_worker_dies(
    tmp_path: Path, scripts: Path, reference: Decoded
) -> None:
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "a").write_text("raise")
    (faults / "b").write_text("exit")
    store = Store.open(tmp_path / "data")
    series = store.catalog.create_series("Harbour")
    runner = PoolRunner(workers=2)
    try:
        report = _render(store, series.id, scripts, runner, fault_dir=faults)
    finally:
        runner.close()
    assert list(faults.iterdir()) == []  # both faults were claimed
    # The raise costs one attempt; the dead worker breaks the pool under every task in flight.
    assert report.failed == () and len(report.done) == 5 and report.retries >= 2
    _assert_same(_decode(store, series.id), reference)
    assert {t.status for t in _takes(store)} == {"complete"} and len(_takes(store)) == 5
    store.close()


def test_a_task_that_keeps_failing_is_reported_and_leaves_nothing_then_lands_in_script_order(
    tmp_path: Path, scripts: Path, reference: Decoded
) -> None:
    faults = tmp_path / "faults"
    faults.mkdir()
    for name in ("a", "b"):
        (faults / name).write_text("raise ep03.fountain#1")  # both of its attempts fail
    store = Store.open(tmp_path / "data")
    series = store.catalog.create_series("Harbour")
    report = _render(store, series.id, scripts, InlineRunner(), fault_dir=faults, retries=1)
    assert [f["key"] for f in report.failed] == ["ep03.fountain#1"] and "injected fault" in report.failed[0]["error"]
    assert len(report.done) == 4 and report.retries == 1
    (ep03,) = [e for e in store.catalog.list_episodes(series.id) if e.name == "ep03"]
    assert [s.name for s in store.catalog.list_scenes(ep03.id)] == ["EXT. PARK - DAY"]  # its scene went with its take
    assert sorted(p.name for p in store.media.takes_dir.iterdir()) == sorted(t.id for t in _takes(store))

    store.catalog.create_scene(ep03.id, "Cold open", position=0)  # a scene of the studio's own
    rerun = _render(store, series.id, scripts, InlineRunner())
    assert [d["key"] for d in rerun.done] == ["ep03.fountain#1"] and len(rerun.skipped) == 4
    assert [s.name for s in store.catalog.list_scenes(ep03.id)] == ["Cold open", "INT. KITCHEN - NIGHT", "EXT. PARK - DAY"]
    store.close()


def test_an_interrupted_batch_leaves_nothing_that_looks_done_and_a_rerun_finishes_it(
    tmp_path: Path, scripts: Path, reference: Decoded
) -> None:
    store = Store.open(tmp_path / "data")
    series = store.catalog.create_series("Harbour")
    runner = InlineRunner(interrupt_after=2)
    with pytest.raises(KeyboardInterrupt):
        _render(store, series.id, scripts, runner)
    assert runner.cancelled
    takes = _takes(store)
    assert len(takes) == 2 and {t.status for t in takes} == {"complete"}  # committed ones only
    assert all(parse_mark(t.note) for t in takes)
    scenes = [s for e in store.catalog.list_episodes(series.id) for s in store.catalog.list_scenes(e.id)]
    assert sorted(s.chosen_take_id or "" for s in scenes) == sorted(t.id for t in takes)  # no empty scene
    assert sorted(p.name for p in store.media.takes_dir.iterdir()) == sorted(t.id for t in takes)
    store.close()

    store = Store.open(tmp_path / "data")
    rerun = _render(store, series.id, scripts, InlineRunner())
    assert len(rerun.done) == 3 and len(rerun.skipped) == 2
    _assert_same(_decode(store, series.id), reference)
    store.close()


def test_a_rerun_after_a_killed_driver_reuses_its_empty_scenes(tmp_path: Path, scripts: Path, reference: Decoded) -> None:
    store = Store.open(tmp_path / "data")
    series = store.catalog.create_series("Harbour")
    episodes = {name: store.catalog.create_episode(series.id, name).id for name in ("ep01", "ep02", "ep03", "ep04")}
    left = {}  # what a driver killed mid-batch leaves: new scenes, each with a take still recording
    for name, label in (("ep01", "Scene 1"), ("ep03", "INT. KITCHEN - NIGHT")):
        scene = store.catalog.create_scene(episodes[name], label)
        store.takes.begin(scene.id, None, source="render", width_px=128, height_px=128)
        left[name] = scene.id
    store.close()

    store = Store.open(tmp_path / "data")  # recovery closes those takes: recovered, no frames
    report = _render(store, series.id, scripts, InlineRunner())
    assert len(report.done) == 5 and report.failed == ()
    _assert_same(_decode(store, series.id), reference)
    assert [s.id for s in store.catalog.list_scenes(episodes["ep01"])] == [left["ep01"]]
    assert store.catalog.list_scenes(episodes["ep03"])[0].id == left["ep03"]
    assert [t.name for t in _takes(store)] == ["Take 1"] * 5  # the frameless takes were cleared
    store.close()


def test_pool_export_writes_what_episode_export_writes_and_skips_it_when_done(
    tmp_path: Path, scripts: Path
) -> None:
    store = Store.open(tmp_path / "data")
    series = store.catalog.create_series("Harbour")
    _render(store, series.id, scripts, InlineRunner())
    episodes = store.catalog.list_episodes(series.id)
    empty = store.catalog.create_episode(series.id, "Not shot yet")
    out = tmp_path / "out"
    out.mkdir()
    config = ExportConfig()
    batch = plan_export(store, [e.id for e in episodes] + [empty.id], config=config)
    assert batch.empty == (empty.id,) and len(batch.todo) == 4
    runner = PoolRunner(workers=2)
    try:
        report = export_series(store, batch, runner, out_dir=out)
    finally:
        runner.close()
    assert report.failed == () and len(report.done) == 4
    for episode in episodes:
        single = tmp_path / f"single-{episode.id}.mp4"
        export_timeline(store, plan_episode(store, episode.id), single, config=config)
        for suffix in (".mp4", ".srt", ".vtt"):
            assert (out / f"{episode.id}{suffix}").read_bytes() == single.with_suffix(suffix).read_bytes(), suffix
        assert json.loads((out / f"{episode.id}.otio").read_text())["name"] == f"episode {episode.name!r}"
    records = [r for r in store.exports.all() if r.status == "done"]
    assert len(records) == 4 and all(r.frames > 0 for r in records)

    (out / f"{episodes[0].id}.mp4").unlink()
    again = export_series(store, plan_export(store, [e.id for e in episodes], config=config), InlineRunner(), out_dir=out)
    assert again.done == () and len(again.skipped) == 4 and (out / f"{episodes[0].id}.mp4").is_file()
    store.close()


def test_a_list_file_maps_scripts_to_episodes_by_id_or_name(tmp_path: Path) -> None:
    folder = _write_scripts(tmp_path / "scripts")
    store = Store.open(tmp_path / "data")
    series = store.catalog.create_series("Harbour")
    pilot = store.catalog.create_episode(series.id, "Pilot")
    listing = folder / "series.txt"
    listing.write_text(f"# script  episode\nep01.txt {pilot.id}\n./ep02.txt The Storm  # a name\n"
                       f"'ep04.txt' \"The Storm\"\n")
    entries = read_entries(listing)
    assert [(e.key, e.episode) for e in entries] == [
        ("ep01.txt", pilot.id), ("ep02.txt", "The Storm"), ("ep04.txt", "The Storm")]
    batch = plan_render(store, series.id, entries, config=CONFIG)
    assert [e.name for e in store.catalog.list_episodes(series.id)] == ["Pilot", "The Storm"]
    assert [(w.key, w.done) for w in batch.scenes] == [("ep01.txt#1", False), ("ep02.txt#1", False), ("ep04.txt#1", False)]
    assert {c.name for c in store.catalog.list_characters(series.id)} >= {"MAYA", "LEO", "IRIS", "OMAR", "SAM"}

    other = store.catalog.create_episode(store.catalog.create_series("Other").id, "Elsewhere")
    for text, words in (("ep01.txt\n", "give a script and its episode"), ("nope.txt Pilot\n", "does not exist"),
                        (f"ep01.txt {other.id}\n", "belongs to series"), ("ep01.txt A\nep01.txt A\n", "listed twice"),
                        ("'ep01.txt Pilot\n", "No closing quotation")):
        listing.write_text(text)
        with pytest.raises(BadInputError, match=words):
            plan_render(store, series.id, read_entries(listing), config=CONFIG)
    with pytest.raises(BadInputError, match="holds no script"):
        read_entries(tmp_path / "data" / "media")
    store.close()


def test_run_tasks_retries_then_gives_up_and_pulls_tasks_only_as_slots_free() -> None:
    pulled: list[int] = []
    calls: dict[int, int] = {}

    def tasks() -> Iterator[int]:
        for i in range(5):
            pulled.append(i)
            yield i

    def flaky(i: int) -> int:
        calls[i] = calls.get(i, 0) + 1
        if i == 1 or (i == 3 and calls[i] == 1):
            raise RuntimeError(f"task {i} broke")
        return i * 10

    runner = InlineRunner()
    seen = []
    for fin in run_tasks(runner, flaky, tasks(), retries=2, in_flight_per_worker=1):
        seen.append((fin.index, fin.result, fin.error, fin.attempts))
        assert len(pulled) <= fin.index + 3  # at most two (the workers) ahead of what has finished
    assert sorted(seen) == [(0, 0, None, 1), (1, None, "RuntimeError: task 1 broke", 3), (2, 20, None, 1),
                            (3, 30, None, 2), (4, 40, None, 1)]


def test_series_cli_renders_on_local_processes_and_says_once_that_ray_would_span_machines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stream.batch import runners
    from stream.tools.cli import main

    monkeypatch.setattr(runners, "ray_available", lambda: False)
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "pilot.txt").write_text(SCRIPTS["ep02.txt"])
    data = tmp_path / "data"
    store = Store.open(data)
    series_id = store.catalog.create_series("Harbour").id
    store.close()
    args = ["series", "render", series_id, str(folder), "--data-dir", str(data), "--size", "128x128", "--workers", "1", "-q"]
    assert main([*args, "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["runner"] == "process pool" and [d["key"] for d in report["done"]] == ["pilot.txt#1"]
    assert err.count("lets a batch span machines") == 1
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert out.startswith("nothing to do: 1 scenes done already") and err == ""
    assert main(["series", "render", series_id, str(folder), "--data-dir", str(data), "--address", "auto", "--no-ray"]) == 2


def test_ray_batch_renders_what_one_process_renders_retries_and_skips(
    tmp_path: Path, scripts: Path, reference: Decoded
) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'talkie[ray]'); the process pool tests cover the batch")
    from stream.batch.runners import RayRunner

    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "a").write_text("raise")
    (faults / "b").write_text("exit")
    store = Store.open(tmp_path / "data")
    series = store.catalog.create_series("Harbour")
    runner = RayRunner(workers=2)
    try:
        assert runner.workers == 2
        report = _render(store, series.id, scripts, runner, fault_dir=faults)
        assert report.runner == "ray" and report.failed == () and len(report.done) == 5 and report.retries == 2
        assert list(faults.iterdir()) == []
        _assert_same(_decode(store, series.id), reference)
        again = _render(store, series.id, scripts, runner)
        assert again.done == () and len(again.skipped) == 5 and len(_takes(store)) == 5
        episodes = [e.id for e in store.catalog.list_episodes(series.id)]
        exported = export_series(store, plan_export(store, episodes[:2], config=ExportConfig()), runner)
        assert exported.runner == "ray" and len(exported.done) == 2 and exported.failed == ()
    finally:
        runner.close()
        store.close()


def test_batch_samples_are_the_single_process_samples(tmp_path: Path, scripts: Path, reference: Decoded) -> None:
    import time

    time.sleep(1.0)  # another second than the reference's
    store = Store.open(tmp_path / "data")
    series = store.catalog.create_series("Harbour")
    runner = PoolRunner(workers=1)
    try:
        _render(store, series.id, scripts, runner)
    finally:
        runner.close()
    _assert_same(_decode(store, series.id), reference, samples=True)
    store.close()
