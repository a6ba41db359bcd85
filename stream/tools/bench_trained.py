"""The trained model's figures for ``talkie bench face``: float vs int8, eager vs ahead-of-time.

For one student file (default: the shipped cast model, the only trained model in the repository;
a ``--video`` model of the same variant has the same network): ms per face on one thread at
batch 1 and 4 (1-step sampling, the whole sampler call), the faces one 25 fps frame holds on two
cores (2 x 40 ms over the best ms per face at batch 4), and start-up: a fresh Python process
that loads the weights and the int8 package and paints one face, timed from its start.

The packages are compiled (accel/aot.py) into ``work_dir`` beside a copy of the weights when not
there yet; that takes minutes once, and is reported as ``compile_s``.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from accel.aot import artifact_path, compile_aot, example_inputs, load_aot
from accel.quantize import quantize_int8
from lipsync.neural.weights import default_weights_dir, load_student

FRAME_MS = 40.0
CORES = 2

_STARTUP = """
import time, sys
t0 = time.perf_counter()
import torch
from accel.aot import load_aot, example_inputs
from lipsync.neural.weights import load_student
torch.set_num_threads(1)
m = load_student(sys.argv[1])
aot = load_aot(sys.argv[1], precision="int8", config=m.cfg)
with torch.inference_mode():
    aot(*example_inputs(m.cfg, 1))
print(time.perf_counter() - t0)
"""


def _ms_per_face(fn: Any, cfg: Any, batch: int, repeats: int) -> float:
    x = example_inputs(cfg, batch)
    with torch.inference_mode():
        for _ in range(3):
            fn(*x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(*x)
            times.append(time.perf_counter() - start)
    return round(1000.0 * statistics.median(times) / batch, 2)


def bench_trained(
    weights: str | Path | None = None, *, work_dir: Path = Path("test-artifacts/aot"), repeats: int = 20
) -> dict[str, Any]:
    """Speed and start-up figures of a trained student; see the module doc."""
    source = Path(weights) if weights else default_weights_dir() / "cast.safetensors"
    work_dir.mkdir(parents=True, exist_ok=True)
    local = work_dir / source.name
    if not local.exists() or local.read_bytes() != source.read_bytes():
        shutil.copyfile(source, local)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = load_student(local)
        compile_s: dict[str, float] = {}
        for precision in ("float32", "int8"):
            try:
                load_aot(local, precision=precision, config=model.cfg)
            except Exception:  # noqa: BLE001 - missing or stale: compile it
                started = time.perf_counter()
                compile_aot(model, weights=local, precision=precision)
                compile_s[precision] = round(time.perf_counter() - started, 1)
        eager_int8, _ = quantize_int8(model)
        paths = {
            "eager float32": model,
            "eager int8": eager_int8,
            "aot float32": load_aot(local, precision="float32", config=model.cfg),
            "aot int8": load_aot(local, precision="int8", config=model.cfg),
        }
        rows = [
            {"path": name, "batch": b, "ms_per_face": _ms_per_face(fn, model.cfg, b, repeats)}
            for name, fn in paths.items()
            for b in (1, 4)
        ]
    finally:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _STARTUP, str(local)], capture_output=True, text=True, check=True
    )
    best = min(float(r["ms_per_face"]) for r in rows if r["batch"] == 4)
    return {
        "model": str(source),
        "crop_px": model.cfg.crop_px,
        "steps": 1,
        "threads": 1,
        "ms_per_face": rows,
        "faces_per_25fps_frame_on_2_cores": round(CORES * FRAME_MS / best, 1),
        "startup_s": {
            "process_to_first_face": round(time.perf_counter() - started, 2),
            "inside_process": round(float(out.stdout.strip().splitlines()[-1]), 2),
        },
        "package_bytes": {p: artifact_path(local, p).stat().st_size for p in ("float32", "int8")},
        "compile_s": compile_s,
        "note": "2-core machine shared with other jobs: timings are noisy",
    }
