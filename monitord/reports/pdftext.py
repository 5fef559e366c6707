"""Searchable Thai in the PDFs WeasyPrint writes (repair report, daily/monthly reports).

Offices file the reports in e-document systems that index the PDF's text, so every
word must come back from the text layer exactly as it was written.  WeasyPrint gets
Thai wrong in two ways, both fixed here while the PDF is written:

1. **Glyph → text map (ToUnicode).**  WeasyPrint gives each glyph the text of the first
   cluster it was drawn in; Thai clusters hold several glyphs, so after "ลำ" every SARA
   AA extracts as "ำ" ("งาน" → "งำน").  :func:`_fix_thai_to_unicode` maps each glyph
   drawn in Thai to its own character instead (from the font's cmap or its "uniXXXX"
   name).  Glyph by glyph the text still cannot be exact: HarfBuzz draws "ผู้" as ผ +
   SARA UU + MAI THO and "น้ำ" as น + NIKHAHIT + MAI THO + SARA AA, a reader sees the
   tone mark of "ผู้" before the vowel or "ำ" as "ํา", and in layout mode
   (plain ``pdftotext``) marks drawn with an offset drift into words of their own
   ("เริม ่", "ตัง้ แต่").
2. **The text of each cell (ActualText).**  So the glyphs of a consonant and its marks
   (and any other cluster that is not one glyph for one character) are wrapped in a
   marked-content span carrying their real text, ``/Span <</ActualText (ผู้)>> BDC …
   EMC`` (PDF 32000-1 §14.9.4), taken from Pango's glyph → character map at draw time.
   This is how Chromium (Skia) and LibreOffice write complex scripts; poppler
   (pdftotext), MuPDF and Acrobat then extract, search and copy the exact text.  Tools
   that ignore ActualText still get (1).

Both hook WeasyPrint internals (``weasyprint.pdf.build_fonts_dictionary`` and
``weasyprint.draw.text.draw_first_line``; checked against WeasyPrint 61–70).  Each
hook checks what it sees and leaves the PDF as WeasyPrint wrote it when anything is
unexpected (another version, a bitmap font): the PDF still renders, and the
text-extraction tests in tests/integration/test_repair_report.py say what broke.
"""

from __future__ import annotations

import io
import itertools
import re
import threading
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_THAI = re.compile("[\u0e00-\u0e7f]")
_UNI_NAME = re.compile(r"^uni([0-9A-F]{4})(?:\.|$)")
_TJ = re.compile(rb"^\[(.*)\] TJ$", re.S)
_HEX = re.compile(rb"<([0-9A-Fa-f]*)>")
_TF = re.compile(rb"^/(\S+) \S+ Tf$")

_lock = threading.Lock()
_installed = False


def install() -> None:
    """Install both fixes (idempotent, thread-safe); call before ``write_pdf``."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        _wrap_fonts_dictionary()
        _wrap_draw_first_line()


# ------------------------------------------------------------------ 1. glyph → text map

def _wrap_fonts_dictionary() -> None:
    try:
        import weasyprint.pdf as wpdf  # type: ignore[import-untyped]
        original = wpdf.build_fonts_dictionary
    except (ImportError, AttributeError):  # pragma: no cover - other WeasyPrint version
        return

    def build_fonts_dictionary(pdf: Any, fonts: Any, *args: Any, **kwargs: Any) -> Any:
        for font in fonts.values():
            _fix_thai_to_unicode(font)
        return original(pdf, fonts, *args, **kwargs)

    wpdf.build_fonts_dictionary = build_fonts_dictionary


def _fix_thai_to_unicode(font: Any) -> None:
    """Remap ``font.to_unicode`` (glyph id → text) for glyphs drawn in Thai clusters."""
    thai = [gid for gid, text in font.to_unicode.items() if not text or _THAI.search(text)]
    if not thai:
        return
    from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

    try:
        tt = TTFont(io.BytesIO(font.file_content), fontNumber=font.index, lazy=True)
        order = tt.getGlyphOrder()
        by_glyph: dict[str, int] = {}
        for point, glyph_name in sorted(tt.getBestCmap().items(), reverse=True):
            by_glyph[glyph_name] = point  # lowest code point wins
    except Exception:  # pragma: no cover - unreadable font: keep WeasyPrint's guess
        return
    for gid in thai:
        if gid >= len(order):
            continue
        name = order[gid]
        # Positional variants ("uni0E48.low", shifted tone marks) sit at Private Use
        # code points in TLWG fonts; their names say which Thai character they draw.
        if m := _UNI_NAME.match(name):
            code: int | None = int(m.group(1), 16)
        else:
            code = by_glyph.get(name)
        if code is not None and not 0xE000 <= code <= 0xF8FF:
            font.to_unicode[gid] = chr(code)


# ------------------------------------------------------------------ 2. ActualText spans

@dataclass(frozen=True, slots=True)
class Glyph:
    """One glyph as Pango laid it out."""

    gid: int | None      # None: a missing glyph, which WeasyPrint draws under another id
    cluster: int         # byte offset of its cluster in the layout's text
    text: str            # the cluster's text


def _wrap_draw_first_line() -> None:
    try:
        import weasyprint.draw.text as wtext  # type: ignore[import-untyped]
        from weasyprint.text.ffi import ffi, pango  # type: ignore[import-untyped]
        original = wtext.draw_first_line
    except (ImportError, AttributeError):  # pragma: no cover - other WeasyPrint version
        return

    def line_glyphs(textbox: Any) -> list[Glyph]:
        """The glyphs Pango laid out for the line just drawn, in drawing order."""
        line, _ = textbox.pango_layout.get_first_line()
        utf8 = textbox.pango_layout.text.encode()
        glyphs: list[Glyph] = []
        run = line.runs
        while run != ffi.NULL:
            item, shaped = run.data.item, run.data.glyphs
            run = run.next
            starts = [shaped.log_clusters[i] for i in range(shaped.num_glyphs)]
            bounds = sorted(set(starts))
            ends = dict(zip(bounds, [*bounds[1:], item.length], strict=True))
            for i, start in enumerate(starts):
                gid = shaped.glyphs[i].glyph
                if gid == pango.PANGO_GLYPH_EMPTY:
                    continue  # drawn as a gap, no glyph
                text = utf8[item.offset + start:item.offset + ends[start]].decode()
                glyphs.append(Glyph(None if gid & pango.PANGO_GLYPH_UNKNOWN_FLAG else gid,
                                    item.offset + start, text))
        return glyphs

    def draw_first_line(stream: Any, textbox: Any, *args: Any, **kwargs: Any) -> Any:
        first = len(stream.stream)
        font = (getattr(stream, "_current_font", None) or (None,))[0]
        result = original(stream, textbox, *args, **kwargs)
        try:
            ops = stream.stream[first:]
            if any(isinstance(op, bytes) and _TJ.match(op) for op in ops):
                widths = {f.hash.encode(): f.widths for f in stream._fonts.values()}
                spanned = add_actual_text(ops, line_glyphs(textbox), widths,
                                          font.encode() if font else None)
                if spanned is not None:
                    stream.stream[first:] = spanned
        except Exception:  # pragma: no cover - keep WeasyPrint's own output
            pass
        return result

    wtext.draw_first_line = draw_first_line


def cells(glyphs: Sequence[Glyph]) -> Iterator[tuple[int, int, str]]:
    """(first glyph, last glyph, text) of each cell: a glyph and the glyphs after it that
    belong to its cluster or to a cluster starting with a combining mark (Thai vowels
    above and below, tone marks).  Only cells whose clusters are one stretch of the
    text, in whatever order they were drawn, are given; their text is that stretch."""
    first = 0
    for k in range(1, len(glyphs) + 1):
        if k < len(glyphs) and (glyphs[k].cluster == glyphs[k - 1].cluster
                                or unicodedata.category(glyphs[k].text[:1] or " ")[0] == "M"):
            continue
        clusters = sorted({(g.cluster, g.text) for g in glyphs[first:k]})
        if all(start + len(text.encode()) == following
               for (start, text), (following, _) in itertools.pairwise(clusters)):
            yield first, k - 1, "".join(text for _, text in clusters)
        first = k


def add_actual_text(ops: Sequence[Any], glyphs: Sequence[Glyph],
                    widths: Mapping[bytes, Mapping[int, float]],
                    font: bytes | None) -> list[Any] | None:
    """``ops`` (the content-stream operators that drew one line, starting in ``font``)
    with every cell (see :func:`cells`) that is not one glyph for one character wrapped
    in ActualText spans; None when the glyphs in ``ops`` are not exactly ``glyphs``
    (then nothing changes).  ``widths`` are the fonts' glyph advances (PDF ``/W``).

    A reader places a span's text over the span's glyphs, from where the first glyph
    starts to where the last one ends.  Marks drawn after the consonant have no advance
    and may sit left of its end ("ปั"), so a cell's text goes on its glyphs up to the
    last one that advances, and the marks after that get an empty span.
    """
    import pydyf  # type: ignore[import-untyped]

    # Each TJ array as its glyph ids and the raw position adjustments between them.
    parsed: list[tuple[Any, list[int | bytes] | None]] = []
    drawn: list[int] = []
    advances: list[bool] = []
    for op in ops:
        m = _TJ.match(op) if isinstance(op, bytes) else None
        if m is None:
            if isinstance(op, bytes) and (tf := _TF.match(op)):
                font = tf.group(1)
            parsed.append((op, None))
            continue
        parts: list[int | bytes] = []
        for n, chunk in enumerate(_HEX.split(m.group(1))):
            if n % 2 == 0:
                if chunk.strip():
                    parts.append(chunk.strip())
            elif len(chunk) % 4:
                return None  # one-byte glyph ids (bitmap font): leave as is
            else:
                gids = [int(chunk[k:k + 4], 16) for k in range(0, len(chunk), 4)]
                parts += gids
                drawn += gids
                advances += [widths.get(font or b"", {}).get(gid) != 0 for gid in gids]
        parsed.append((op, parts))
    if len(drawn) != len(glyphs) or any(
            g.gid is not None and g.gid != gid for g, gid in zip(glyphs, drawn, strict=True)):
        return None
    spans: dict[int, tuple[int, str]] = {}
    for first, last, text in cells(glyphs):
        if last > first or len(text) != 1:
            end = max((k for k in range(first, last + 1) if advances[k]), default=last)
            spans[first] = (end, text)
            if end < last:
                spans[end + 1] = (last, "")

    out: list[Any] = []
    buffer: list[bytes] = []

    def flush() -> None:
        if buffer:
            out.append(b"[" + b" ".join(buffer) + b"] TJ")
            buffer.clear()

    k, end = 0, -1
    for op, tj in parsed:
        if tj is None:
            out.append(op)
            continue
        for part in tj:
            if isinstance(part, bytes):
                buffer.append(part)
                continue
            if k in spans:
                end, text = spans[k]
                flush()
                out += [b"/Span", pydyf.Dictionary({"ActualText": pydyf.String(text)}), b"BDC"]
            buffer.append(b"<%04x>" % part)
            if k == end:
                flush()
                out.append(b"EMC")
            k += 1
        flush()
    return out
