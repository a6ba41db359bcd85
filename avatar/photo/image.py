"""A photo read and checked: RGB uint8 upright, with errors that say what was wrong."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PHOTO_BYTES = 20 * 2**20
MAX_SIDE_PX = 4096
MIN_SIDE_PX = 64


class PhotoError(ValueError):
    """A photo that cannot become a character: the message names the file and what to do.

    ``code`` is a stable short name for the API (``not_an_image``, ``no_face``, ...).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def decode_photo(data: bytes, *, label: str = "photo") -> np.ndarray:
    """(H, W, 3) uint8 RGB from encoded image bytes (EXIF rotation applied, alpha dropped over white)."""
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoError("photo_too_large", f"{label} is {len(data)} bytes; at most {MAX_PHOTO_BYTES}")
    if not data:
        raise PhotoError("not_an_image", f"{label} is empty")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if max(opened.size) > MAX_SIDE_PX:
                raise PhotoError("photo_too_large", f"{label} is {opened.size[0]}x{opened.size[1]}; at most {MAX_SIDE_PX} px a side")
            im: Image.Image = ImageOps.exif_transpose(opened)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                flat.alpha_composite(rgba)
                im = flat
            rgb = np.asarray(im.convert("RGB"), np.uint8).copy()
    except UnidentifiedImageError:
        raise PhotoError("not_an_image", f"{label} is not an image (JPEG, PNG, WebP, ... expected)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise PhotoError("unreadable_photo", f"{label} could not be decoded: {exc}") from None
    if min(rgb.shape[:2]) < MIN_SIDE_PX:
        raise PhotoError("photo_too_small", f"{label} is {rgb.shape[1]}x{rgb.shape[0]}; at least {MIN_SIDE_PX} px a side")
    return rgb


def read_photo(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an image file; ``PhotoError`` when missing, unreadable or not an image."""
    path = Path(path)
    if not path.is_file():
        raise PhotoError("unreadable_photo", f"photo {path} does not exist or is not a file")
    try:
        size = path.stat().st_size
        if size > MAX_PHOTO_BYTES:
            raise PhotoError("photo_too_large", f"photo {path} is {size} bytes; at most {MAX_PHOTO_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        raise PhotoError("unreadable_photo", f"photo {path} cannot be read: {exc.strerror or exc}") from None
    return decode_photo(data, label=f"photo {path}")
