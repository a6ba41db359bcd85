"""How open a mouth is, read from pixels alone.

The rig paints the inside of a mouth (cavity, teeth, tongue) in fixed flat colours that no skin,
lip, hair or beard colour comes near, and every open mouth shows some dark cavity. Inside a
mouth box, each pixel column's count of interior-coloured pixels is how far apart the lips are
there; columns without any cavity or tongue pixel do not count (a pale background or a glint
on glasses can look like teeth). The opening is the mean of the tallest few columns, as a
share of the box height: 0 for closed mouths (sil, PP), growing with jaw_open (not with mouth
width).
"""

from __future__ import annotations

import numpy as np

from avatar.colors import CAVITY_RGB, TEETH_RGB, TONGUE_RGB

INTERIOR_TOLERANCE = 30
"""Largest L1 distance (sum over R, G, B) from the cavity or tongue colour that still counts."""
TEETH_TOLERANCE = 18
"""Tighter for the teeth: their cool white is nearer than the others to eye whites and glare."""
_TOP_COLUMNS = 3


def interior_mask(rgb: np.ndarray) -> np.ndarray:
    """True where an (h, w, 3) uint8 image shows mouth-interior colours, in columns that show
    some cavity or tongue."""
    crop = rgb[..., :3].astype(np.int16)
    dark = np.zeros(crop.shape[:2], bool)
    for colour in (CAVITY_RGB, TONGUE_RGB):
        dark |= np.abs(crop - np.array(colour, np.int16)).sum(axis=-1) <= INTERIOR_TOLERANCE
    teeth = np.abs(crop - np.array(TEETH_RGB, np.int16)).sum(axis=-1) <= TEETH_TOLERANCE
    return (dark | teeth) & dark.any(axis=0)


def mouth_opening(frame: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """How open the mouth in ``box`` = (x0, y0, x1, y1), end-exclusive, of an (H, W, 3) uint8
    RGB ``frame`` is: 0 closed .. about 0.2 for the widest "aa" in a box from ``mouth_boxes()``."""
    if frame.ndim != 3 or frame.shape[2] < 3:
        raise ValueError(f"frame must be (H, W, 3) RGB, got shape {frame.shape}")
    x0, y0, x1, y1 = box
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"mouth box {box} is empty inside a {w}x{h} frame")
    columns = interior_mask(frame[y0:y1, x0:x1]).sum(axis=0)
    k = min(_TOP_COLUMNS, columns.size)
    tallest = np.partition(columns, columns.size - k)[-k:]
    return float(tallest.mean()) / (y1 - y0)


def pearson_at_best_lag(output: np.ndarray, truth: np.ndarray, *, max_lag: int = 5) -> tuple[float, int]:
    """(r, lag): the best Pearson correlation of ``output[k + lag]`` with ``truth[k]`` over lags
    -max_lag..max_lag (positive: the output is late), and that lag."""
    a, b = np.asarray(output, np.float64), np.asarray(truth, np.float64)
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    best = (-2.0, 0)
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b[: n - lag]) if lag >= 0 else (a[: n + lag], b[-lag:])
        if x.size < 3 or x.std() == 0 or y.std() == 0:
            continue
        r = float(np.corrcoef(x, y)[0, 1])
        if r > best[0] or (r == best[0] and abs(lag) < abs(best[1])):
            best = (r, lag)
    return best


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))
