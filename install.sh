#!/usr/bin/env bash
# One command for a fresh Debian/Ubuntu machine: fonts the drawing generator uses, then the package.
set -euo pipefail
cd "$(dirname "$0")"
FONTS="fonts-dejavu-core fonts-liberation2 fonts-freefont-ttf fonts-humor-sans fonts-comic-neue fonts-dkg-handwriting fonts-breip fonts-femkeklaver fonts-osifont"
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq || true
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $FONTS >/dev/null \
    || echo "warning: could not install the fonts ($FONTS); the generator falls back to the fonts it finds" >&2
  # Chromium runs the web page's browser tests (tests/test_web.py drives it through Playwright).
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    || echo "warning: could not install chromium; the web page's browser tests will be skipped" >&2
fi
python3 -m pip install -q -e ".[dev]"
# The OCR engine (annotations.py). 1.4.4 is the last version whose wheel ships its models (later ones
# download them at first use, which an offline machine cannot); --no-deps: see pyproject.toml.
python3 -m pip install -q --no-deps "rapidocr_onnxruntime==1.4.4"
echo "cad2program installed: try 'cad2program --help'"
