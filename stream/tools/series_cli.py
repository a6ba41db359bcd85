"""``talkie series …``: a whole series rendered or exported as one batch, on Ray or local processes.

    talkie series render SERIES_ID SCRIPTS    every scene of every script → a scene and take of its episode
    talkie series export SERIES_ID            every episode (or --episode ID …) → MP4 + SRT + VTT + OTIO

SCRIPTS is a folder (each script becomes the episode named after its file) or a list file (a
script and its episode, an ``ep_…`` id or a name, on each line). Each scene, or episode, is one
task. With Ray installed (``pip install 'talkie[ray]'``) tasks run on a local Ray of
``--workers`` CPUs (default: every core) or on the cluster at ``--address``; without it, or with
``--no-ray``, on a local process pool. Work already done is skipped; ``--force`` does it again.
``TALKIE_BATCH_FAULTS=DIR`` plants failures for trying retries (see ``stream.batch.tasks``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream.batch.driver import BatchReport
    from stream.batch.runners import Runner


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x512, got {text!r}") from None
    return w, h


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("series_id")
    parser.add_argument("--data-dir", default="data", help="the store (shared storage when workers are on several machines)")
    parser.add_argument("--workers", type=int, default=None, help="tasks at once (default: every core; with --address: the cluster's CPUs)")
    parser.add_argument("--address", default=None, help="join this Ray cluster (e.g. ray://head:10001 or auto) instead of a local one")
    parser.add_argument("--no-ray", action="store_true", help="run on a local process pool even when Ray is installed")
    parser.add_argument("--retries", type=int, default=2, help="runs again of a task that fails or whose worker dies")
    parser.add_argument("--force", action="store_true", help="do again what is done already")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def add_parser(sub: Any) -> None:
    """Register ``series`` and its subcommands on the top-level subparsers."""
    series = sub.add_parser("series", help="render or export a whole series as a batch (Ray or local processes)")
    cmds = series.add_subparsers(dest="series_command", required=True)
    render = cmds.add_parser("render", help="render scripts into a series' episodes as scenes and takes")
    _common(render)
    render.add_argument("scripts", help="a folder of scripts (one episode each) or a list file: SCRIPT EPISODE per line")
    render.add_argument("--size", type=_size, default=(512, 512), help="WIDTHxHEIGHT, up to 1280x720")
    render.add_argument("--set", default="studio", help="set of scenes whose heading names none")
    render.add_argument("--lang", default="en-us", help="language for characters not in the cast")
    render.add_argument("--backend", choices=["rig", "neural"], default="rig", help="neural: trained mouth models repaint the rig's mouths")
    render.add_argument(
        "--voice-backend", choices=["natural", "espeak"], default="natural",
        help="espeak: every line by espeak-ng (the fast path) instead of the characters' natural voices",
    )
    export = cmds.add_parser("export", help="export a series' episodes to MP4 + SRT + VTT + OTIO")
    _common(export)
    export.add_argument("--episode", action="append", default=[], metavar="ID", help="only this episode (repeatable)")
    export.add_argument("-o", "--output-dir", default=None, help="also put each episode's files here as <episode id>.mp4 …")
    export.add_argument("--preset", default="veryfast", help="x264 preset")
    series.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.no_ray and args.address:
        raise ValueError("--address joins a Ray cluster; it cannot go with --no-ray")
    if args.retries < 0:
        raise ValueError(f"--retries must be 0 or more, got {args.retries}")


def _runner(args: argparse.Namespace, *, idle: bool) -> Runner:
    """The runner for the batch; with nothing to do, one that starts nothing."""
    from stream.batch.runners import PoolRunner, make_runner, ray_available

    if idle:
        return PoolRunner(workers=1)  # its pool starts at the first task: never, here
    if not args.no_ray and not ray_available() and not args.address:
        print(
            "talkie: Ray is not installed; running on local processes (pip install 'talkie[ray]' lets a batch span machines)",
            file=sys.stderr,
        )
    return make_runner(workers=args.workers, address=args.address, use_ray=False if args.no_ray else None)


def _render(args: argparse.Namespace, store: Any, faults: Path | None) -> BatchReport:
    from stream.batch.driver import render_series
    from stream.batch.plan import plan_render, read_entries
    from stream.record.offline import RenderConfig

    width, height = args.size
    config = RenderConfig(
        width_px=width, height_px=height, set_name=args.set, language=args.lang, backend=args.backend,
        voice_backend=args.voice_backend,
    )
    batch = plan_render(store, args.series_id, read_entries(Path(args.scripts)), config=config, force=args.force)
    runner = _runner(args, idle=not batch.todo)
    try:
        return render_series(store, batch, runner, retries=args.retries, fault_dir=faults, progress=not args.quiet)
    finally:
        runner.close()


def _export(args: argparse.Namespace, store: Any, faults: Path | None) -> BatchReport:
    from stream.batch.driver import export_series
    from stream.batch.plan import plan_export
    from stream.export.jobs import ExportConfig

    episodes = args.episode or [e.id for e in store.catalog.list_episodes(args.series_id)]
    for episode_id in args.episode:
        if store.catalog.get_episode(episode_id).series_id != args.series_id:
            raise ValueError(f"episode {episode_id} is not in series {args.series_id}")
    batch = plan_export(store, episodes, config=ExportConfig(preset=args.preset), force=args.force)
    if batch.empty:
        print(f"talkie: episodes with no take to play (left out): {', '.join(batch.empty)}", file=sys.stderr)
    out_dir = Path(args.output_dir) if args.output_dir else None
    runner = _runner(args, idle=not batch.todo)
    try:
        return export_series(store, batch, runner, out_dir=out_dir, retries=args.retries, fault_dir=faults,
                             progress=not args.quiet)
    finally:
        runner.close()


def _summary(report: BatchReport) -> str:
    unit = "scene" if report.what == "render" else "episode"
    verb = "rendered" if report.what == "render" else "exported"
    if not report.done and not report.failed:
        lines = [f"nothing to do: {len(report.skipped)} {unit}s done already (--force does them again)"]
    else:
        rate = f", {report.media_s / report.wall_s:.1f}x real time" if report.wall_s > 0 and report.media_s else ""
        lines = [
            f"{verb} {len(report.done)} {unit}s ({report.media_s:.1f} s of media) in {report.wall_s:.1f} s on "
            f"{report.runner}, {report.workers} workers{rate}; {len(report.skipped)} done already; "
            f"{report.retries} retries; {len(report.failed)} failed"
        ]
    lines += [f"  failed: {f.get('key') or f.get('episode_id')}: {f['error']}" for f in report.failed]
    if report.what == "export":
        lines += [f"  {d['episode_id']}  {d['name']}: {d['mp4']}" for d in report.done]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from stream.store import Store

    _check(args)
    faults = Path(os.environ["TALKIE_BATCH_FAULTS"]) if os.environ.get("TALKIE_BATCH_FAULTS") else None
    store = Store.open(Path(args.data_dir))
    try:
        store.catalog.get_series(args.series_id)
        report = (_render if args.series_command == "render" else _export)(args, store, faults)
    finally:
        store.close()
    print(json.dumps(report.to_json(), indent=2, ensure_ascii=False) if args.json else _summary(report))
    return 1 if report.failed else 0
