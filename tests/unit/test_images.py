"""Image files to dataset-style 28x28 images: transparency, EXIF rotation, grey paper, cropping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from hpo.core.images import dataset_style, read_image
from hpo.errors import DataError


def seven(size: int = 200) -> np.ndarray:
    """A '7'-like stroke: ink 1.0 on 0.0, off-centre in a wide page (float H x W)."""
    a = np.zeros((size, int(size * 1.5)), dtype=np.float32)
    a[40:55, 60:170] = 1.0  # the bar
    for i in range(120):  # the stem, slanting
        a[55 + i, 150 - i // 3 : 165 - i // 3] = 1.0
    return a


def framed(a: np.ndarray) -> np.ndarray:
    return (
        dataset_style(Image.fromarray((a * 255).astype(np.uint8)), framing="digit", shape=(1, 28, 28))[0][
            0
        ].astype(np.float32)
        / 255
    )


def similar(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x.ravel(), y.ravel())[0, 1])


def test_black_strokes_on_a_transparent_canvas(tmp_path: Path) -> None:
    stroke = seven()
    rgba = np.zeros((*stroke.shape, 4), dtype=np.uint8)  # black everywhere...
    rgba[..., 3] = (stroke * 255).astype(np.uint8)  # ...but only the stroke is opaque
    Image.fromarray(rgba).save(tmp_path / "canvas.png")
    (out,), inverted = dataset_style(read_image(tmp_path / "canvas.png"), framing="digit", shape=(1, 28, 28))
    assert inverted and out.max() > 200 and out[0, 0] == 0  # light ink on dark, as MNIST
    assert similar(out.astype(np.float32) / 255, framed(stroke)) > 0.95


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    page = Image.fromarray(((1 - seven()) * 255).astype(np.uint8))  # dark ink on a white page
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": the camera stored it on its side
    page.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    (out,), _ = dataset_style(read_image(tmp_path / "photo.jpg"), framing="digit", shape=(1, 28, 28))
    assert similar(out.astype(np.float32) / 255, framed(seven())) > 0.9


def test_grey_paper_and_soft_ink_are_stretched(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paper = 150 + rng.normal(0, 6, seven().shape) - np.linspace(0, 20, seven().shape[1])  # uneven light
    photo = np.where(seven() > 0, 70.0, paper).clip(0, 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "grey.png")
    (out,), inverted = dataset_style(read_image(tmp_path / "grey.png"), framing="digit", shape=(1, 28, 28))
    assert inverted and np.median(out) == 0 and out.max() > 200  # the paper is gone, the ink is full
    assert similar(out.astype(np.float32) / 255, framed(seven())) > 0.9


def test_clothes_fill_the_frame_and_dataset_images_pass_through() -> None:
    page = np.full((300, 400), 255, dtype=np.uint8)
    page[50:250, 120:220] = 30  # a dark trouser-like object on a white page
    (out,), _ = dataset_style(Image.fromarray(page), framing="object", shape=(1, 28, 28))
    rows, cols = np.nonzero(out > 64)
    assert rows.min() == 0 and rows.max() == 27  # the longer side spans the frame
    assert 12 <= cols.max() - cols.min() + 1 <= 16  # aspect kept: 200 x 100 -> 28 x 14
    ready = np.arange(784, dtype=np.uint8).reshape(28, 28)
    assert np.array_equal(
        dataset_style(Image.fromarray(ready), framing="digit", shape=(1, 28, 28))[0][0], ready
    )


def test_unreadable_files_are_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="is not an image"):
        read_image(tmp_path / "notes.txt")


# The peak resident memory of the child's own address space (VmHWM): getrusage's ru_maxrss
# survives exec, so a child of a large pytest process would report its parent's size.
PEAK = """
import sys
from pathlib import Path
from hpo.core.images import dataset_style, read_image
a, _ = dataset_style(read_image(Path(sys.argv[1])), framing="digit", shape=(1, 28, 28))
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(int(status["VmHWM"].split()[0]) // 1024, int(a.max()))
"""


@pytest.mark.slow
def test_a_huge_png_is_shrunk_first_in_bounded_memory(tmp_path: Path) -> None:
    """A 13000x13000 RGBA PNG (a 660 KB file) took 5-6 GB and 12-30 s: the work before shrinking
    ran at full resolution in float32. Now it is decoded (676 MB) and shrunk at once."""
    img = Image.new("RGBA", (13000, 13000), (0, 0, 0, 0))
    ImageDraw.Draw(img).line([(6500, 2000), (6500, 11000)], fill=(0, 0, 0, 255), width=900)  # a "1"
    img.save(tmp_path / "big.png")
    del img
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(tmp_path / "big.png")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak_mb, ink = map(int, done.stdout.split())
    assert peak_mb < 2500 and ink > 200, (peak_mb, ink)


def test_an_image_too_large_to_decode_is_one_clear_line(tmp_path: Path) -> None:
    """20000x20000 pixels: refused from its header ("unexpected DecompressionBombError" before)."""
    Image.new("1", (20000, 20000)).save(tmp_path / "huge.png")
    with pytest.raises(
        DataError, match=r"huge.png is more than the 178 megapixels this tool decodes: shrink it"
    ):
        read_image(tmp_path / "huge.png")
