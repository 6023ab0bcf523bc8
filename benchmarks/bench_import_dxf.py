"""import-dxf speed: drawings written per CPU second for clean output; prints one JSON object.

    python3 benchmarks/bench_import_dxf.py [--files 60] [--styles clean] [--size 512]

Writes a small archive of part-like DXF files (scripts/make_part_archive.py) into a temporary folder,
then times `dxf_dataset.import_archive` over it in this one process (OpenCV held to one thread): the
whole path, reading with ezdxf, cropping, dimensioning, rendering and writing PNGs. The rate is per
CPU second of the process, so it reads as drawings per second per core on a busy machine; the
wall-clock rate is beside it. The target of issue 26 is at least 20 a second per core for clean output.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from make_part_archive import write_part  # noqa: E402

from cad2program.dxf.dataset import import_archive  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--styles", default="clean")
    parser.add_argument("--size", type=int, default=512, help="longer image side in pixels (default 512)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    styles = args.styles.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(7)
        files = []
        for k in range(args.files):
            files.append(root / "archive" / f"part{k:03d}.dxf")
            files[-1].parent.mkdir(exist_ok=True)
            write_part(files[-1], rng)
        import_archive(files[:3], root / "warmup", styles, progress=False, log=lambda _: None)  # fonts, imports
        cpu0, wall0 = time.process_time(), time.perf_counter()
        reports = import_archive(files, root / "out", styles, long_side_px=args.size, progress=False,
                                 log=lambda _: None)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    drawings = sum(r.drawings for r in reports)
    print(json.dumps({"files": len(files), "drawings": drawings, "styles": styles, "size_px": args.size,
                      "drawings_per_cpu_second": round(drawings / cpu, 1),
                      "drawings_per_wall_second": round(drawings / wall, 1),
                      "failed_files": sum(1 for r in reports if r.error),
                      "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
