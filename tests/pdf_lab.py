"""Reading PDFs back as a person or a search tool would, for the report tests.

Text through poppler's pdftotext, pixels through pdftoppm, the page count through
pdfinfo (Debian poppler-utils, installed by scripts/setup-reports.sh).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: run scripts/setup-reports.sh (Debian poppler-utils)")
    return path


def norm(text: str) -> str:
    """Text as compared where layout matters not: without whitespace, because table cells
    and lines wrap wherever the layout says."""
    return re.sub(r"\s+", "", text)


def pdf_text(pdf: Path, page: int | None = None, mode: str = "-raw") -> str:
    """Text as pdftotext reads it: by default in content order (``-raw``); ``mode=""``
    is its default reading order, as a search indexer runs it; "-layout" keeps columns."""
    pages = ["-f", str(page), "-l", str(page)] if page else []
    out = subprocess.run([_tool("pdftotext"), *filter(None, [mode]), *pages, str(pdf), "-"],
                         capture_output=True, check=True, text=True)
    return out.stdout


def pdf_pages(pdf: Path) -> int:
    out = subprocess.run([_tool("pdfinfo"), str(pdf)], capture_output=True, check=True,
                         text=True).stdout
    match = re.search(r"^Pages:\s+(\d+)", out, re.MULTILINE)
    assert match, out
    return int(match.group(1))


def dark_fraction(pdf: Path, tmp: Path, page: int = 1) -> float:
    """Share of non-white pixels on a page rendered to 8-bit grey (binary PGM, P5)."""
    prefix = tmp / f"page{page}"
    subprocess.run([_tool("pdftoppm"), "-gray", "-r", "50", "-f", str(page), "-l", str(page),
                    "-singlefile", str(pdf), str(prefix)], check=True)
    data = (tmp / f"page{page}.pgm").read_bytes()
    header = re.match(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    assert header, data[:20]
    width, height = int(header.group(1)), int(header.group(2))
    pixels = data[header.end():header.end() + width * height]
    assert len(pixels) == width * height
    return sum(1 for p in pixels if p < 200) / len(pixels)
