"""The ``talkie`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from lipsync.espeak import UnknownLanguageError
from lipsync.script import ScriptError
from lipsync.timeline import TimelineError
from stream.mp4 import OutputError

# ValueError covers the typed config errors (ServerConfigError, bad sizes, unknown sets).
USER_ERRORS = (ScriptError, UnknownLanguageError, TimelineError, OutputError, ValueError)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x512, got {text!r}") from None
    return w, h


def _alias(text: str) -> tuple[str, str]:
    name, sep, canonical = text.partition("=")
    if not sep or not name.strip() or not canonical.strip():
        raise ValueError(f"--alias must look like MOM=MAYA, got {text!r}")
    return name.strip(), canonical.strip()


def _cmd_render(args: argparse.Namespace) -> int:
    from stream.offline import RenderConfig, read_script, render_script

    width, height = args.size
    config = RenderConfig(
        width_px=width, height_px=height, set_name=args.set, language=args.lang, encoding_preset=args.preset
    )
    aliases = dict(_alias(a) for a in args.alias)
    script = read_script(Path(args.script), aliases=aliases)
    result = render_script(script, Path(args.output), config=config, progress=not args.quiet)
    print(
        f"wrote {result.path} ({result.n_frames} frames, {result.n_samples / 48000:.2f} s), "
        f"{result.srt_path.name}, {result.vtt_path.name}"
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from stream.app import create_app
    from stream.config import ServerConfig
    from stream.live import LiveConfig

    width, height = args.size
    config = ServerConfig(
        host=args.host,
        port=args.port,
        token=args.token or os.environ.get("TALKIE_TOKEN") or None,
        data_dir=Path(args.data_dir),
        max_sessions=args.max_sessions,
        live=LiveConfig(width_px=width, height_px=height, set_name=args.set),
    )
    app = create_app(config)
    print(f"talkie serving on http://{config.host}:{config.port}/ (data in {config.data_dir})", flush=True)
    uvicorn.run(
        app, host=config.host, port=config.port, loop="uvloop", log_level="warning",
        ws_max_size=config.max_message_bytes,
    )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from stream import bench

    if args.what == "render":
        width, height = args.size
        report = bench.bench_render(seconds=args.seconds, width_px=width, height_px=height, preset=args.preset)
    elif args.what == "stream":
        from stream.bench_stream import bench_stream

        report = bench_stream(seconds=args.seconds if args.seconds != 60.0 else 6.0, lines=args.lines)
    else:
        raise ValueError(f"unknown benchmark {args.what!r}")
    print(json.dumps(report, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkie", description="Lip-synced talking-picture scenes.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="render a script (Fountain or NAME: line) to MP4 + SRT + VTT")
    render.add_argument("script", help="script file (.fountain or .txt)")
    render.add_argument("-o", "--output", required=True, help="output .mp4 path")
    render.add_argument("--size", type=_size, default=(512, 512), help="WIDTHxHEIGHT, up to 1280x720")
    render.add_argument("--set", default="studio", help="background set (studio, kitchen, park, office, #rrggbb)")
    render.add_argument("--lang", default="en-us", help="language for characters not in the cast")
    render.add_argument(
        "--alias", action="append", default=[], metavar="NAME=CHARACTER",
        help="another name for a character, e.g. MOM=MAYA (repeatable)",
    )
    render.add_argument("--preset", default="ultrafast", help="x264 preset (slower presets make smaller files)")
    render.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    render.set_defaults(func=_cmd_render)

    serve = sub.add_parser("serve", help="start the live server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (non-loopback needs --token)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--token", default=None, help="access token (or TALKIE_TOKEN)")
    serve.add_argument("--data-dir", default="data", help="where recordings and the store live")
    serve.add_argument("--max-sessions", type=int, default=8)
    serve.add_argument("--size", type=_size, default=(512, 512), help="WIDTHxHEIGHT of the scene")
    serve.add_argument("--set", default="studio", help="background set")
    serve.set_defaults(func=_cmd_serve)

    bench = sub.add_parser("bench", help="print measured figures as JSON")
    bench.add_argument("what", choices=["render", "stream"])
    bench.add_argument("--seconds", type=float, default=60.0, help="render: media length; stream: seconds per level (6)")
    bench.add_argument("--lines", type=int, default=20, help="stream: lines for the latency figures")
    bench.add_argument("--size", type=_size, default=(512, 512))
    bench.add_argument("--preset", default="ultrafast", help="x264 preset")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except USER_ERRORS as exc:
        print(f"talkie: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
