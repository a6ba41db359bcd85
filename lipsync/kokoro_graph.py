"""The Kokoro graph as talkie runs it: the durations exposed, the vocoder's convolutions static int8,
its AdaIN and STFT as single kernels.

The shipped model (``kokoro-v1.0.int8.onnx``) is dynamically quantized: before each of its 87
convolutions, ``DynamicQuantizeLinear`` measures the activations, and ``ConvInteger`` multiplies
uint8 by uint8. onnxruntime has no fast kernel for that pair: on this project's 2-core CPU a
128-channel convolution over 5 s of audio takes 63-73 ms as ``ConvInteger``, 83 ms as a float
``Conv`` and 21 ms as ``QLinearConv`` (uint8 activations times int8 weights, the symmetric kernels
that use the CPU's int8 dot products). The vocoder's 48 convolutions at the two top rates
(``generator/resblocks.*`` and ``generator/noise_res.*``) are ~68% of a call, the decoder's 16
at 40-80 Hz (``encode``, ``decode.*``, ``asr_res``) most of the rest.

``rewrite`` therefore rebuilds each shipped convolution from its own integer weights:

- those 64 convolutions become ``QuantizeLinear -> DequantizeLinear -> Conv ->
  QuantizeLinear -> DequantizeLinear``, which onnxruntime fuses into ``QLinearConv``. Weights are
  int8 per output channel; activations use fixed ranges measured once on this project's own lines
  (``KokoroCalibration``). An output channel is divided by its own typical size before the uint8
  rounding and multiplied back after it (a ``Mul``), so quiet channels keep their precision:
  without this, output rounding alone cost more than the shipped model's dynamic rounding. The
  decoder's blocks also divide each input channel by its typical size (their inputs join text,
  F0 and energy features of very different sizes), the weights taking the factor back;
- the other 23 (text encoder, prosody predictor, the one-channel F0 and energy convolutions)
  become float ``Conv`` with the same weights, which is exact where the shipped graph rounded.

Measured in one run on held-out lines and voices (``python -m lipsync.kokoro_calibrate --check``):
mean log-mel distance to the same model in float is smaller than the shipped graph's, the
durations are identical, and a call takes less than half the time.

``streamline`` then replaces what lies between the convolutions where onnxruntime spells it
slowly: each AdaIN's nine elementwise nodes become one ``InstanceNormalization``
(``fuse_instance_norms``, the same sums), and the vocoder's 20-point STFT a strided convolution
with the windowed DFT as filters (``stft_as_convolution``): together ~10% of a call on one core.
Last, each snake activation before a static convolution becomes a table lookup from the AdaIN
straight to the convolution's uint8 input (``snakes_as_tables``): ~16% of a call at one thread,
~22% at two, for at most one level of rounding where a value lies at a boundary.

Edits use the ``onnx`` package (<1.23: newer releases want protobuf 5+, which mediapipe's code
cannot use).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_CALIBRATION = Path(__file__).resolve().parent / "weights" / "kokoro_int8_calibration.safetensors"
GENERATOR_CONVS = ("/decoder/decoder/generator/resblocks.", "/decoder/decoder/generator/noise_res.")
# The decoder's 40-80 Hz blocks: their inputs join features of very different sizes (text, F0,
# energy), so each input channel is scaled to unit size as well.
DECODER_CONVS = ("/decoder/decoder/encode/", "/decoder/decoder/decode.", "/decoder/decoder/asr_res/")
STATIC_CONVS = GENERATOR_CONVS + DECODER_CONVS
SNAKE_LEVELS = 1024  # grid points per channel of a snake's table (``snakes_as_tables``)


class GraphEditError(ValueError):
    """The model is not the graph these edits understand (or its calibration is for another model)."""


@dataclass(frozen=True, slots=True)
class ConvChain:
    """One shipped dynamic-int8 convolution: ``DynamicQuantizeLinear(x) -> ConvInteger -> [+ bias]
    -> Cast -> Mul(scale)``, with everything needed to rebuild it."""

    name: str  # the ConvInteger node's name, e.g. ".../resblocks.3/convs1.0/Conv_quant"
    x: str  # its float input
    y: str  # its float output (the final Mul's)
    weight: np.ndarray  # float32 (out, in, k): the shipped uint8 weights, dequantized
    bias: np.ndarray | None
    attributes: tuple  # the ConvInteger's AttributeProtos (kernel, pads, dilations, group, strides)
    replaced: tuple  # the nodes that go: ConvInteger, [Add], Cast, Mul

    @property
    def static(self) -> bool:
        return self.name.startswith(STATIC_CONVS)

    @property
    def scales_inputs(self) -> bool:
        return self.name.startswith(DECODER_CONVS)


@dataclass(frozen=True, slots=True)
class ConvRanges:
    """A static convolution's fixed activation ranges: its input's (lo, hi), each output
    channel's typical magnitude (the 99.99th percentile of |y| over the calibration lines) and,
    where inputs are scaled, each input channel's (then (lo, hi) is that of the scaled input)."""

    x_lo: float
    x_hi: float
    y_channel: np.ndarray  # float32 (out,)
    x_channel: np.ndarray | None = None  # float32 (in,)


@dataclass(frozen=True, slots=True)
class KokoroCalibration:
    model_sha256: str
    convs: dict[str, ConvRanges]

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        tensors: dict[str, np.ndarray] = {}
        for name, r in self.convs.items():
            tensors[f"{name}:x_range"] = np.array([r.x_lo, r.x_hi], np.float32)
            tensors[f"{name}:y_channel"] = r.y_channel.astype(np.float32)
            if r.x_channel is not None:
                tensors[f"{name}:x_channel"] = r.x_channel.astype(np.float32)
        save_file(tensors, str(path), metadata={"model_sha256": self.model_sha256})

    @classmethod
    def load(cls, path: Path = DEFAULT_CALIBRATION) -> KokoroCalibration:
        from safetensors import safe_open

        if not path.is_file():
            raise GraphEditError(f"the Kokoro calibration {path} is missing (python -m lipsync.kokoro_calibrate writes it)")
        try:
            with safe_open(str(path), framework="numpy") as f:
                sha = (f.metadata() or {}).get("model_sha256", "")
                keys = list(f.keys())
                arrays = {k: f.get_tensor(k) for k in keys}
        except Exception as exc:  # safetensors raises its own error types
            raise GraphEditError(f"the Kokoro calibration {path} cannot be read: {exc}") from None
        convs: dict[str, ConvRanges] = {}
        for key in keys:
            if key.endswith(":x_range"):
                name = key[: -len(":x_range")]
                lo, hi = (float(v) for v in arrays[key])
                channel = arrays.get(f"{name}:y_channel")
                inputs = arrays.get(f"{name}:x_channel")
                if (
                    channel is None or not lo <= 0.0 <= hi or lo == hi or not np.all(channel > 0)
                    or (inputs is not None and not np.all(inputs > 0))
                ):
                    raise GraphEditError(f"the Kokoro calibration {path} has a bad entry for {name}")
                convs[name] = ConvRanges(
                    lo, hi, channel.astype(np.float32), None if inputs is None else inputs.astype(np.float32)
                )
        return cls(model_sha256=sha, convs=convs)


def _array(init: dict, name: str) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(init[name])


def find_chains(model) -> list[ConvChain]:
    """Every dynamic-int8 convolution of the shipped graph, in graph order."""
    graph = model.graph
    init, producer, consumers = _graph_maps(graph)

    def only(name: str, op: str | tuple[str, ...]):
        nodes = consumers.get(name, [])
        if len(nodes) != 1 or nodes[0].op_type not in ((op,) if isinstance(op, str) else op):
            raise GraphEditError(f"{name} does not lead to one {op} node")
        return nodes[0]

    chains: list[ConvChain] = []
    for node in graph.node:
        if node.op_type != "ConvInteger":
            continue
        quantize = producer.get(node.input[0])
        if quantize is None or quantize.op_type != "DynamicQuantizeLinear" or node.input[1] not in init:
            raise GraphEditError(f"{node.name} is not fed by DynamicQuantizeLinear and a constant weight")
        first = only(node.output[0], ("Add", "Cast"))
        add = first if first.op_type == "Add" else None
        cast = only(add.output[0], "Cast") if add is not None else first
        mul = only(cast.output[0], "Mul")
        scale_node = producer.get(mul.input[1])
        scales = [i for i in (scale_node.input if scale_node is not None else ()) if i in init]
        if len(scales) != 1:
            raise GraphEditError(f"{node.name}: cannot find its weight scale")
        weight_scale = float(_array(init, scales[0]))
        zero = float(_array(init, node.input[3])) if len(node.input) > 3 and node.input[3] else 0.0
        weight = (_array(init, node.input[1]).astype(np.float32) - zero) * weight_scale
        bias = None
        if add is not None:  # bias chain: bias / scale -> Floor -> Cast -> Reshape -> Add
            step = producer.get(add.input[1])
            for _ in range(3):
                step = producer.get(step.input[0]) if step is not None else None
            if step is None or step.op_type != "Div" or step.input[0] not in init:
                raise GraphEditError(f"{node.name}: cannot find its bias")
            bias = _array(init, step.input[0]).astype(np.float32)
        chains.append(
            ConvChain(
                name=node.name,
                x=quantize.input[0],
                y=mul.output[0],
                weight=weight,
                bias=bias,
                attributes=tuple(node.attribute),
                replaced=tuple(n for n in (node, add, cast, mul) if n is not None),
            )
        )
    return chains


def _float_conv(chain: ConvChain) -> tuple[list, list]:
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array(chain.weight, f"{chain.name}/float_weight")]
    inputs = [chain.x, f"{chain.name}/float_weight"]
    if chain.bias is not None:
        inits.append(numpy_helper.from_array(chain.bias, f"{chain.name}/float_bias"))
        inputs.append(f"{chain.name}/float_bias")
    conv = helper.make_node("Conv", inputs, [chain.y], name=f"{chain.name}/float")
    conv.attribute.extend(chain.attributes)
    return [conv], inits


def _static_conv(chain: ConvChain, ranges: ConvRanges) -> tuple[list, list]:
    """[Mul(1 / input channel sizes)] -> Q -> DQ -> Conv(DQ(int8 weight), DQ(int32 bias)) -> Q ->
    DQ -> Mul(output channel sizes)."""
    from onnx import helper, numpy_helper

    p = chain.name
    out_channels, in_channels = chain.weight.shape[:2]
    if ranges.y_channel.shape != (out_channels,) or (
        ranges.x_channel is not None and ranges.x_channel.shape != (in_channels,)
    ):
        raise GraphEditError(f"the calibration of {p} does not match the model's {out_channels}x{in_channels} channels")
    x_scale = np.float32((ranges.x_hi - ranges.x_lo) / 255.0)
    x_zero = np.uint8(np.clip(round(-ranges.x_lo / float(x_scale)), 0, 255))
    channel = ranges.y_channel.reshape(-1, *[1] * (chain.weight.ndim - 1))
    weight = chain.weight / channel  # each output channel comes out at about unit size
    x = chain.x
    scaled_input: list = []
    if ranges.x_channel is not None:  # each input channel goes in at about unit size
        shape = (1, -1, *[1] * (chain.weight.ndim - 2))
        weight = weight * ranges.x_channel.reshape(shape)
        x = f"{p}/x_scaled"
        scaled_input = [
            numpy_helper.from_array((1.0 / ranges.x_channel).astype(np.float32).reshape(shape), f"{p}/x_channel_inv"),
            helper.make_node("Mul", [chain.x, f"{p}/x_channel_inv"], [x]),
        ]
    w_scale = np.abs(weight).reshape(out_channels, -1).max(axis=1).astype(np.float64) / 127.0
    if chain.bias is not None:  # a channel of near-zero weights still needs its bias in int32
        w_scale = np.maximum(w_scale, np.abs(chain.bias / ranges.y_channel) / (float(x_scale) * 2.0**30))
    w_scale = np.maximum(w_scale, 1e-12).astype(np.float32)
    w_int = np.clip(np.rint(weight / w_scale.reshape(channel.shape)), -127, 127).astype(np.int8)
    y_scale, y_zero = np.float32(2.0 / 255.0), np.uint8(128)  # [-1, 1] after the channel division
    inits = [
        numpy_helper.from_array(np.array(x_scale), f"{p}/x_scale"),
        numpy_helper.from_array(np.array(x_zero), f"{p}/x_zero"),
        numpy_helper.from_array(w_int, f"{p}/w_int8"),
        numpy_helper.from_array(w_scale, f"{p}/w_scale"),
        numpy_helper.from_array(np.zeros(out_channels, np.int8), f"{p}/w_zero"),
        numpy_helper.from_array(np.array(y_scale), f"{p}/y_scale"),
        numpy_helper.from_array(np.array(y_zero), f"{p}/y_zero"),
        numpy_helper.from_array(ranges.y_channel.reshape(1, -1, *[1] * (chain.weight.ndim - 2)), f"{p}/y_channel"),
    ]
    if scaled_input:
        inits.append(scaled_input[0])
    nodes = scaled_input[1:] + [
        helper.make_node("QuantizeLinear", [x, f"{p}/x_scale", f"{p}/x_zero"], [f"{p}/xq"]),
        helper.make_node("DequantizeLinear", [f"{p}/xq", f"{p}/x_scale", f"{p}/x_zero"], [f"{p}/xd"]),
        helper.make_node("DequantizeLinear", [f"{p}/w_int8", f"{p}/w_scale", f"{p}/w_zero"], [f"{p}/wd"], axis=0),
    ]
    conv_inputs = [f"{p}/xd", f"{p}/wd"]
    if chain.bias is not None:
        b_scale = (x_scale * w_scale).astype(np.float32)
        b_int = np.rint(chain.bias.astype(np.float64) / ranges.y_channel / b_scale).astype(np.int32)
        inits += [
            numpy_helper.from_array(b_int, f"{p}/b_int32"),
            numpy_helper.from_array(b_scale, f"{p}/b_scale"),
            numpy_helper.from_array(np.zeros(out_channels, np.int32), f"{p}/b_zero"),
        ]
        nodes.append(helper.make_node("DequantizeLinear", [f"{p}/b_int32", f"{p}/b_scale", f"{p}/b_zero"], [f"{p}/bd"], axis=0))
        conv_inputs.append(f"{p}/bd")
    conv = helper.make_node("Conv", conv_inputs, [f"{p}/yc"], name=f"{p}/static")
    conv.attribute.extend(chain.attributes)
    nodes += [
        conv,
        helper.make_node("QuantizeLinear", [f"{p}/yc", f"{p}/y_scale", f"{p}/y_zero"], [f"{p}/yq"]),
        helper.make_node("DequantizeLinear", [f"{p}/yq", f"{p}/y_scale", f"{p}/y_zero"], [f"{p}/yd"]),
        helper.make_node("Mul", [f"{p}/yd", f"{p}/y_channel"], [chain.y]),
    ]
    return nodes, inits


def _graph_maps(graph) -> tuple[dict, dict, dict[str, list]]:
    """(initializers, producer of each tensor, consumers of each tensor) by name."""
    init = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return init, producer, consumers


def fuse_instance_norms(model) -> int:
    """Every AdaIN of the decoder, vocoder and prosody predictor as one ``InstanceNormalization``.

    The export spells each as nine elementwise nodes over the whole tensor: ``ReduceMean ->
    Sub -> Mul -> ReduceMean -> Add(eps) -> Sqrt -> Div``, then ``Mul(1 + gamma) -> Add(beta)``.
    ``InstanceNormalization(x, gamma', beta')`` is the same sum (the same population variance and
    epsilon) in one kernel: 2.2 ms instead of 5.5 ms on a 128 x 23520 tensor on one core, with
    outputs within 1e-6. Only the time axis (2) of a (1, C, T) tensor is normalised this way;
    Kokoro's layer norms are already fused ops. Returns how many were fused."""
    from onnx import helper, numpy_helper

    graph = model.graph
    init, producer, consumers = _graph_maps(graph)

    def axes_are_time(node) -> bool:
        axes = [numpy_helper.to_array(init[i]).tolist() for i in node.input[1:2] if i in init]
        axes += [list(a.ints) for a in node.attribute if a.name == "axes"]
        return axes == [[2]] and all(a.i == 1 for a in node.attribute if a.name == "keepdims")

    def made_by(name: str, op: str):
        node = producer.get(name)
        return node if node is not None and node.op_type == op else None

    flat = "adain/flat_shape"
    replace: dict[int, list] = {}  # id(node) -> the nodes that take its place
    for div in graph.node:
        if div.op_type != "Div":
            continue
        sub, sqrt = made_by(div.input[0], "Sub"), made_by(div.input[1], "Sqrt")
        mean = made_by(sub.input[1], "ReduceMean") if sub is not None else None
        add_eps = made_by(sqrt.input[0], "Add") if sqrt is not None else None
        if mean is None or add_eps is None or mean.input[0] != sub.input[0] or not axes_are_time(mean):
            continue
        eps_names = [i for i in add_eps.input if i in init]
        var = made_by(next((i for i in add_eps.input if i not in init), ""), "ReduceMean")
        square = made_by(var.input[0], "Mul") if var is not None else None
        if len(eps_names) != 1 or square is None or list(square.input) != [div.input[0]] * 2 or not axes_are_time(var):
            continue
        eps = float(numpy_helper.to_array(init[eps_names[0]]))
        for scale in consumers.get(div.output[0], []):
            after = consumers.get(scale.output[0], [])
            if scale.op_type != "Mul" or len(after) != 1 or after[0].op_type != "Add":
                continue
            gamma = next(i for i in scale.input if i != div.output[0])
            beta = next(i for i in after[0].input if i != scale.output[0])
            p = f"{div.name}/fused{len(replace)}"
            replace[id(after[0])] = [
                helper.make_node("Reshape", [gamma, flat], [f"{p}/gamma"]),
                helper.make_node("Reshape", [beta, flat], [f"{p}/beta"]),
                helper.make_node(
                    "InstanceNormalization", [sub.input[0], f"{p}/gamma", f"{p}/beta"], [after[0].output[0]],
                    name=p, epsilon=eps,
                ),
            ]
            replace[id(scale)] = []
    if replace:
        graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), flat))
        _replace_nodes(model, replace)
    return sum(1 for v in replace.values() if v)


def stft_as_convolution(model) -> int:
    """Every one-sided ``STFT`` with a constant window as a strided ``Conv`` whose filters are
    the windowed DFT (real parts, then imaginary), shaped back to (batch, frames, bins, 2).

    The vocoder analyses its harmonic source with a 20-point, hop-5 STFT: onnxruntime's ``STFT``
    kernel takes ~4% of a call for it, a 22-filter convolution a fraction of that. Returns how
    many were replaced."""
    from onnx import helper, numpy_helper

    graph = model.graph
    init, _, _ = _graph_maps(graph)
    replace: dict[int, list] = {}
    for node in graph.node:
        onesided = all(a.i == 1 for a in node.attribute if a.name == "onesided")
        if node.op_type != "STFT" or not onesided or len(node.input) < 4 or not all(i in init for i in node.input[1:4]):
            continue
        step = int(numpy_helper.to_array(init[node.input[1]]))
        window = numpy_helper.to_array(init[node.input[2]]).astype(np.float64)
        length = int(numpy_helper.to_array(init[node.input[3]]))
        if window.shape != (length,):
            continue
        bins = length // 2 + 1
        angle = 2 * np.pi * np.outer(np.arange(bins), np.arange(length)) / length  # (bins, length)
        basis = np.concatenate([np.cos(angle), -np.sin(angle)]) * window  # (2 bins, length)
        # The imaginary parts of DC and Nyquist are an FFT's rounding noise, of either sign, so
        # where the real part is negative their phase is +pi or -pi at random, and the model
        # learned on that: exact zeros (always +pi) put a line at 4.8 kHz into its output. Those
        # two rows get 1e-6 of fixed pseudo-random weights instead: random signs again, the
        # magnitudes unchanged to 1e-12.
        silent = [0, bins - 1] if length % 2 == 0 else [0]
        noise = np.random.default_rng(length).standard_normal((len(silent), length)) * window
        basis[[bins + k for k in silent]] = 1e-6 * noise
        p = f"{node.name}/as_conv"
        graph.initializer.extend([
            numpy_helper.from_array(basis.astype(np.float32)[:, None, :], f"{p}/dft"),
            numpy_helper.from_array(np.array([0, 1, -1], np.int64), f"{p}/signal_shape"),
            numpy_helper.from_array(np.array([0, 2, bins, -1], np.int64), f"{p}/parts_shape"),
        ])
        replace[id(node)] = [
            helper.make_node("Reshape", [node.input[0], f"{p}/signal_shape"], [f"{p}/signal"]),
            helper.make_node("Conv", [f"{p}/signal", f"{p}/dft"], [f"{p}/spectrum"], name=p, strides=[step]),
            helper.make_node("Reshape", [f"{p}/spectrum", f"{p}/parts_shape"], [f"{p}/parts"]),
            helper.make_node("Transpose", [f"{p}/parts"], [node.output[0]], perm=[0, 3, 2, 1]),
        ]
    _replace_nodes(model, replace)
    return len(replace)


def snakes_as_tables(model, levels: int = SNAKE_LEVELS) -> int:
    """Every snake activation whose output is rounded to uint8 for a static convolution, as a
    lookup table from the AdaIN before it straight to that uint8.

    The vocoder spells ``snake(u) = u + sin(alpha u)^2 / alpha`` (``alpha`` per channel) as five
    elementwise nodes, then ``QuantizeLinear`` rounds it to the convolution's 256 levels: ~10 ms on
    a 128 x 23,520 tensor on one core, over half of it onnxruntime's scalar ``Sin``. The AdaIN's
    own scale and bias now place ``u`` on a grid of ``levels`` points per channel, and
    ``GatherElements`` reads each point's rounded snake from a (1, C, levels) uint8 table: 3.5 ms.
    Below ``x_lo - 1 / alpha`` the snake rounds to level 0 whatever ``u`` is, above ``x_hi`` to
    255, so the grid spans only that and the clip loses nothing. Its step is ~1/4 of a level at
    1024 points: an output moves by at most one level, where ``u`` lies that close to a rounding
    boundary. Returns how many were replaced."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    init, producer, consumers = _graph_maps(graph)

    def only(name: str, op: str):
        nodes = consumers.get(name, [])
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op else None

    def constant(node, other: str) -> str | None:
        """The one constant ``node`` takes beside ``other``."""
        names = [i for i in node.input if i != other and i in init]
        return names[0] if len(names) == 1 and other in node.input else None

    replace: dict[int, list] = {}
    for sin in graph.node:
        scale = producer.get(sin.input[0]) if sin.op_type == "Sin" else None
        if scale is None or scale.op_type != "Mul":
            continue
        u = next((i for i in scale.input if i not in init), "")
        norm, alpha = producer.get(u), constant(scale, u)
        power = only(sin.output[0], "Pow")
        if norm is None or norm.op_type != "InstanceNormalization" or alpha is None or power is None:
            continue
        if constant(power, sin.output[0]) != power.input[1] or float(_array(init, power.input[1])) != 2.0:
            continue
        divide = only(power.output[0], "Mul")
        recip = constant(divide, power.output[0]) if divide is not None else None
        add = only(divide.output[0], "Add") if divide is not None else None
        quantize = only(add.output[0], "QuantizeLinear") if add is not None else None
        if recip is None or add is None or u not in add.input or quantize is None:
            continue
        if len(quantize.input) < 3 or not all(i in init for i in quantize.input[1:3]):
            continue
        if {id(n) for n in consumers[u]} != {id(scale), id(add)}:
            continue  # u is read elsewhere too
        a = _array(init, alpha).astype(np.float64).reshape(-1)
        r = _array(init, recip).astype(np.float64).reshape(-1)
        x_scale, x_zero = float(_array(init, quantize.input[1])), int(_array(init, quantize.input[2]))
        x_lo, x_hi = -x_zero * x_scale, (255 - x_zero) * x_scale
        lo = x_lo - r - x_scale  # u + r sin^2 <= u + r: below lo it rounds to 0, above x_hi to 255
        step = (x_hi + x_scale - lo) / (levels - 1)
        grid = lo[:, None] + step[:, None] * np.arange(levels)
        snake = grid + r[:, None] * np.sin(a[:, None] * grid) ** 2
        table = np.clip(np.rint(snake / x_scale) + x_zero, 0, 255).astype(np.uint8)
        p = f"{sin.name}/table"
        graph.initializer.extend([
            numpy_helper.from_array(table[None], f"{p}/values"),
            numpy_helper.from_array((1.0 / step).astype(np.float32), f"{p}/per_step"),
            numpy_helper.from_array((0.5 - lo / step).astype(np.float32), f"{p}/origin"),  # +0.5: Cast floors
            numpy_helper.from_array(np.array(0.0, np.float32), f"{p}/first"),
            numpy_helper.from_array(np.array(levels - 1, np.float32), f"{p}/last"),
        ])
        epsilon = [attr.f for attr in norm.attribute if attr.name == "epsilon"]
        replace[id(norm)] = [
            helper.make_node("Mul", [norm.input[1], f"{p}/per_step"], [f"{p}/scale"]),
            helper.make_node("Mul", [norm.input[2], f"{p}/per_step"], [f"{p}/shift"]),
            helper.make_node("Add", [f"{p}/shift", f"{p}/origin"], [f"{p}/bias"]),
            helper.make_node(
                "InstanceNormalization", [norm.input[0], f"{p}/scale", f"{p}/bias"], [f"{p}/position"],
                name=norm.name, epsilon=epsilon[0] if epsilon else 1e-5,
            ),
            helper.make_node("Clip", [f"{p}/position", f"{p}/first", f"{p}/last"], [f"{p}/clipped"]),
            helper.make_node("Cast", [f"{p}/clipped"], [f"{p}/index"], to=TensorProto.INT32),
            helper.make_node("GatherElements", [f"{p}/values", f"{p}/index"], [quantize.output[0]], name=p, axis=2),
        ]
        replace.update({id(n): [] for n in (scale, sin, power, divide, add, quantize)})
    _replace_nodes(model, replace)
    return sum(1 for nodes in replace.values() if nodes)


def _replace_nodes(model, replace: dict[int, list]) -> None:
    """Each node whose ``id`` is in ``replace`` swapped, in place, for the nodes given there
    (none: dropped), then what nothing reads any more pruned."""
    if not replace:
        return
    nodes = [new for node in model.graph.node for new in replace.get(id(node), [node])]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    _prune(model)


def streamline(model) -> dict[str, int]:
    """The graph's slow spellings replaced by fast ones (``rewrite`` makes the convolutions
    fast; this, what lies between them): AdaIN as ``InstanceNormalization``, STFT as a
    convolution (both the same sums), and, where ``rewrite`` left static int8 convolutions, the
    snakes before them as tables. Returns how many of each were replaced."""
    return {
        "instance_norms": fuse_instance_norms(model),
        "stfts": stft_as_convolution(model),
        "snakes": snakes_as_tables(model),
    }


def _prune(model) -> None:
    """Drop nodes whose outputs nothing reads, then initializers nothing reads."""
    graph = model.graph
    wanted = {o.name for o in graph.output}
    while True:
        used = set(wanted)
        for node in graph.node:
            used.update(node.input)
        keep = [n for n in graph.node if any(o in used for o in n.output)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    used = set(wanted)
    for node in graph.node:
        used.update(node.input)
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def add_outputs(model, names: Iterable[str]) -> None:
    """Expose internal float tensors as extra graph outputs (the durations, calibration probes)."""
    from onnx import TensorProto, helper

    have = {o.name for o in model.graph.output}
    produced = {out for node in model.graph.node for out in node.output}
    for name in names:
        if name not in produced:
            raise GraphEditError(f"the model computes no tensor named {name!r}")
        if name not in have:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))


def rewrite(model, calibration: KokoroCalibration | None) -> None:
    """Rebuild the shipped convolutions in place: those of ``STATIC_CONVS`` as static int8 with
    ``calibration``'s ranges and the rest as float; with ``calibration=None`` every one becomes
    float (for calibrating)."""
    chains = find_chains(model)
    if not chains:
        raise GraphEditError("the model has no dynamic-int8 convolutions to rebuild")
    if calibration is not None:
        missing = [c.name for c in chains if c.static and c.name not in calibration.convs]
        if missing:
            raise GraphEditError(f"the calibration lacks {len(missing)} convolutions, e.g. {missing[0]}")
    replace: dict[int, list] = {}
    for chain in chains:
        if calibration is not None and chain.static:
            new, inits = _static_conv(chain, calibration.convs[chain.name])
        else:
            new, inits = _float_conv(chain)
        model.graph.initializer.extend(inits)
        replace.update({id(node): [] for node in chain.replaced[1:]})
        replace[id(chain.replaced[0])] = new
    _replace_nodes(model, replace)

