"""Sampler, distillation, int8, device choice, frame scheduler and benchmark (tiny, CPU, seconds)."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from torch import nn

from accel.device import pick_device, pick_dtype, prepare_for_inference
from accel.distill import distill_student, make_teacher_pairs, student_times
from accel.face_batches import FaceJob, facegen_runner
from accel.metrics import mouth_psnr, mouth_ssim
from accel.sampler import EulerFlowSampler, sample
from accel.scheduler import (
    DeadlineMissed,
    FrameScheduler,
    RenderRequest,
    SchedulerBusy,
    SchedulerClosed,
)
from lipsync.neural.data import FaceClipDataset, FaceCond, toy_dataset
from lipsync.neural.model import FaceGen, config_for
from lipsync.neural.train import train_teacher

TINY = config_for("tiny")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def toy() -> FaceClipDataset:
    return toy_dataset(n_clips=2, frames_per_clip=48, crop_px=TINY.crop_px, seed=5)


@pytest.fixture(scope="module")
def teacher(toy) -> FaceGen:
    torch.set_num_threads(1)
    return train_teacher(TINY, toy, steps=30, batch_size=8, lr=3e-3, progress=False, seed=0).model


class PointMass(nn.Module):
    """Exact rectified-flow velocity when all data is one image c: v = (c - x) / (1 - t)."""

    def __init__(self, c: torch.Tensor) -> None:
        super().__init__()
        self.c = c

    def forward(self, x, t, reference, masked, mask, drive):
        return (self.c - x) / (1 - t).view(-1, 1, 1, 1)


# --- sampler ----------------------------------------------------------------------------------


def test_step_before_set_timesteps_says_what_to_call():
    s = EulerFlowSampler()
    with pytest.raises(
        ValueError, match=r"call set_timesteps\(num_inference_steps\) before step\(\)"
    ):
        s.step(torch.zeros(1), 0.0, torch.zeros(1))


def test_timesteps_grid_and_off_grid_error():
    s = EulerFlowSampler()
    s.set_timesteps(4)
    assert torch.allclose(s.timesteps, torch.tensor([0.0, 0.25, 0.5, 0.75]))
    with pytest.raises(ValueError, match="not on this sampler's 4-step grid"):
        s.step(torch.zeros(1), 0.3, torch.zeros(1))


@pytest.mark.parametrize("steps", [1, 2, 4, 32])
def test_euler_lands_on_a_straight_path_target(toy, steps):
    cond = toy.batch([0, 1]).cond
    c = torch.rand(2, 3, TINY.crop_px, TINY.crop_px) * 2 - 1
    out = sample(
        PointMass(c), cond, steps=steps, generator=torch.Generator().manual_seed(0), compose=False
    )
    assert torch.allclose(out, c, atol=1e-5)


def test_sampling_is_deterministic_given_a_generator(toy, teacher):
    cond = toy.batch([0, 1]).cond
    a = sample(teacher, cond, steps=4, generator=torch.Generator().manual_seed(11))
    b = sample(teacher, cond, steps=4, generator=torch.Generator().manual_seed(11))
    c = sample(teacher, cond, steps=4, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    stochastic = EulerFlowSampler(stochastic=True)
    d = sample(
        teacher, cond, steps=4, generator=torch.Generator().manual_seed(11), sampler=stochastic
    )
    e = sample(
        teacher, cond, steps=4, generator=torch.Generator().manual_seed(11), sampler=stochastic
    )
    assert torch.equal(d, e)


# --- distillation -----------------------------------------------------------------------------


def test_student_times():
    assert student_times((1, 2)).tolist() == [0.0, 0.5]
    assert student_times((1, 2, 4)).tolist() == [0.0, 0.25, 0.5, 0.75]


def test_distilled_student_matches_teacher_better_than_untrained(toy, teacher):
    held = make_teacher_pairs(
        teacher, toy, n_pairs=16, teacher_steps=8, generator=torch.Generator().manual_seed(99)
    )

    def one_step_error(model: FaceGen) -> float:
        cond = toy.batch(held.indices).cond
        out = sample(model, cond, steps=1, noise=held.noise, compose=False)
        w = cond.mask  # the painted region is what matters
        return (((out - held.samples) ** 2) * w).sum().item() / w.sum().item()

    before = one_step_error(teacher)  # the student starts as the teacher's weights
    student = distill_student(
        teacher, toy, steps=40, teacher_steps=8, n_pairs=32, batch_size=8, lr=2e-3, progress=False
    ).model
    after = one_step_error(student)
    assert after < 0.6 * before, (before, after)


# --- int8 ---------------------------------------------------------------------------------------


def test_int8_output_close_to_float(toy, teacher):
    pytest.importorskip("torchao")
    from accel.quantize import quantize_int8

    q, report = quantize_int8(teacher, min_in_features=0, min_out_features=0)
    assert any(name.endswith("fc1") for name in report.quantized)
    kept = dict(report.kept_float)
    for name in ("stem", "head", "refine", "enc.0.0.modulation", "cond.time_mlp.0"):
        assert name in kept and name not in report.quantized
    b = toy.batch(range(8))
    t = torch.full((8,), 0.5)
    with torch.inference_mode():
        ref = teacher(b.target, t, *b.cond.as_args())
        out = q(b.target, t, *b.cond.as_args())
    rel = ((out - ref).norm() / ref.norm()).item()
    assert rel < 0.05, rel
    assert type(teacher.enc[0][0].fc1.weight.data) is torch.Tensor  # the float model is untouched
    assert type(q.enc[0][0].fc1.weight.data) is not torch.Tensor


# --- device -------------------------------------------------------------------------------------


def test_device_and_dtype_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cpu"), "bfloat16") == torch.bfloat16
    if not torch.cuda.is_available():
        assert pick_device().type == "cpu"
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")
    model = prepare_for_inference(FaceGen(TINY), channels_last=True, compile=False)
    assert not model.training
    assert model.refine.weight.is_contiguous(memory_format=torch.channels_last)


# --- scheduler ----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def recorder():
    batches: list[list[str]] = []

    def run(inputs):
        batches.append(list(inputs))
        return [f"frame:{x}" for x in inputs]

    return batches, run


def req(name: str, deadline: float, session: str = "s1", key: str = "default") -> RenderRequest:
    return RenderRequest(
        character_id=name, session_id=session, deadline_s=deadline, inputs=name, model_key=key
    )


def test_scheduler_batches_earliest_deadline_first_and_drops_late():
    clock = FakeClock()
    batches, run = recorder()
    sched = FrameScheduler(run, max_batch=2, clock=clock)
    futs = {
        "alice": sched.submit(req("alice", 100.30, "s1")),
        "bob": sched.submit(req("bob", 100.10, "s2")),
        "carol": sched.submit(req("carol", 99.90, "s1")),  # already late
        "dave": sched.submit(req("dave", 100.20, "s2")),
    }
    assert sched.run_once() == 2
    assert batches == [["bob", "dave"]]  # earliest deadlines, across sessions, one forward pass
    with pytest.raises(DeadlineMissed, match="s1/carol"):
        futs["carol"].result(timeout=0)
    assert sched.stats.dropped_late == 1
    assert futs["bob"].result(timeout=0) == "frame:bob"
    clock.now = 100.5  # alice is late by the time her batch forms
    assert sched.run_once() == 0
    assert sched.stats.dropped_late == 2 and futs["alice"].exception(timeout=0) is not None


def test_scheduler_keeps_models_apart_and_cancels_sessions():
    clock = FakeClock()
    batches_a, run_a = recorder()
    batches_b, run_b = recorder()
    sched = FrameScheduler({"a": run_a, "b": run_b}, max_batch=4, clock=clock)
    sched.submit(req("x1", 101.0, key="a"))
    sched.submit(req("y1", 101.1, key="b"))
    sched.submit(req("x2", 101.2, key="a"))
    gone = sched.submit(req("z", 101.3, session="s9", key="a"))
    assert sched.cancel(session_id="s9") == 1 and gone.cancelled()
    sched.run_once()
    sched.run_once()
    assert batches_a == [["x1", "x2"]] and batches_b == [["y1"]]
    with pytest.raises(ValueError, match="no model for model_key 'c'"):
        sched.submit(req("w", 102.0, key="c"))


def test_scheduler_bounded_queue_and_failing_batch():
    sched = FrameScheduler(lambda xs: 1 / 0, max_batch=2, max_pending=1, clock=FakeClock())
    first = sched.submit(req("a", 200.0))
    with pytest.raises(SchedulerBusy):
        sched.submit(req("b", 200.0)).result(timeout=0)
    sched.run_once()
    with pytest.raises(ZeroDivisionError):
        first.result(timeout=0)
    assert sched.stats.failed == 1


def test_scheduler_worker_thread_serves_concurrent_callers():
    seen_threads = set()

    def run(inputs):
        seen_threads.add(threading.current_thread().name)
        time.sleep(0.005)
        return [x * 2 for x in inputs]

    with FrameScheduler(run, max_batch=4) as sched:
        futs = [
            sched.submit(
                RenderRequest(
                    character_id=f"c{i % 2}",
                    session_id=f"s{i % 3}",
                    deadline_s=time.monotonic() + 5,
                    inputs=i,
                )
            )
            for i in range(12)
        ]
        assert [f.result(timeout=5) for f in futs] == [2 * i for i in range(12)]
    assert seen_threads == {"frame-scheduler"}
    assert max(sched.stats.batch_sizes) > 1  # callers were batched together
    late = sched.submit(req("late", 0.0))
    with pytest.raises(SchedulerClosed):
        late.result(timeout=1)



def test_facegen_runner_batched_equals_alone(toy, teacher):
    run = facegen_runner(teacher, steps=2, pad_to=(1, 2, 4))
    conds = [toy.batch([i]).cond for i in range(3)]
    jobs = [FaceJob(cond=c, seed=10 + i) for i, c in enumerate(conds)]
    together = run(jobs)
    alone = [run([j])[0] for j in jobs]
    assert len(together) == 3
    for a, b in zip(together, alone, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert isinstance(FaceCond.cat(conds), FaceCond)


# --- metrics and benchmark ----------------------------------------------------------------------


def test_mouth_metrics():
    target = torch.zeros(1, 3, 16, 16)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    off = target.clone()
    off[..., :2, :2] = 1.0  # outside the mouth: must not count
    assert mouth_psnr(off, target, mask).item() == pytest.approx(100.0)
    assert mouth_ssim(off, target, mask).item() == pytest.approx(1.0)
    noisy = target + 0.2 * mask  # 0.1 in [0, 1] units -> 20 dB
    assert mouth_psnr(noisy, target, mask).item() == pytest.approx(20.0, abs=1e-3)


def test_bench_model_reports_speed_and_quality(toy, teacher):
    pytest.importorskip("torchao")
    from accel.benchmark import bench_model

    report = bench_model(
        teacher,
        teacher,
        toy,
        teacher_steps=4,
        student_steps=(1,),
        batch_sizes=(1,),
        compile=False,
        n_eval=4,
        repeats=1,
        teacher_repeats=1,
    )
    kinds = {(r["model"], r["precision"], r["steps"]) for r in report["speed"]}
    assert kinds == {("teacher", "float", 4), ("student", "float", 1), ("student", "int8", 1)}
    assert all(r["ms_per_frame"] > 0 for r in report["speed"])
    assert {"psnr_mouth_db", "ssim_mouth", "psnr_vs_teacher_db"} <= set(report["quality"][0])
    assert "speedup_vs_teacher_b1" in report["summary"]


def test_facegen_runner_feeds_a_model_in_its_own_dtype(toy, teacher):
    """Jobs are made in float32 on the CPU; a bfloat16 model (as on CUDA) gets them in its dtype
    and the results come back as float32 CPU tensors."""
    import copy

    half = copy.deepcopy(teacher).to(torch.bfloat16)
    jobs = [FaceJob(cond=toy.batch([i]).cond, seed=i) for i in range(2)]
    want = facegen_runner(teacher, steps=1)(jobs)
    got = facegen_runner(half, steps=1)(jobs)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == torch.float32 and a.device.type == "cpu"
        assert (a - b).abs().mean() < 0.05
