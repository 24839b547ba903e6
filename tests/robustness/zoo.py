"""The bad-input zoo, generated at test time (no binary blobs in the repository)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

GOOD_PER_CLASS = 6


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _photo(rng: np.random.Generator, size=(40, 30), mode="RGB") -> Image.Image:
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB").convert(mode)


def build_zoo(root: Path) -> dict[str, str]:
    """Write a task folder full of trouble; returns {relative path: expectation} where expectation is
    'good' (must be kept), 'bad' (reported with a reason) or 'skipped' (hidden/system, listed)."""
    rng = np.random.default_rng(0)
    expect: dict[str, str] = {}

    def put(rel: str, data: bytes, kind: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expect[rel] = kind

    for cls in ("cats", "dogs"):
        for i in range(GOOD_PER_CLASS):
            put(f"{cls}/plain_{i}.png", _png_bytes(_photo(rng)), "good")
    good_jpeg = io.BytesIO()
    _photo(rng, (64, 48)).save(good_jpeg, "JPEG", quality=90)
    jpeg = good_jpeg.getvalue()
    put("cats/zero_bytes.jpg", b"", "bad")
    put("cats/truncated.jpg", jpeg[: len(jpeg) // 3], "bad")
    png = bytearray(_png_bytes(_photo(rng)))
    png[40] ^= 0xFF  # inside the first chunk's data: its CRC no longer matches
    put("cats/bad_crc.png", bytes(png), "bad")
    put("cats/text.jpg", b"Dear diary, today I learned about JPEG.\n" * 20, "bad")
    put("dogs/page.png", b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "bad")
    cmyk = io.BytesIO()
    _photo(rng, mode="CMYK").save(cmyk, "JPEG")
    put("cats/cmyk.jpg", cmyk.getvalue(), "good")
    sixteen = Image.fromarray((rng.integers(0, 65535, (30, 40))).astype(np.uint16))
    put("cats/sixteen_bit.png", _png_bytes(sixteen), "good")
    put("dogs/rgba.png", _png_bytes(_photo(rng, mode="RGBA")), "good")
    put("dogs/palette.png", _png_bytes(_photo(rng).convert("P")), "good")
    put("dogs/grey.png", _png_bytes(_photo(rng, mode="L")), "good")
    # EXIF orientation 6: stored 40×20 landscape, shown (and trained) as 20×40 portrait
    rot = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 20), (200, 30, 30)).save(rot, "JPEG", exif=exif.tobytes())
    put("dogs/rotated.jpg", rot.getvalue(), "good")
    frames = [_photo(rng, (24, 24)).convert("P") for _ in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    put("dogs/animated.gif", gif.getvalue(), "good")
    put("dogs/bomb.png", _huge_png(20000, 20000), "bad")
    put("cats/one_pixel.png", _png_bytes(Image.new("RGB", (1, 1), (9, 9, 9))), "good")
    put("cats/.DS_Store", b"\0\0\0\1Bud1\0", "skipped")
    put("dogs/Thumbs.db", b"\xd0\xcf\x11\xe0", "skipped")
    put("dogs/desktop.ini", b"[.ShellClassInfo]\n", "skipped")
    put("cats/._plain_0.png", b"\0\5\26\7\0\2\0\0Mac OS X", "skipped")
    put(".hidden_folder/x.png", _png_bytes(_photo(rng)), "skipped")
    put("cats/café ☕ 猫.png", _png_bytes(_photo(rng)), "good")
    put("cats/🐱 emoji.png", _png_bytes(_photo(rng)), "good")
    raw = os.fsencode(root / "dogs") + b"/latin1_\xe9t\xe9.png"  # not valid UTF-8
    with open(raw, "wb") as f:
        f.write(_png_bytes(_photo(rng)))
    expect["dogs/latin1_\udce9t\udce9.png"] = "good"
    (root / "dogs" / "loop").symlink_to(root / "dogs", target_is_directory=True)
    expect["dogs/loop"] = "skipped"
    return expect


def _huge_png(w: int, h: int) -> bytes:
    """A valid PNG header claiming w×h pixels (with a tiny, compressed body): a decompression bomb."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit greyscale
    body = zlib.compress(b"\0" * (w + 1) * 64)  # only the first rows: the header is what must be refused
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
