"""The ``talkie`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lipsync.espeak import UnknownLanguageError
from lipsync.script import ScriptError
from lipsync.timeline import TimelineError
from stream.media.mp4 import OutputError
from stream.tools.episode_cli import add_parser as add_episode_parser
from stream.tools.series_cli import add_parser as add_series_parser

if TYPE_CHECKING:
    from lipsync.script import Script
    from stream.record.offline import RenderConfig

# Video-built models live apart from the rig's: the rig renderer loads every model in its folder.
RIG_MODELS_DIR = "lipsync/weights/neural"
VIDEO_MODELS_DIR = "data/avatars"

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
    from stream.record.offline import RenderConfig, read_script, render_script

    width, height = args.size
    config = RenderConfig(
        width_px=width, height_px=height, set_name=args.set, language=args.lang, encoding_preset=args.preset,
        backend=args.backend, neural_weights_dir=args.neural_weights, voice_backend=args.voice_backend,
        director=args.director,
    )
    if args.backend == "neural":  # measured worse than the rig: lipsync/neural/weights.py
        from lipsync.neural.weights import offered_models

        offered_models(args.neural_weights)
    aliases = dict(_alias(a) for a in args.alias)
    script = read_script(Path(args.script), aliases=aliases)
    cast = None
    if args.character:  # own characters: PNG art or photo folders (talkie avatar build --photo)
        from stream.tools.avatar_photo import cast_with

        cast = cast_with(args.character, data_dir=Path(args.data_dir), into=args.episode or args.scene)
    cast_file = Path(args.cast) if args.cast else Path(args.script).with_suffix(".cast")
    if args.cast or cast_file.is_file():  # pinned looks and voices: --cast FILE, or SCRIPT.cast beside it
        from avatar.spec import Cast
        from stream.record.offline import read_cast_file

        cast = read_cast_file(cast_file, cast=cast or Cast.builtin(), language=args.lang)
    if args.episode or args.scene:
        _render_into_store(args, script, config)
    if not args.output:
        if not (args.episode or args.scene):
            raise ValueError("give an output file (-o scene.mp4) and/or a store target (--episode ID or --scene ID)")
        return 0
    result = render_script(script, Path(args.output), config=config, progress=not args.quiet, cast=cast)
    cut = ""
    if result.shots:
        from stream.export.shots import write_shot_timeline

        otio_path = write_shot_timeline(
            result.path.with_suffix(".otio"), result.shots, result.events,
            n_frames=result.n_frames, media_name=result.path.name,
        )  # fmt: skip
        cut = f", {otio_path.name} ({len(result.shots)} shots)"
    print(
        f"wrote {result.path} ({result.n_frames} frames, {result.n_samples / 48000:.2f} s), "
        f"{result.srt_path.name}, {result.vtt_path.name}{cut}"
    )
    for cue, name in result.aliases:
        print(f"likely alias: {cue} contains {name}; merge them with --alias \"{cue}={name}\"")
    return 0


def _render_into_store(args: argparse.Namespace, script: Script, config: RenderConfig) -> None:
    from stream.record.script_takes import record_script
    from stream.store import Store

    store = Store.open(Path(args.data_dir))
    try:
        takes = record_script(
            store, script, episode_id=args.episode, scene_id=args.scene, config=config, progress=not args.quiet
        )
    finally:
        store.close()
    for take in takes:
        print(f"recorded take {take.id} into scene {take.scene_id} ({take.frames} frames, {take.duration_s:.2f} s)")


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from stream.live.config import LiveConfig, ServerConfig
    from stream.web.app import create_app

    width, height = args.size
    config = ServerConfig(
        host=args.host,
        port=args.port,
        token=args.token or os.environ.get("TALKIE_TOKEN") or None,
        allowed_hosts=tuple(args.allow_host),
        allowed_origins=tuple(args.allow_origin),
        data_dir=Path(args.data_dir),
        max_sessions=args.max_sessions,
        live=LiveConfig(voice=args.voice,
            **({} if args.draw_ahead is None else {"draw_ahead_characters": args.draw_ahead}),
            width_px=width, height_px=height, set_name=args.set,
            backend=args.backend, neural_weights_dir=args.neural_weights,
        ),
    )
    if args.backend == "neural":  # fail at startup, not in the first session
        from lipsync.neural.weights import load_weights_dir, offered_models

        offered_models(args.neural_weights)
        load_weights_dir(args.neural_weights)
    engine = None
    if args.character:  # user art: folders of layered PNGs with a character.json
        from avatar.custom import art_spec
        from avatar.spec import Cast
        from stream.live.engine import Engine

        cast = Cast.builtin()
        for folder in args.character:
            cast.add(art_spec(Path(folder)))
        engine = Engine(config, cast=cast)
    app = create_app(config, engine=engine)
    print(f"talkie serving on http://{config.host}:{config.port}/ (data in {config.data_dir})", flush=True)
    uvicorn.run(
        app, host=config.host, port=config.port, loop="uvloop", log_level="warning",
        ws_max_size=config.max_message_bytes,
    )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "render":
        from stream.tools.bench_render import bench_render

        width, height = args.size
        report = bench_render(
            seconds=args.seconds, width_px=width, height_px=height, preset=args.preset,
            voice_backend=args.voice_backend, director=args.director,
        )
    elif args.what == "voice":
        from stream.tools.bench_voice import bench_voice

        report = bench_voice(lines=args.lines if args.lines != 20 else 10, render_seconds=args.seconds)
    elif args.what == "face":
        from stream.tools.bench_face import bench_face

        plot = args.plot if args.plot != "bench_model.png" else "bench_face.png"
        report = bench_face(plot=plot, artefacts=Path("test-artifacts/face"))
    elif args.what == "stream":
        from stream.tools.bench_stream import bench_stream

        report = bench_stream(
            seconds=args.seconds if args.seconds != 60.0 else 6.0, lines=args.lines, backend=args.backend
        )
    elif args.what == "walk-on":
        from stream.tools.bench_stream import bench_walk_on

        report = bench_walk_on(trials=5)
    elif args.what == "export":
        from stream.tools.bench_export import bench_export

        report = bench_export(takes=args.takes, episode_s=args.seconds if args.seconds != 60.0 else 600.0)
    elif args.what == "audio":
        from stream.tools.bench_audio import bench_audio

        if (args.conversation is None) != (args.rttm is None):
            raise ValueError("--conversation and --rttm go together: a two-speaker recording and its RTTM turns")
        report = bench_audio(
            conversation=Path(args.conversation) if args.conversation else None,
            rttm=Path(args.rttm) if args.rttm else None,
        )
    elif args.what == "soak":
        from stream.tools.bench_soak import bench_soak

        report = bench_soak(cycles=args.cycles, minutes=args.minutes)
    elif args.what == "series":
        from stream.tools.bench_series import bench_series

        width, height = args.size
        report = bench_series(seconds=args.seconds, width_px=width, height_px=height, voice_backend=args.voice_backend)
    elif args.what == "model":
        from stream.tools.bench_model import bench_shipped_model

        report = bench_shipped_model(
            weights_dir=args.neural_weights, plot_path=Path(args.plot), compile=args.compile
        )
    elif args.what == "video-character":
        from stream.tools.bench_video_character import bench_video_character

        if not args.character:
            raise ValueError("bench video-character needs --character FOLDER (made by `talkie avatar character`)")
        width, height = args.size
        report = bench_video_character(Path(args.character), width_px=width, height_px=height)
    else:
        raise ValueError(f"unknown benchmark {args.what!r}")
    print(json.dumps(report, indent=2))
    return 0


def _cmd_avatar_build(args: argparse.Namespace) -> int:
    if args.photo:
        from stream.tools.avatar_photo import build_photo_command

        return build_photo_command(args)
    if args.video:
        return _cmd_avatar_build_video(args)
    if args.face_box:
        raise ValueError("--face-box goes with --video")
    from avatar.spec import Cast
    from stream.tools.avatar_build import BuildConfig, build_model

    cast = Cast.builtin()
    names = [spec.name for spec in cast] if args.all else [n.upper() for n in args.characters]
    if not names:
        raise ValueError("name the characters to build (e.g. MAYA), or pass --all")
    specs = []
    for name in names:
        spec = cast.get(name)
        if spec is None:
            raise ValueError(f"{name!r} is not a built-in character; known: {', '.join(s.name for s in cast)}")
        specs.append(spec)
    model_name = args.name or (names[0].lower() if len(names) == 1 else "cast")
    config = BuildConfig(
        variant=args.variant or "rig64", n_clips=args.clips, held_out_clips=args.held_out,
        teacher_steps=args.teacher_steps, student_steps=args.student_steps, n_pairs=args.pairs,
        save_teacher=args.save_teacher, seed=args.seed,
    )
    summary = build_model(
        specs, name=model_name, out_dir=Path(args.out_dir or RIG_MODELS_DIR), config=config,
        progress=not args.quiet,
    )
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_avatar_build_video(args: argparse.Namespace) -> int:
    from stream.tools.avatar_build import BuildConfig, build_from_video
    from stream.tools.avatar_photo import parse_voice
    from stream.tools.video_character import finish_video_build

    if args.characters or args.all:
        raise ValueError("a --video build learns the person in the video; name no characters")
    if args.face_box:
        raise ValueError("--face-box is not needed: face landmarks find the face in every frame")
    video = Path(args.video)
    voice = parse_voice(args.voice)  # checked before the build, not after it
    config = BuildConfig(
        variant=args.variant or "auto", teacher_steps=args.teacher_steps, student_steps=args.student_steps,
        n_pairs=args.pairs, save_teacher=args.save_teacher, seed=args.seed,
    )
    summary = build_from_video(
        video, name=args.name or video.stem.lower(), out_dir=Path(args.out_dir or VIDEO_MODELS_DIR),
        config=config, progress=not args.quiet,
    )
    summary["character"] = finish_video_build(  # int8 package, then the character (photos/<id>/)
        Path(summary["path"]), video=video, name=args.name or video.stem, data_dir=Path(args.data_dir),
        voice=voice, compile_int8=not args.no_compile,
    )
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_avatar_character(args: argparse.Namespace) -> int:
    from stream.tools.video_character import character_command

    return character_command(args)


def _cmd_avatar_compile(args: argparse.Namespace) -> int:
    from stream.tools.avatar_animate import compile_model

    print(json.dumps(compile_model(args.model, precision=args.precision), indent=2))
    return 0


def _cmd_avatar_animate(args: argparse.Namespace) -> int:
    if args.photo:
        from stream.tools.avatar_photo import animate_photo_command

        return animate_photo_command(args)
    if not (args.model and args.video):
        raise ValueError("give --photo PHOTO, or --model and --video (a video-built model)")
    from stream.tools.avatar_animate import AnimateConfig, animate_video

    config = AnimateConfig(steps=args.steps, seed=args.seed, preset=args.preset)
    result = animate_video(
        Path(args.model), Path(args.video), Path(args.audio), Path(args.output), config=config,
        progress=not args.quiet,
    )
    summary = {
        "path": str(result.path), "frames": result.n_frames, "seconds": round(result.seconds, 3),
        "source_frames": result.source_frames, "wall_s": round(result.wall_s, 2),
        "fps": round(result.n_frames / result.wall_s, 2),
    }
    print(json.dumps(summary, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkie", description="Lip-synced talking-picture scenes.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="render a script (Fountain or NAME: line) to MP4 + SRT + VTT")
    render.add_argument("script", help="script file (.fountain or .txt)")
    render.add_argument("-o", "--output", help="output .mp4 path")
    render.add_argument("--episode", help="also record each script scene as a new scene of this episode (id)")
    render.add_argument("--scene", help="also record the script as a new take of this scene (id)")
    render.add_argument("--data-dir", default="data", help="the store for --episode/--scene")
    render.add_argument("--size", type=_size, default=(512, 512), help="WIDTHxHEIGHT, up to 1280x720")
    render.add_argument("--set", default="studio", help="background set (studio, kitchen, park, office, #rrggbb)")
    render.add_argument("--lang", default="en-us", help="language for characters not in the cast")
    render.add_argument(
        "--character", action="append", default=[], metavar="DIR",
        help="a character from a folder: PNG art, or a photo character (data/photos/<id>) (repeatable)",
    )
    render.add_argument(
        "--alias", action="append", default=[], metavar="NAME=CHARACTER",
        help="another name for a character, e.g. MOM=MAYA (repeatable)",
    )
    render.add_argument(
        "--cast", default=None, metavar="FILE",
        help="pin looks and voices, one 'NAME: description; field=value' a line (default: SCRIPT.cast if present)",
    )
    render.add_argument(
        "--no-director", dest="director", action="store_false",
        help="one static shot per scene (1-4 speakers) instead of shots and cuts",
    )
    render.add_argument("--preset", default="ultrafast", help="x264 preset (slower presets make smaller files)")
    render.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    render.add_argument(
        "--backend", choices=["rig", "neural"], default="rig",
        help="neural: trained mouth models repaint the rig's mouths (characters without one keep the rig)",
    )
    render.add_argument("--neural-weights", default=None, metavar="DIR", help="per-character models (default: shipped)")
    render.add_argument(
        "--voice-backend", choices=["natural", "espeak"], default="natural",
        help="espeak: every character speaks with espeak-ng (fast); natural: Kokoro voices where cast",
    )
    render.set_defaults(func=_cmd_render)

    serve = sub.add_parser("serve", help="start the live server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (non-loopback needs --token)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--token", default=None, help="access token (or TALKIE_TOKEN)")
    serve.add_argument(
        "--allow-host", action="append", default=[], metavar="HOST",
        help="another name requests may address the server by, e.g. behind a proxy (repeatable)",
    )
    serve.add_argument(
        "--allow-origin", action="append", default=[], metavar="ORIGIN",
        help="a web page of another site that may call the server, as scheme://host[:port] (repeatable)",
    )
    serve.add_argument("--data-dir", default="data", help="where recordings and the store live")
    serve.add_argument("--max-sessions", type=int, default=8)
    serve.add_argument("--size", type=_size, default=(512, 512), help="WIDTHxHEIGHT of the scene")
    serve.add_argument("--set", default="studio", help="background set")
    serve.add_argument(
        "--character", action="append", default=[], metavar="DIR",
        help="add a character drawn from a folder of PNGs with a character.json (repeatable)",
    )
    serve.add_argument(
        "--backend", choices=["rig", "neural"], default="rig",
        help="neural: trained mouth models repaint the rig's mouths (no look-ahead live)",
    )
    serve.add_argument("--neural-weights", default=None, metavar="DIR", help="per-character models (default: shipped)")
    serve.add_argument(
        "--voice", choices=["natural", "espeak"], default="natural",
        help="live lines that choose no voice: the characters' natural voices (~0.3 s to first sound "
        "on 2 cores; the model loads at start-up) or espeak-ng (instant, for many sessions speaking at once)",
    )
    serve.add_argument(
        "--draw-ahead", type=int, default=None, metavar="N",
        help="draw N of each session's cast in the background so walk-ons wait for nothing "
        "(~45 MB a character at 512x512; default 8; 0: draw on demand)",
    )
    serve.set_defaults(func=_cmd_serve)

    bench = sub.add_parser("bench", help="print measured figures as JSON")
    bench.add_argument(
        "what", choices=["render", "stream", "walk-on", "export", "audio", "model", "soak", "series", "face", "voice",
                         "video-character"]
    )
    bench.add_argument(
        "--character", default=None, metavar="FOLDER", help="video-character: a folder from `talkie avatar character`"
    )
    bench.add_argument(
        "--voice-backend", choices=["natural", "espeak"], default="natural", help="render, series: the voices to speak with"
    )
    bench.add_argument("--neural-weights", default=None, metavar="DIR", help="model: models to bench (default: shipped)")
    bench.add_argument("--backend", choices=["rig", "neural"], default="rig", help="stream: mouths by the rig or the neural model")
    bench.add_argument("--plot", default="bench_model.png", help="model: where to write the plot PNG")
    bench.add_argument(
        "--compile", action="store_true", help="model: time torch.compile'd models (minutes of compiling first)"
    )
    bench.add_argument(
        "--seconds", type=float, default=60.0,
        help="render: media length; stream: seconds per level (6); export: episode length (600)",
    )
    bench.add_argument("--takes", type=int, default=20, help="export: takes in the episode")
    bench.add_argument("--lines", type=int, default=20, help="stream: lines for the latency figures")
    bench.add_argument("--cycles", type=int, default=1000, help="soak: connect/disconnect cycles (0: none)")
    bench.add_argument("--minutes", type=float, default=30.0, help="soak: minutes of one streaming session (0: none)")
    bench.add_argument("--size", type=_size, default=(512, 512))
    bench.add_argument("--preset", default="ultrafast", help="x264 preset")
    bench.add_argument(
        "--no-director", dest="director", action="store_false", help="render: one static shot (the code before shots)"
    )
    bench.add_argument(
        "--conversation", default=None, metavar="TALK.wav",
        help="audio: cross-talk figures for this two-speaker recording only (with --rttm)",
    )
    bench.add_argument("--rttm", default=None, metavar="TALK.rttm", help="audio: who spoke when in --conversation")
    bench.set_defaults(func=_cmd_bench)

    avatar = sub.add_parser("avatar", help="neural mouth models: build one, animate a video with it")
    avatar_sub = avatar.add_subparsers(dest="avatar_command", required=True)
    build = avatar_sub.add_parser(
        "build", help="train a mouth model from rig renders of characters, or from a video of a person"
    )
    build.add_argument("characters", nargs="*", help="built-in characters, e.g. MAYA (several share one model)")
    build.add_argument("--all", action="store_true", help="every built-in character, in one model")
    build.add_argument("--video", default=None, metavar="PATH", help="a video of a person talking (4 s to 15 min)")
    build.add_argument("--photo", default=None, metavar="PATH", help="one frontal photo: a photo character, no training")
    build.add_argument("--face", type=int, default=None, metavar="N", help="photo: which face (1 = leftmost) when there are several")
    build.add_argument("--voice", default=None, metavar="LANG[+VARIANT]", help="photo or video: the voice, e.g. en-us+f2")
    build.add_argument("--data-dir", default="data", help="photo or video: the data directory that keeps the character")
    build.add_argument("--no-compile", action="store_true", help="video: skip the int8 ahead-of-time package (minutes)")
    build.add_argument(
        "--face-box", default=None, metavar="X,Y,W,H",
        help="no longer used: --video finds the face by its landmarks in every frame",
    )
    build.add_argument(
        "--name", default=None, help="model file name (default: the character's, cast, or the video's name)"
    )
    build.add_argument(
        "-o", "--out-dir", default=None,
        help=f"where <name>.safetensors goes (default: {RIG_MODELS_DIR}, or {VIDEO_MODELS_DIR} with --video)",
    )
    build.add_argument(
        "--variant", default=None,
        help="model size: tiny, rig64, rig96, rig128, small (default rig64); --video: their mouth-shape-driven "
        "versions, default auto: rig64/rig96/rig128 by the face's size, the crop >= 0.45 x the mouth region",
    )
    build.add_argument("--clips", type=int, default=40, help="spoken lines to render per character")
    build.add_argument("--held-out", type=int, default=4, help="of those, lines per character never trained on")
    build.add_argument("--pairs", type=int, default=512, help="teacher samples the student is distilled on")
    build.add_argument("--teacher-steps", type=int, default=3000)
    build.add_argument("--student-steps", type=int, default=1000)
    build.add_argument("--save-teacher", action="store_true", help="also keep the teacher")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=_cmd_avatar_build)
    animate = avatar_sub.add_parser("animate", help="make the person of a --video model say new audio")
    animate.add_argument("--model", default=None, help="a model from `talkie avatar build --video`")
    animate.add_argument("--video", default=None, help="the person's video (the one the model was built on)")
    animate.add_argument("--photo", default=None, help="or one photo: it says the audio (no model needed)")
    animate.add_argument("--face", type=int, default=None, metavar="N", help="photo: which face (1 = leftmost)")
    animate.add_argument("--audio", required=True, help="what they say: wav, mp3, or any file with sound")
    animate.add_argument("-o", "--output", required=True, help="output .mp4 path")
    animate.add_argument("--steps", type=int, choices=[1, 2], default=1, help="student sampler steps")
    animate.add_argument("--seed", type=int, default=0)
    animate.add_argument("--preset", default="veryfast", help="x264 preset")
    animate.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    animate.set_defaults(func=_cmd_avatar_animate)
    aot = avatar_sub.add_parser(
        "compile", help="compile a built model ahead of time (int8, beside its weights): fast start-up"
    )
    aot.add_argument("model", help="a model's .safetensors file")
    aot.add_argument("--precision", choices=["int8", "float32"], default="int8")
    aot.set_defaults(func=_cmd_avatar_compile)
    character = avatar_sub.add_parser(
        "character", help="keep the person of a --video model as a character (a photo folder with the model)"
    )
    character.add_argument("--model", required=True, help="a model from `talkie avatar build --video`")
    character.add_argument("--video", required=True, help="the video it was built on (the photo is one of its frames)")
    character.add_argument("--name", default=None, help="the character's name (default: the video's)")
    character.add_argument("--voice", default=None, metavar="LANG[+VARIANT]", help="the voice, e.g. en-us+f2")
    character.add_argument("--data-dir", default="data", help="the data directory that keeps it (photos/<id>/)")
    character.set_defaults(func=_cmd_avatar_character)

    add_episode_parser(sub)
    add_series_parser(sub)
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
    except Exception as exc:
        # Imported here so that commands without the neural backend never load torch.
        from lipsync.neural.checkpoint import CheckpointError

        if not isinstance(exc, CheckpointError):
            raise
        print(f"talkie: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
