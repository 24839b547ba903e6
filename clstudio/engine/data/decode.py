"""Decoding any image a person may drop in into an upright RGB array, or a reason it cannot be.

One function serves the scan, training and classify, so an image that passed the scan decodes the same
way later. Guards: a pixel-count limit before decoding (decompression bombs), EXIF orientation,
CMYK / 16-bit / palette / alpha converted rather than rejected, animated files use their first frame.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_PIXELS = 100_000_000  # 10k × 10k: far beyond any photo, far below what would exhaust RAM when decoded
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL's own bomb check, as a second line of defence


class DecodeError(Exception):
    """The file cannot be used as an image; str(e) is the reason shown to the user."""


def _open(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except FileNotFoundError:
        raise DecodeError("file no longer exists") from None
    except PermissionError:
        raise DecodeError("permission denied (cannot read the file)") from None
    except IsADirectoryError:
        raise DecodeError("is a folder, not a file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DecodeError(f"image is too large (over {MAX_PIXELS // 1_000_000} megapixels)") from None
    except UnidentifiedImageError:
        size = path.stat().st_size if path.exists() else 0
        raise DecodeError("empty file (0 bytes)" if size == 0 else "not an image (unknown or damaged format)") from None
    except OSError as e:
        # An errno means the file system refused; without one, PIL found the data itself broken.
        reason = f"cannot read: {e.strerror}" if e.errno is not None else f"damaged image data ({e})"
        raise DecodeError(reason) from None
    except (ValueError, SyntaxError, EOFError) as e:
        # Some plugins report a truncated header this way (PPM: "Reached EOF while reading header").
        raise DecodeError(f"not an image (damaged header: {e})") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise DecodeError(
            f"image is too large ({w}×{h} = {w * h / 1e6:.0f} megapixels; limit {MAX_PIXELS // 1_000_000})"
        )
    if w < 1 or h < 1:
        raise DecodeError("image has no pixels")
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / float greyscale: convert('RGB') would clip everything above 255 to white.
        a = np.asarray(img, dtype=np.float32)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        img = Image.fromarray(a.astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels over white, as a person sees them in a viewer (not black, as a plain convert).
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def decode_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode to an upright uint8 RGB array (H, W, 3); resized to size×size (as the paper's Resize) if given."""
    path = Path(path)
    img = _open(path)
    try:
        if size and img.format == "JPEG":
            img.draft("RGB", (size, size))  # decode a big JPEG at 1/2..1/8 scale: much faster, same result size
        if getattr(img, "is_animated", False):
            img.seek(0)  # animated GIF/WebP: the first frame
        img.load()
        img = ImageOps.exif_transpose(img) or img
        img = _to_rgb(img)
        if size:
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8).copy()
    except DecodeError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # PIL reports truncated/corrupt data as OSError ("image file is truncated", "broken data stream"...).
        raise DecodeError(f"damaged image data ({e})") from None
    except MemoryError:
        raise DecodeError("not enough memory to decode this image") from None
    finally:
        img.close()


def check_image(path: str | Path) -> str | None:
    """Fully decode (at reduced scale where the format allows) and return None, or the reason it fails."""
    try:
        decode_rgb(path, size=64)
    except DecodeError as e:
        return str(e)
    return None
