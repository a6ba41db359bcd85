"""Colours the rig derives from a look, and the fixed mouth-interior colours.

The mouth interior (cavity, teeth, tongue) is painted in flat constant colours that no skin, lip,
hair or beard colour comes near, so ``avatar.measure`` can read how open a mouth is from pixels.
"""

from __future__ import annotations

from avatar.draw import Rgb, mix, shade

CAVITY_RGB: Rgb = (96, 18, 52)
TEETH_RGB: Rgb = (226, 236, 252)  # a cool white, well away from eye whites and white shirts
TONGUE_RGB: Rgb = (226, 84, 104)
MOUTH_INTERIOR_RGB: tuple[Rgb, ...] = (CAVITY_RGB, TEETH_RGB, TONGUE_RGB)

EYE_WHITE_RGB: Rgb = (252, 252, 250)
PUPIL_RGB: Rgb = (26, 22, 30)
LINE_RGB: Rgb = (44, 34, 40)
_ROSE: Rgb = (200, 96, 108)
_BLUSH: Rgb = (240, 112, 122)


def lip_rgb(skin: Rgb) -> Rgb:
    """Lip colour: the skin pulled towards rose and a little darker."""
    return shade(mix(skin, _ROSE, 0.30), 0.93)


def lip_line_rgb(skin: Rgb) -> Rgb:
    """The line of a closed mouth and the mouth-corner creases."""
    return mix(shade(skin, 0.45), (96, 40, 44), 0.35)


def skin_shadow_rgb(skin: Rgb) -> Rgb:
    return mix(shade(skin, 0.84), (120, 60, 70), 0.10)


def blush_rgb(skin: Rgb) -> Rgb:
    return mix(skin, _BLUSH, 0.75)


def brow_rgb(hair: Rgb) -> Rgb:
    return shade(hair, 0.80)
