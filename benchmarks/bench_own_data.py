"""A user's own images, end to end: Fashion-MNIST exported to PNG class folders (train/ and test/,
one folder per class), then the same commands a user runs: `hpo search --data FOLDER --budget B`
and `hpo best --evaluate-test`, each timed as a process. Prints one markdown row for
benchmarks/QUALITY.md ("Your own data") and writes the two commands' output beside it.

    python benchmarks/bench_own_data.py --data-dir ../shared/datasets --budget 10m --work /tmp/own

The export is done once (70,000 PNGs, about 25 MB); its time is not part of the search's."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_epoch import machine  # beside this script
from PIL import Image

from hpo.config import DataConfig
from hpo.core.datasets import DATASETS, open_registered
from hpo.core.device import resolve_device


def export_png(*, data_dir: str, out: Path) -> float:
    """Fashion-MNIST's IDX files -> OUT/{train,test}/NN-CLASS/NNNNN.png; seconds taken (0 if done)."""
    if (out / "test").is_dir():
        return 0.0
    start = time.perf_counter()
    dataset = open_registered(DataConfig(dataset="fashion-mnist", data_dir=data_dir))
    names = [f"{i}-{re.sub(r'[^A-Za-z]+', '_', c)}" for i, c in enumerate(DATASETS["fashion-mnist"].classes)]
    for split, train in (("train", True), ("test", False)):
        images, labels = dataset.read(train, False)
        for i, (image, label) in enumerate(zip(images.numpy(), labels.numpy(), strict=True)):
            folder = out / split / names[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(image[0])).save(folder / f"{i:05d}.png")
    return time.perf_counter() - start


def timed(argv: list[str], *, cwd: Path, log: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}); see {log}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--budget", default="10m")
    parser.add_argument("--work", type=Path, default=Path("/tmp/hpo-own-data"))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    folder = args.work / "fashion-png"
    exported = export_png(data_dir=args.data_dir, out=folder)
    project = args.work / "project"
    project.mkdir(parents=True, exist_ok=True)
    hpo = [sys.executable, "-m", "hpo"]
    search = [*hpo, "search", "--data", str(folder), "--budget", args.budget, "--device", args.device, "-q"]
    search_s, _ = timed(search, cwd=project, log=args.work / "search.log")
    _, test_out = timed([*hpo, "best", "--evaluate-test"], cwd=project, log=args.work / "test.log")
    test = re.search(r"test accuracy\D*([\d.]+)%", test_out, flags=re.IGNORECASE)
    where = machine(resolve_device(args.device))
    print(f"export: {exported:.0f} s" if exported else "export: already there")
    print(
        f"| {time.strftime('%Y-%m-%d')} | {where} | fashion-mnist as PNG folders | "
        f"--budget {args.budget} | {search_s:.0f} s | **{test.group(1) if test else '?'}%** | "
        f"`{' '.join(['hpo', *search[3:]])}` |"
    )


if __name__ == "__main__":
    main()
