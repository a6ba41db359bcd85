"""int8 FaceGen for CPU with torchao: int8 dynamic (per-token) activations x int8 per-channel weights.

API (torchao 0.18): ``torchao.quantization.quantize_(model,
Int8DynamicActivationInt8WeightConfig(set_inductor_config=False), filter_fn=...)``; the old
``torch.ao.quantization.quantize_dynamic`` is deprecated. torchao's ``Int8Tensor`` implements
``F.linear`` only (no conv), so FaceGen is built so that nearly all multiply-adds are
``nn.Linear`` layers on channels-last tokens (block MLPs, patch merge/split, skip fusion), with a
4 px patch stem so the token count is small and the matrices are wide.

What stays float, and why:
- ``stem`` (first layer: raw pixels in) and ``head`` / ``refine`` (last layers: pixels out), where
  int8 rounding shows directly in the mouth.
- ``cond.*`` and every ``modulation`` / ``head_modulation``: they run once per sample on a
  (B, D) vector, so int8 saves nothing, and their outputs scale whole feature maps.
- LayerNorms (no weights) and depthwise convs (not linear; cheap anyway).
- Linears with fewer than ``min_in_features`` inputs or ``min_out_features`` outputs: the
  per-token activation quantization pass costs about as much as the int8 matmul saves when the
  matrix is thin (a 4608 x 32 -> 128 -> 32 MLP, compiled, 1 thread: int8 1.2 ms, float 0.45 ms;
  1152 x 128 -> 512 -> 128: int8 1.3 ms, float 3.0 ms).

Measured on the 2-core AVX-512 VNNI test machine (no AMX), "small" 1-step student, ms/frame:
int8 is only faster under ``torch.compile`` (inductor fuses the activation quantization; eager
int8 is slower than eager float: 8.3 vs 7.2 at 1 thread). Compiled with inductor freezing,
int8 vs float is 5.6 vs 7.4 (batch 1) and 4.6 vs 6.1 (batch 2) on 1 thread, 3.7-4.0 vs 4.6-5.9
and 3.2 vs 3.6 on 2 threads: 1.1-1.3x. The float GEMMs already run near peak; what is left is
the depthwise convs, the full-resolution refine conv and elementwise work. Quality loss is
negligible (mouth PSNR within 0.02 dB of float). ``accel.device.prepare_for_inference`` compiles.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import nn

# Top-level FaceGen modules kept float, and the per-block conditioning layers.
FLOAT_TOP = ("stem", "head", "refine", "cond", "head_modulation")
FLOAT_LEAF = ("modulation",)


@dataclass(frozen=True)
class QuantReport:
    """Which layers became int8 and which stayed float (with the reason)."""

    quantized: tuple[str, ...]
    kept_float: tuple[tuple[str, str], ...]  # (layer name, reason)

    def summary(self) -> str:
        return f"{len(self.quantized)} linear layers int8, {len(self.kept_float)} layers kept float"


def int8_policy(
    name: str, module: nn.Module, *, min_in_features: int, min_out_features: int
) -> str | None:
    """None when ``module`` should become int8, else the reason it stays float."""
    if isinstance(module, nn.Conv2d):
        return "convolution (torchao int8 covers linear layers only)"
    if not isinstance(module, nn.Linear):
        return "not a linear layer"
    parts = name.split(".")
    if parts[0] in FLOAT_TOP or parts[-1] in FLOAT_LEAF:
        return "precision-sensitive or per-sample (first/last layer, conditioning, modulation)"
    if module.in_features < min_in_features:
        return (
            f"in_features {module.in_features} < {min_in_features}: int8 overhead exceeds the gain"
        )
    if module.out_features < min_out_features:
        return f"out_features {module.out_features} < {min_out_features}: int8 overhead exceeds the gain"
    return None


def quantize_int8(
    model: nn.Module,
    *,
    min_in_features: int = 64,
    min_out_features: int = 128,
    inplace: bool = False,
) -> tuple[nn.Module, QuantReport]:
    """Return an int8 copy of ``model`` (float32, CPU) and what was quantized.

    Raises ``ImportError`` with an install hint when torchao is missing.
    """
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as err:
        raise ImportError("int8 quantization needs torchao: pip install torchao") from err

    target = model if inplace else copy.deepcopy(model)
    quantized: list[str] = []
    kept: list[tuple[str, str]] = []
    for name, module in target.named_modules():
        if not isinstance(module, nn.Linear | nn.Conv2d):
            continue
        reason = int8_policy(
            name, module, min_in_features=min_in_features, min_out_features=min_out_features
        )
        if reason is None:
            quantized.append(name)
        else:
            kept.append((name, reason))
    chosen = set(quantized)
    # set_inductor_config=False: don't let torchao change process-wide inductor settings.
    quantize_(
        target,
        Int8DynamicActivationInt8WeightConfig(set_inductor_config=False),
        filter_fn=lambda module, fqn: fqn in chosen,
    )
    return target, QuantReport(quantized=tuple(quantized), kept_float=tuple(kept))
