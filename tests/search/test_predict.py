"""`hpo predict`: image files classified by the best model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers import assert_one_line_error, hpo, search


def _test_images(data_dir: Path, folder: str) -> tuple[np.ndarray, np.ndarray]:
    raw = data_dir / folder / "raw"
    images = np.frombuffer((raw / "t10k-images-idx3-ubyte").read_bytes()[16:], dtype=np.uint8).reshape(
        -1, 28, 28
    )
    labels = np.frombuffer((raw / "t10k-labels-idx1-ubyte").read_bytes()[8:], dtype=np.uint8)
    return images, labels


def test_predict_labels_png_cut_from_test_set(workdir: Path, data_dir: Path) -> None:
    # The synthetic classes are encoded by position, so the images stay 28x28: framed like the
    # dataset, used as they are (a larger image would be cropped to its object).
    search(data_dir, trials=1, epochs=3, dataset="fashion-mnist", study="f")
    images, labels = _test_images(data_dir, "FashionMNIST")
    paths = []
    for i in range(6):
        Image.fromarray(images[i]).save(f"img{i}.png")
        paths.append(f"img{i}.png")
    Image.fromarray(255 - images[6]).save("light.jpg")  # dark on light: must be inverted back
    code, out, err = hpo(
        "predict", *paths, "light.jpg", "--study", "f", "--top", 3, "--show-input", "seen.png"
    )
    assert code == 0, out + err
    from hpo.core.datasets import FASHION_CLASSES

    rows = [line for line in out.splitlines() if line.strip().startswith(("img", "light"))]
    assert len(rows) == 7
    for i, row in enumerate(rows):
        assert FASHION_CLASSES[int(labels[i])] in row, row
    assert "(inverted)" in rows[6]
    assert "never evaluated on the test set" in out.splitlines()[-1]  # the model was never tested
    assert "wrote seen.png" in out and Image.open("seen.png").size == (7 * 30 * 6, 30 * 6)


def test_predict_rejects_non_image(searched: Path) -> None:
    Path("notes.txt").write_text("not an image")
    code, out, err = hpo("predict", "notes.txt")
    assert_one_line_error(code, out, err, "notes.txt is not an image")
    code, out, err = hpo("predict", "missing.png")
    assert_one_line_error(code, out, err, "missing.png does not exist")
