#!/usr/bin/env bash
# Run HERE (not on the accelerator) before a device training run: the accelerator machine has JAX, Flax,
# Optax, Orbax, OpenCV, SciPy and Pillow but no Grain and no Debian fonts, and it cannot reach PyPI.
# This puts Grain's wheels (Python 3.12) in .whl/ and the drawing fonts in .fonts/, both git-ignored,
# for the device tool's `carry` (64 MiB limit: together they are a few MB).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
grep -qx '/.fonts/' .git/info/exclude 2>/dev/null || echo '/.fonts/' >> .git/info/exclude
rm -rf .whl .fonts && mkdir -p .whl .fonts
for pkg in grain array-record dm-tree cloudpickle; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$pkg" || echo "warning: no wheel for $pkg" >&2
done
python3 - <<'PY'
import shutil
from cad2program.synth import fonts
for font in fonts.available_fonts() if hasattr(fonts, "available_fonts") else []:
    shutil.copy(font.path, ".fonts/")
PY
find /usr/share/fonts -iname '*.ttf' \( -ipath '*dejavu*' -o -ipath '*liberation*' -o -ipath '*freefont*' -o -ipath '*humor*' \
  -o -ipath '*comic*' -o -ipath '*dkg*' -o -ipath '*breip*' \) -exec cp -n {} .fonts/ \;
du -sh .whl .fonts
