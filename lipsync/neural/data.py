"""Training data for FaceGen: face-crop clips as arrays, and a synthetic toy face for tests.

The data interface is plain arrays, so the rig renderer (avatar/) or a video of a real person can
fill it without this module knowing about either:

  frames      uint8 (N, H, W, 3)   face crops, one per video frame (25 fps)
  references  uint8 (K, H, W, 3)   one reference crop per clip (or (H, W, 3) for one clip)
  masks       (K, H, W)            mouth region per clip, > 0.5 inside (or (H, W) for one clip)
  drive       float (N, Cd, Wd)    drive window per frame: viseme weights 15 x 5, or log-mel
  clip_ids    int (N,)             which clip (reference, mask) each frame belongs to

Images become float tensors in [-1, 1], channels first. The masked frame is the target frame with
the mouth region set to 0 (mid grey).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lipsync.visemes import JAW_OPEN, MOUTH_SHAPES, N_VISEMES, VISEMES


@dataclass(frozen=True)
class FaceCond:
    """Everything FaceGen is conditioned on, batched. Images (B, C, H, W) in [-1, 1]."""

    reference: torch.Tensor  # (B, 3, H, W)
    masked: torch.Tensor  # (B, 3, H, W)
    mask: torch.Tensor  # (B, 1, H, W), 1 inside the mouth region
    drive: torch.Tensor  # (B, Cd, Wd)

    @property
    def batch_size(self) -> int:
        return self.reference.shape[0]

    def as_args(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Positional arguments after (x_t, t) for ``FaceGen.forward``."""
        return self.reference, self.masked, self.mask, self.drive

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> FaceCond:
        return FaceCond(*(a.to(device=device, dtype=dtype) for a in self.as_args()))

    def select(self, index: slice | torch.Tensor) -> FaceCond:
        return FaceCond(*(a[index] for a in self.as_args()))

    @staticmethod
    def cat(conds: Sequence[FaceCond]) -> FaceCond:
        """Stack several conditions (e.g. one per character) into one batch."""
        return FaceCond(
            *(torch.cat(parts, dim=0) for parts in zip(*(c.as_args() for c in conds), strict=True))
        )


@dataclass(frozen=True)
class FaceBatch:
    """A training batch: the true crop and its condition."""

    target: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    cond: FaceCond

    @property
    def reference(self) -> torch.Tensor:
        return self.cond.reference

    @property
    def masked(self) -> torch.Tensor:
        return self.cond.masked

    @property
    def mask(self) -> torch.Tensor:
        return self.cond.mask

    @property
    def drive(self) -> torch.Tensor:
        return self.cond.drive


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0


class FaceClipDataset:
    """Face-crop clips held in memory; ``batch(indices)`` builds a ``FaceBatch``."""

    def __init__(
        self,
        *,
        frames: np.ndarray,
        references: np.ndarray,
        masks: np.ndarray,
        drive: np.ndarray,
        clip_ids: np.ndarray | None = None,
    ) -> None:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}"
            )
        n, h, w, _ = frames.shape
        if h != w:
            raise ValueError(f"face crops must be square, got {h}x{w}")
        if references.ndim == 3:
            references = references[None]
        if masks.ndim == 2:
            masks = masks[None]
        if references.shape[1:] != frames.shape[1:] or references.dtype != np.uint8:
            raise ValueError(
                f"references must be uint8 (K, {h}, {w}, 3), got {references.dtype} {references.shape}"
            )
        if masks.shape != (references.shape[0], h, w):
            raise ValueError(f"masks must be ({references.shape[0]}, {h}, {w}), got {masks.shape}")
        if drive.ndim != 3 or drive.shape[0] != n:
            raise ValueError(f"drive must be ({n}, channels, window_frames), got {drive.shape}")
        if clip_ids is None:
            clip_ids = np.zeros(n, dtype=np.int64)
        if clip_ids.shape != (n,) or clip_ids.min() < 0 or clip_ids.max() >= references.shape[0]:
            raise ValueError(
                f"clip_ids must be ({n},) ints in [0, {references.shape[0]}), got {clip_ids.shape}"
            )
        self.frames = torch.from_numpy(np.ascontiguousarray(frames))
        self.references = torch.from_numpy(np.ascontiguousarray(references))
        self.masks = torch.from_numpy((masks > 0.5).astype(np.float32))
        self.drive = torch.from_numpy(np.ascontiguousarray(drive, dtype=np.float32))
        self.clip_ids = torch.from_numpy(clip_ids.astype(np.int64))

    def __len__(self) -> int:
        return self.frames.shape[0]

    @property
    def crop_px(self) -> int:
        return self.frames.shape[1]

    @property
    def drive_shape(self) -> tuple[int, int]:
        """(channels, window_frames) of the drive windows."""
        return self.drive.shape[1], self.drive.shape[2]

    def batch(
        self, indices: Sequence[int] | torch.Tensor, *, device: torch.device | str = "cpu"
    ) -> FaceBatch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        clips = self.clip_ids[idx]
        target = _to_unit(self.frames[idx])  # (B, 3, H, W)
        mask = self.masks[clips][:, None]  # (B, H, W) -> (B, 1, H, W)
        cond = FaceCond(
            reference=_to_unit(self.references[clips]),
            masked=target * (1.0 - mask),
            mask=mask,
            drive=self.drive[idx],
        )
        return FaceBatch(target=target.to(device), cond=cond.to(device))

    def subset(self, indices: Sequence[int] | np.ndarray) -> FaceClipDataset:
        idx = np.asarray(indices, dtype=np.int64)
        return FaceClipDataset(
            frames=self.frames.numpy()[idx],
            references=self.references.numpy(),
            masks=self.masks.numpy(),
            drive=self.drive.numpy()[idx],
            clip_ids=self.clip_ids.numpy()[idx],
        )

    @staticmethod
    def concat(datasets: Sequence[FaceClipDataset]) -> FaceClipDataset:
        """Join datasets; their clips stay distinct."""
        offsets = np.cumsum([0] + [d.references.shape[0] for d in datasets[:-1]])
        return FaceClipDataset(
            frames=np.concatenate([d.frames.numpy() for d in datasets]),
            references=np.concatenate([d.references.numpy() for d in datasets]),
            masks=np.concatenate([d.masks.numpy() for d in datasets]),
            drive=np.concatenate([d.drive.numpy() for d in datasets]),
            clip_ids=np.concatenate(
                [d.clip_ids.numpy() + o for d, o in zip(datasets, offsets, strict=True)]
            ),
        )


def viseme_windows(weights: np.ndarray, *, window_frames: int = 5) -> np.ndarray:
    """Centred drive windows from per-frame viseme weights: (N, 15) -> (N, 15, window_frames).

    The window for frame k covers frames k - W//2 .. k + W//2 (edges repeat the end frames).
    Centred windows need W//2 frames of look-ahead; the mouth track supplies them from speech.
    """
    if weights.ndim != 2 or weights.shape[1] != N_VISEMES:
        raise ValueError(f"viseme weights must be (N, {N_VISEMES}), got {weights.shape}")
    half = window_frames // 2
    padded = np.pad(weights, ((half, window_frames - 1 - half), (0, 0)), mode="edge")  # (N+W-1, 15)
    idx = np.arange(weights.shape[0])[:, None] + np.arange(window_frames)[None, :]  # (N, W)
    return np.ascontiguousarray(
        padded[idx].transpose(0, 2, 1), dtype=np.float32
    )  # (N, W, 15) -> (N, 15, W)


# --- synthetic toy faces -------------------------------------------------------------------

_WIDTH = np.array([MOUTH_SHAPES[v].width for v in VISEMES], dtype=np.float32)
_TEETH = np.array([MOUTH_SHAPES[v].upper_teeth for v in VISEMES], dtype=np.float32)
_JAW = np.array(JAW_OPEN, dtype=np.float32)


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy, cx, ry, rx) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of an ellipse; centres/radii broadcast against the grid."""
    d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    return np.clip((1.0 - d) * np.minimum(rx, ry) + 0.5, 0.0, 1.0)


def random_viseme_track(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Viseme weights (N, 15): random visemes held 2-6 frames, with one-frame cross-fades."""
    ids = np.empty(n_frames, dtype=np.int64)
    k = 0
    while k < n_frames:
        hold = int(rng.integers(2, 7))
        ids[k : k + hold] = rng.integers(0, N_VISEMES)
        k += hold
    onehot = np.eye(N_VISEMES, dtype=np.float32)[ids]  # (N, 15)
    padded = np.pad(onehot, ((1, 1), (0, 0)), mode="edge")
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]  # rows still sum to 1


def toy_clip(*, n_frames: int, crop_px: int, seed: int, window_frames: int = 5) -> FaceClipDataset:
    """A synthetic talking face: a skin ellipse with eyes, and a mouth whose height follows jaw_open.

    Mouth height follows the viseme weights' jaw_open, its width follows ``width`` and a band of
    upper teeth follows ``upper_teeth``. Each seed gives a different skin, background and face size.
    """
    rng = np.random.default_rng(seed)
    weights = random_viseme_track(n_frames, rng)
    s = crop_px / 96.0
    yy, xx = np.mgrid[0:crop_px, 0:crop_px].astype(np.float32) + 0.5
    bg = rng.uniform(0.1, 0.9, 3).astype(np.float32)
    skin = rng.uniform([0.55, 0.35, 0.25], [0.95, 0.8, 0.7]).astype(np.float32)
    lip = np.array([0.75, 0.2, 0.25], dtype=np.float32) * rng.uniform(0.7, 1.1)
    cy, cx = crop_px * 0.5 + rng.uniform(-2, 2) * s, crop_px * 0.5 + rng.uniform(-2, 2) * s
    fy, fx = rng.uniform(40, 44) * s, rng.uniform(32, 38) * s

    face = _ellipse(yy, xx, cy, cx, fy, fx)[..., None]  # (H, W, 1)
    img = bg * (1 - face) + skin * face  # (H, W, 3)
    for ex in (-0.4, 0.4):
        eye = _ellipse(yy, xx, cy - 0.25 * fy, cx + ex * fx, 4 * s, 5 * s)[..., None]
        img = img * (1 - eye) + np.float32(0.08) * eye

    def mouths(w: np.ndarray) -> np.ndarray:  # (M, 15) -> (M, H, W, 3)
        jaw, width, teeth = (w @ _JAW), (w @ _WIDTH), (w @ _TEETH)  # (M,) each
        my = cy + 0.5 * fy
        rx = ((0.45 + 0.55 * width) * 0.5 * fx)[:, None, None]  # (M, 1, 1)
        ry = (1.2 + jaw * 9.0 * s)[:, None, None]
        g = (yy[None], xx[None])
        lips = _ellipse(*g, my, cx, ry + 2.0 * s, rx + 2.0 * s)[..., None]  # (M, H, W, 1)
        inner = _ellipse(*g, my, cx, ry, rx)[..., None]
        band = (yy[None] < my - ry + 2 * ry * 0.35 * teeth[:, None, None])[..., None]
        inside = np.where(band, np.float32(0.95), np.float32(0.1))  # teeth white, mouth dark
        out = img[None] * (1 - lips) + lip * lips
        return out * (1 - inner) + inside * inner

    frames = np.concatenate([mouths(weights[i : i + 256]) for i in range(0, n_frames, 256)])
    reference = mouths(np.eye(N_VISEMES, dtype=np.float32)[[0]])[0]  # closed mouth ("sil")
    mask = _ellipse(yy, xx, cy + 0.5 * fy, cx, 15.0 * s, 0.62 * fx) > 0.0  # covers the widest mouth
    to_u8 = lambda a: np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)  # noqa: E731
    return FaceClipDataset(
        frames=to_u8(frames),
        references=to_u8(reference),
        masks=mask.astype(np.float32),
        drive=viseme_windows(weights, window_frames=window_frames),
    )


def toy_dataset(
    *, n_clips: int, frames_per_clip: int, crop_px: int, seed: int = 0, window_frames: int = 5
) -> FaceClipDataset:
    """Several toy clips (distinct faces) in one dataset."""
    return FaceClipDataset.concat(
        [
            toy_clip(
                n_frames=frames_per_clip,
                crop_px=crop_px,
                seed=seed * 1000 + i,
                window_frames=window_frames,
            )
            for i in range(n_clips)
        ]
    )
