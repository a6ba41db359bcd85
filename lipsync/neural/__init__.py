"""The neural talking-head model: FaceGen (config, network), its data, flow loss, training, checkpoints.

Data flow: ``data`` (face-crop clips as arrays, or the synthetic toy face) and ``video_io`` /
``video_shapes`` (a person's video as head-following crops driven by their mouth's shape, from
plain landmark arrays; ``shape_drive`` the drive and ``DriveSwapDataset``) -> ``flow`` (rectified flow loss) ->
``train`` (resumable teacher training) -> ``checkpoint`` (safetensors) -> ``weights`` (which file
serves which character). ``regions`` cuts face crops out of frames and pastes generated ones back.
Sampling, distillation, int8 and batching live in ``accel/``; painting into rig frames in
``avatar/neural``; the build and animate commands in ``stream/tools``.
"""
