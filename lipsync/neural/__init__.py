"""The neural talking-head model: FaceGen (config, network), its data, flow loss, training, checkpoints.

Data flow: ``data`` (face-crop clips as arrays, or the synthetic toy face) -> ``flow`` (rectified
flow loss) -> ``train`` (resumable teacher training) -> ``checkpoint`` (safetensors). Sampling,
distillation and int8 live in ``accel/``.
"""
