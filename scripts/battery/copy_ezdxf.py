"""Battery set `ezdxf`: the existing testsets/ezdxf split in two, first 50 drawings dev, last 50 test.

    python3 scripts/battery/copy_ezdxf.py           # writes testsets/battery/ezdxf/{dev,test}

testsets/ezdxf holds the programs of testsets/clean drawn anew by ezdxf (scripts/make_foreign_test_set.py).
The files are copied byte for byte; each half's labels name images inside its own folder, and keep
where each came from (`source`, `ezdxf_image`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BATTERY, REPO, write_labels  # noqa: E402

SOURCE = REPO / "testsets" / "ezdxf"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="the ezdxf test set (default testsets/ezdxf)")
    parser.add_argument("--out", type=Path, default=BATTERY / "ezdxf", help="the set's folder")
    args = parser.parse_args(argv)
    lines = [json.loads(text) for text in (args.source / "labels.jsonl").read_text(encoding="utf-8").splitlines()
             if text.strip()]
    if len(lines) < 100:
        raise SystemExit(f"error: {args.source} holds {len(lines)} drawings; the split needs 100")
    for half, chosen in (("dev", lines[:50]), ("test", lines[-50:])):
        out = args.out / half
        (out / "images").mkdir(parents=True, exist_ok=True)
        written = []
        for number, line in enumerate(chosen):
            original = line["image"]
            key = f"images/{number:04d}{Path(original).suffix}"
            shutil.copyfile(args.source / original, out / key)
            written.append({**line, "image": key, "ezdxf_image": original})
        write_labels(out / "labels.jsonl", written)
        print(f"{len(written)} drawings written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
