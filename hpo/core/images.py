"""Image files -> uint8 arrays: a user's training images as they are (`decode_rgb`), and images
framed like the training data for `hpo predict` (`dataset_style`). PIL's one home.

For MNIST and Fashion-MNIST:

What a person gives is rarely MNIST-like: a drawing canvas exports a black stroke on a
transparent background, a phone photo is stored sideways with an EXIF rotation, grey paper has a
grey background and soft ink. So, in order: apply the EXIF orientation; composite any
transparency onto a background that contrasts with the strokes; make it grayscale with light ink
on a dark background (inverting a light page); estimate the background and ink levels from the
image and stretch between them; then, as the datasets were made, crop to the object and fit it
(digits: into 20x20, centred by centre of mass in 28x28; clothes: the whole 28x28 frame). An
image that is already 28x28 is taken as framed like the dataset: it is only inverted if light."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from hpo.errors import DataError

INK = 0.25  # a pixel is ink above this fraction of the way from background to ink level
# Images are read at most this many pixels on a side: the object is fitted into 20x20 in the end,
# and the work before that (float arrays, filters) grows with the pixels (a 13000x13000 PNG took
# 6 GB and 30 s). A phone photo keeps its strokes several pixels wide at this size.
WORKING_SIDE = 2048
# Larger files are refused before they are decoded (decoding alone takes up to 4 bytes a pixel):
# Pillow's own limit, where it raises DecompressionBombError (twice MAX_IMAGE_PIXELS: 179 MP).
MAX_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)


def read_image(path: Path) -> Image.Image:
    """The file's image, upright (EXIF orientation applied), with its transparency if any, shrunk to
    at most WORKING_SIDE pixels a side right after decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # bounded here instead
            return _decoded(path)
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except Image.DecompressionBombError:
        limit = MAX_PIXELS // 10**6
        raise DataError(
            f"{path} is more than the {limit} megapixels this tool decodes: shrink it first"
        ) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path} is not an image this tool can read (PNG or JPEG): {exc}") from None


def _decoded(path: Path) -> Image.Image:
    with Image.open(path) as img:
        _check_size(path, img.size)
        img.draft("RGB", (WORKING_SIDE, WORKING_SIDE))  # a JPEG decodes at a fraction of its size
        img.load()
        img.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BOX)  # in place; keeps the aspect
        upright = ImageOps.exif_transpose(img)
        return upright if upright is not None else img


def _check_size(path: Path, size: tuple[int, int]) -> None:
    """Refuse an image too large to decode, from its header alone."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise DataError(
            f"{path} is {width}x{height} pixels ({width * height / 10**6:.0f} megapixels), more than "
            f"the {MAX_PIXELS // 10**6} this tool decodes: shrink it first (its object ends up 20x20)"
        )


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """Transparency composited onto white behind dark strokes, onto black behind light ones."""
    if img.mode not in ("RGBA", "LA", "PA") and not (img.mode == "P" and "transparency" in img.info):
        return img.convert("L")
    rgba = img.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32)
    if alpha.min() >= 255:
        return rgba.convert("L")
    gray = np.asarray(rgba.convert("L"), dtype=np.float32)
    strokes = gray[alpha > 127]
    back = 255 if strokes.size == 0 or float(np.median(strokes)) < 128 else 0
    a = alpha / 255
    return Image.fromarray((gray * a + back * (1 - a)).round().astype(np.uint8))


def _border(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])


def _without_background(a: np.ndarray) -> np.ndarray:
    """Subtract the page's own, possibly uneven, background level (paper under a lamp): the
    minimum over windows wider than a stroke (about 1/9 of the page), smoothed, computed on a
    64-pixel thumbnail so a photo of any size costs the same."""
    img = Image.fromarray((a * 255).round().astype(np.uint8))
    scale = 64 / max(img.size)
    thumb = img.resize(
        (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BOX
    )
    level = thumb.filter(ImageFilter.MinFilter(7)).filter(ImageFilter.GaussianBlur(3))
    background = np.asarray(level.resize(img.size, Image.Resampling.BILINEAR), dtype=np.float32) / 255
    return np.clip(a - background, 0, 1)


def light_on_dark(img: Image.Image) -> tuple[np.ndarray, bool]:
    """Float (H, W) array in 0..1, ink light on a dark background, the background level removed
    and the ink level stretched to 1; and whether the page was light (inverted)."""
    gray = _flatten_alpha(img)
    if max(gray.size) > 256:  # enough for a 28x28 result, and fast
        gray = ImageOps.contain(gray, (256, 256), Image.Resampling.LANCZOS)
    a = np.asarray(gray.filter(ImageFilter.MedianFilter(3)), dtype=np.float32) / 255  # no speckles
    inverted = float(np.median(_border(a))) > 0.5
    a = _without_background(1 - a if inverted else a)
    ink = float(np.percentile(a, 99.5))
    if ink < 0.05:  # a blank page: nothing to stretch
        return np.zeros_like(a), inverted
    return np.clip(a / ink, 0, 1), inverted


def _crop_to_ink(a: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(a > INK)
    if rows.size == 0:
        return a
    return a[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _resized(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray((a * 255).round().astype(np.uint8))
    return np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.float32) / 255


def _fit(a: np.ndarray, *, box: int) -> np.ndarray:
    """Scale so the longer side is `box` pixels, keeping the aspect ratio."""
    scale = box / max(a.shape)
    return _resized(a, (max(1, round(a.shape[1] * scale)), max(1, round(a.shape[0] * scale))))


def digit_frame(a: np.ndarray) -> np.ndarray:
    """MNIST's recipe: ink bounding box -> fit in 20x20 -> centre of mass at the 28x28 centre."""
    digit = _fit(_crop_to_ink(a), box=20)
    canvas = np.zeros((28, 28), dtype=np.float32)
    total = float(digit.sum()) or 1.0
    cy, cx = (np.indices(digit.shape) * digit).reshape(2, -1).sum(1) / total
    top = int(np.clip(round(14 - cy), 0, 28 - digit.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - digit.shape[1]))
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return canvas


def object_frame(a: np.ndarray) -> np.ndarray:
    """Fashion-MNIST's recipe: the object's bounding box, fitted into the 28x28 frame, centred."""
    item = _fit(_crop_to_ink(a), box=28)
    canvas = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - item.shape[0]) // 2, (28 - item.shape[1]) // 2
    canvas[top : top + item.shape[0], left : left + item.shape[1]] = item
    return canvas


def decode_rgb(path: Path) -> np.ndarray:
    """An image file as uint8 (H, W, 3), upright; transparency composited onto black."""
    img = read_image(path)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        back = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(back, img.convert("RGBA"))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def resize_rgb(a: np.ndarray, *, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) -> (height, width, 3) = `size`, the aspect ratio not kept (as a user's
    training images are resized)."""
    img = Image.fromarray(a).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def dataset_style(img: Image.Image, *, framing: str, shape: tuple[int, int, int]) -> tuple[np.ndarray, bool]:
    """Any image -> uint8 (C, H, W) = `shape` like the dataset's, and whether its page was inverted.
    A user's own data ("resize") is taken as its images were: resized, grey or colour as they."""
    if framing == "resize":
        a = resize_rgb(np.asarray(img.convert("RGB"), dtype=np.uint8), size=shape[1:])
        a = a.transpose(2, 0, 1)  # (3, H, W)
        return (a[:1] if shape[0] == 1 else a), False
    if img.size == (28, 28):  # already framed like the dataset: only a light page is inverted
        a = np.asarray(_flatten_alpha(img), dtype=np.uint8)
        inverted = float(np.median(_border(a))) > 127
        return (255 - a if inverted else a)[None], inverted
    a, inverted = light_on_dark(img)
    framed = digit_frame(a) if framing == "digit" else object_frame(a)
    return (framed * 255).round().astype(np.uint8)[None], inverted


def contact_sheet(images: list[np.ndarray], *, path: Path, zoom: int = 6) -> Path:
    """The (C, H, W) images the model saw, side by side and enlarged, as one PNG."""
    hwc = [
        np.repeat(i, 3, axis=0).transpose(1, 2, 0) if i.shape[0] == 1 else i.transpose(1, 2, 0)
        for i in images
    ]
    row = np.concatenate([np.pad(i, ((1, 1), (1, 1), (0, 0)), constant_values=128) for i in hwc], axis=1)
    sheet = Image.fromarray(row).resize((row.shape[1] * zoom, row.shape[0] * zoom), Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
