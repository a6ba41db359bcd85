"""Sound -> mouth shape for a video-built model: the one place the audio half of it happens.

Viseme weights per 25 fps frame come from the face drive (lipsync/lip_drive.py, through
``avatar_photo.audio_mouths``), or from the live-audio estimator while the face drive's weights
are not there; a frame without weights (the voice gate shut) is silence. A person's
``ShapeCalibration`` turns them into that person's inner-lip opening and lip width
(lipsync/neural/shape_drive.py); silence is their closed mouth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from lipsync.audio_mouth import track_mouth
from lipsync.lip_drive import LipDrive, LipDriveError
from lipsync.neural.shape_drive import ShapeCalibration
from stream.live.inputs.audio_input import AudioModels
from stream.tools.avatar_photo import audio_mouths

logger = logging.getLogger(__name__)

MouthsFn = Callable[[np.ndarray], list[np.ndarray | None]]


def speech_mouths() -> MouthsFn:
    """Sound (int16 48 kHz mono) -> viseme weights per 25 fps frame, None while silent."""
    try:
        drive = LipDrive.load()
    except LipDriveError as err:
        logger.warning("the live-audio estimator drives the mouth: %s", err)
        models = AudioModels.load()
        cfg = models.config.mouth
        return lambda pcm: [f.weights for f in track_mouth(pcm, vad=models.vad, shape=models.shape, config=cfg)]
    return lambda pcm: audio_mouths(pcm, drive)


def speech_shapes(
    pcm: np.ndarray, calibrations: Sequence[ShapeCalibration], *, mouths: MouthsFn
) -> list[np.ndarray]:
    """Per calibration, the (N, 2) shape track of ``pcm`` (one row per 25 fps frame)."""
    weights = mouths(pcm)
    return [cal.track_from_visemes(weights) for cal in calibrations]
