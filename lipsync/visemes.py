"""The 15-viseme set and what each mouth shape looks like.

The set is the one most 2D and 3D lip-sync tools share (sil PP FF TH DD kk CH SS nn RR aa E ih oh ou).
``MOUTH_SHAPES`` describes each viseme by articulation so renderers draw them consistently and
tests can ask how open a mouth should be.
"""

from __future__ import annotations

from dataclasses import dataclass

VISEMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou",
)
N_VISEMES = len(VISEMES)
VISEME_INDEX: dict[str, int] = {name: i for i, name in enumerate(VISEMES)}
SIL = VISEME_INDEX["sil"]


@dataclass(frozen=True, slots=True)
class MouthShape:
    """Articulation of one viseme, each in 0..1.

    jaw_open: gap between the lips (0 closed, 1 widest "aa").
    width: mouth corners apart (0 narrow/pursed, 1 wide smile "E").
    round: lip protrusion and rounding ("oh", "ou").
    upper_teeth / lower_teeth: how much of each row shows.
    tongue: tongue tip visible (TH, DD, nn).
    lip_tuck: lower lip under the upper teeth (FF).
    """

    jaw_open: float
    width: float
    round: float
    upper_teeth: float
    lower_teeth: float
    tongue: float
    lip_tuck: float


MOUTH_SHAPES: dict[str, MouthShape] = {
    "sil": MouthShape(jaw_open=0.00, width=0.50, round=0.0, upper_teeth=0.0, lower_teeth=0.0, tongue=0.0, lip_tuck=0.0),
    "PP": MouthShape(jaw_open=0.00, width=0.45, round=0.1, upper_teeth=0.0, lower_teeth=0.0, tongue=0.0, lip_tuck=0.0),
    "FF": MouthShape(jaw_open=0.12, width=0.55, round=0.0, upper_teeth=0.9, lower_teeth=0.0, tongue=0.0, lip_tuck=1.0),
    "TH": MouthShape(jaw_open=0.25, width=0.55, round=0.0, upper_teeth=0.7, lower_teeth=0.3, tongue=1.0, lip_tuck=0.0),
    "DD": MouthShape(jaw_open=0.30, width=0.60, round=0.0, upper_teeth=0.6, lower_teeth=0.3, tongue=0.6, lip_tuck=0.0),
    "kk": MouthShape(jaw_open=0.40, width=0.60, round=0.0, upper_teeth=0.5, lower_teeth=0.3, tongue=0.2, lip_tuck=0.0),
    "CH": MouthShape(jaw_open=0.25, width=0.40, round=0.6, upper_teeth=0.8, lower_teeth=0.6, tongue=0.0, lip_tuck=0.0),
    "SS": MouthShape(jaw_open=0.12, width=0.70, round=0.0, upper_teeth=1.0, lower_teeth=0.8, tongue=0.0, lip_tuck=0.0),
    "nn": MouthShape(jaw_open=0.22, width=0.60, round=0.0, upper_teeth=0.5, lower_teeth=0.2, tongue=0.7, lip_tuck=0.0),
    "RR": MouthShape(jaw_open=0.28, width=0.40, round=0.5, upper_teeth=0.4, lower_teeth=0.2, tongue=0.2, lip_tuck=0.0),
    "aa": MouthShape(jaw_open=1.00, width=0.65, round=0.0, upper_teeth=0.5, lower_teeth=0.2, tongue=0.3, lip_tuck=0.0),
    "E": MouthShape(jaw_open=0.55, width=0.85, round=0.0, upper_teeth=0.7, lower_teeth=0.4, tongue=0.2, lip_tuck=0.0),
    "ih": MouthShape(jaw_open=0.38, width=0.80, round=0.0, upper_teeth=0.7, lower_teeth=0.5, tongue=0.1, lip_tuck=0.0),
    "oh": MouthShape(jaw_open=0.70, width=0.35, round=0.8, upper_teeth=0.2, lower_teeth=0.0, tongue=0.1, lip_tuck=0.0),
    "ou": MouthShape(jaw_open=0.35, width=0.20, round=1.0, upper_teeth=0.0, lower_teeth=0.0, tongue=0.0, lip_tuck=0.0),
}

# How open each viseme's mouth is, by index: what tests compare rendered mouths against.
JAW_OPEN: tuple[float, ...] = tuple(MOUTH_SHAPES[v].jaw_open for v in VISEMES)
