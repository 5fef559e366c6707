#!/usr/bin/env bash
# Idempotent installer for the repair-report renderer (monitord.reports).
#
# Debian packages:
#   fonts-thai-tlwg      free Thai fonts; TLWG Laksaman is the metric-compatible stand-in
#                        for TH Sarabun PSK, the Thai government's document typeface
#   libpango-1.0-0, libpangoft2-1.0-0, libharfbuzz-subset0, fontconfig, libthai0
#                        what WeasyPrint loads at run time: Pango/HarfBuzz shape Thai
#                        (tone marks, above/below vowels), libthai finds Thai word breaks
#   poppler-utils        pdftotext / pdftoppm / pdfinfo, used by the report tests
# PyPI (into .venv): weasyprint (HTML+CSS → PDF through Pango), jinja2 (autoescaping
# template shared by the HTML and the PDF output), pillow (comes with weasyprint; the
# tests count non-white pixels with it).
#
# Safe to run again: installs only what is missing.  Usage: scripts/setup-reports.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DEB=(fonts-thai-tlwg fontconfig libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
     libthai0 poppler-utils)
source scripts/lib.sh
if apt_install setup-reports "${DEB[@]}"; then
  # Make new fonts visible to fontconfig (Pango finds fonts through it).
  fc-cache >/dev/null 2>&1 || true
else
  exit 1
fi

PY=.venv/bin/python
if [[ ! -x "$PY" ]]; then
  echo "setup-reports: no .venv yet; run scripts/setup.sh first" >&2
  exit 1
fi
if ! "$PY" -c 'import weasyprint, jinja2, PIL' >/dev/null 2>&1; then
  echo "setup-reports: installing weasyprint, jinja2, pillow into .venv" >&2
  "$PY" -m pip install -q --disable-pip-version-check \
    "weasyprint>=61" "jinja2>=3.1" "pillow>=10"
fi
