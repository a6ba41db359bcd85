"""Expose an internal tensor of a serialised ONNX model as an extra graph output.

Kokoro's exported graph returns only audio; the per-token durations it computes on the way
(``/encoder/Clip_output_0``) are what the mouth track needs. Adding a graph output is one
``ValueInfoProto`` appended to ``GraphProto.output``, so this edits the protobuf wire format
directly (a few length-prefixed fields) instead of depending on the ``onnx`` package, whose
protobuf pin conflicts with other packages of this environment.

Wire format used (onnx.proto): ``ModelProto.graph`` is field 7; ``GraphProto.output`` field 12;
``ValueInfoProto`` has ``name`` (1) and ``type`` (2); ``TypeProto.tensor_type`` is field 1 and
``TypeProto.Tensor.elem_type`` field 1.
"""

from __future__ import annotations

from collections.abc import Iterator

_LEN = 2  # wire type: length-delimited
ONNX_FLOAT = 1  # TensorProto.DataType.FLOAT
_GRAPH_FIELD = 7
_GRAPH_OUTPUT_FIELD = 12
_GRAPH_NODE_FIELD = 1


class OnnxEditError(ValueError):
    """The bytes are not an ONNX model this editor understands."""


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise OnnxEditError("truncated varint: the model file is cut short")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(data: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(field number, wire type, start of the field, start of its payload, end) for each field."""
    i = 0
    while i < len(data):
        start = i
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _read_varint(data, i)
            payload = start
        elif wire == 1:
            payload, i = i, i + 8
        elif wire == 5:
            payload, i = i, i + 4
        elif wire == _LEN:
            length, payload = _read_varint(data, i)
            i = payload + length
        else:
            raise OnnxEditError(f"unsupported protobuf wire type {wire} at byte {start}")
        if i > len(data):
            raise OnnxEditError(f"field {number} at byte {start} runs past the end of the data")
        yield number, wire, start, payload, i


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(len(payload)) + payload


def _value_info(name: str, elem_type: int) -> bytes:
    tensor_type = _varint(1 << 3) + _varint(elem_type)  # Tensor.elem_type, no shape
    type_proto = _length_delimited(1, tensor_type)
    return _length_delimited(1, name.encode()) + _length_delimited(2, type_proto)


def _node_outputs(node: bytes) -> list[str]:
    return [node[p:e].decode("utf-8", "replace") for n, w, _, p, e in _fields(node) if n == 2 and w == _LEN]


def add_output(model: bytes, tensor: str, *, elem_type: int = ONNX_FLOAT) -> bytes:
    """``model`` with the internal tensor ``tensor`` added to the graph's outputs.

    Raises ``OnnxEditError`` when the model has no graph or no node produces ``tensor``.
    """
    out = bytearray()
    found_graph = False
    for number, wire, start, payload, end in _fields(model):
        if number != _GRAPH_FIELD or wire != _LEN:
            out += model[start:end]
            continue
        found_graph = True
        graph = model[payload:end]
        produced = any(
            tensor in _node_outputs(graph[p:e])
            for n, w, _, p, e in _fields(graph)
            if n == _GRAPH_NODE_FIELD and w == _LEN
        )
        if not produced:
            raise OnnxEditError(f"no node of the graph produces {tensor!r}: is this the expected model?")
        out += _length_delimited(_GRAPH_FIELD, graph + _length_delimited(_GRAPH_OUTPUT_FIELD, _value_info(tensor, elem_type)))
    if not found_graph:
        raise OnnxEditError("the data holds no ONNX graph (ModelProto field 7)")
    return bytes(out)
