"""Repair report renderer: Thai labels, BE dates, escaping, real PDF pages.

The PDF tests read the PDF back the way a person or a search tool would: text through
poppler's pdftotext, pixels through pdftoppm, page count through pdfinfo.  Those come
from Debian's poppler-utils, installed by scripts/setup-reports.sh.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitord.reports.pdftext import Glyph, add_actual_text
from monitord.reports.repair import (
    LABELS as FORM_LABELS,
)
from monitord.reports.repair import (
    SERVED_LABELS,
    TITLES,
    RepairEquipment,
    RepairReport,
    Signatory,
    Variant,
    render_repair_html,
    render_repair_pdf,
)
from tests.pdf_lab import dark_fraction, norm, pdf_pages, pdf_text

OFFICE = "สำนักงานเขตพื้นที่การศึกษาประถมศึกษากำแพงเพชร เขต 2"
GROUP = "กลุ่มส่งเสริมการศึกษาทางไกล เทคโนโลยีสารสนเทศและการสื่อสาร"
SCHOOL_TITLE = "รายงานการซ่อมแซมแก้ไข DLTV, DLIT, คอมพิวเตอร์ โปรแกรมและอุปกรณ์ต่อพ่วงอื่นๆ"
OFFICE_TITLE = "รายงานการซ่อมแซมแก้ไข คอมพิวเตอร์ โปรแกรมและอุปกรณ์ต่อพ่วงอื่นๆ"
COLUMNS = ["ลำดับที่", "ชื่ออุปกรณ์", "Hostname", "ยี่ห้อ/รุ่น", "หมายเลขเครื่อง", "หมายเหตุ"]
LABELS = [
    "โรงเรียนที่ให้บริการ", "วันที่รับแจ้ง", "รายละเอียดอุปกรณ์", *COLUMNS,
    "สรุปผลการปฏิบัติงาน", "วันที่ซ่อมแซมแก้ไข", "เดือน", "พ.ศ.", "เวลาซ่อมแซมแก้ไข",
    "เริ่มเวลา", "แล้วเสร็จ", "เหตุการณ์ / ปัญหา / สาเหตุ", "ข้อสมมุติฐาน / การแก้ไข",
    "ลงชื่อ", "ตำแหน่ง", "ผู้แจ้งซ่อม", "ผู้ทำการซ่อม / แก้ไข",
]


def equipment(n: int) -> list[RepairEquipment]:
    root = RepairEquipment("เราเตอร์", "rt-62020001", "MikroTik hAP ac2", "HCD08AB12CD",
                           "อุปกรณ์ต้นเหตุ")
    return [root] + [
        RepairEquipment(f"เครื่องรับสัญญาณดาวเทียม ห้อง ป.{i}", f"dltv-rx-{i:02d}", "PSI S2X",
                        f"SN{i:06d}", "ได้รับผลกระทบ")
        for i in range(1, n)
    ]


def make_report(**changes: object) -> RepairReport:
    report = RepairReport(
        office_name=OFFICE,
        group_name=GROUP,
        variant="school",
        served_unit="โรงเรียนบ้านคลองน้ำไหล",
        ticket_id=42,
        reported_at=datetime(2026, 11, 23, 7, 5, tzinfo=UTC),        # 14:05 in Bangkok
        repair_started=datetime(2026, 11, 23, 7, 30, tzinfo=UTC),
        repair_finished=datetime(2026, 11, 23, 9, 45, tzinfo=UTC),
        equipment=equipment(3),
        event_text="เราเตอร์ของโรงเรียนไม่ตอบสนองตั้งแต่เวลา 14:05 น. เป็นเวลา 2 ชั่วโมง 15 นาที",
        hypothesis_text="โรงเรียนอื่นอีก 41 แห่งที่ใช้ผู้ให้บริการอินเทอร์เน็ตรายเดียวกันขัดข้องพร้อมกัน",
        summary_text="",
        reporter=Signatory("ระบบ monitord", "ระบบเฝ้าระวังอัตโนมัติ"),
        repairer=Signatory("นายสมชาย ใจดี", "นักวิชาการคอมพิวเตอร์"),
    )
    return replace(report, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def school_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pdf") / "school.pdf"
    path.write_bytes(render_repair_pdf(make_report()))
    return path


# --- PDF ---------------------------------------------------------------------------

def test_pdf_has_every_label_and_a_buddhist_era_date(school_pdf: Path) -> None:
    assert school_pdf.read_bytes().startswith(b"%PDF-")
    text = norm(pdf_text(school_pdf))
    for wanted in [OFFICE, GROUP, SCHOOL_TITLE, *LABELS]:
        assert norm(wanted) in text, wanted
    assert norm("วันที่รับแจ้ง 23 พฤศจิกายน พ.ศ. 2569 เวลา 14:05 น.") in text
    assert norm("วันที่ซ่อมแซมแก้ไข วันที่ 23 เดือน พฤศจิกายน พ.ศ. 2569") in text
    assert norm("เริ่มเวลา 14:30 น. แล้วเสร็จ 16:45 น.") in text
    assert norm("( นายสมชาย ใจดี )") in text
    assert norm("ตำแหน่ง นักวิชาการคอมพิวเตอร์") in text


def test_pdf_text_is_exact_not_scrambled_by_glyph_reuse(school_pdf: Path) -> None:
    """Tone marks and vowels come back attached to the right consonant, in order."""
    raw = pdf_text(school_pdf)
    for phrase in ["กลุ่มส่งเสริมการศึกษาทางไกล", "ผู้แจ้งซ่อม", "ตั้งแต่เวลา 14:05 น.",
                   "ข้อสมมุติฐาน / การแก้ไข", "ยี่ห้อ/รุ่น", OFFICE]:
        assert phrase in raw, phrase
    assert "งำน" not in raw   # the SARA AA glyph must not inherit "ำ" from "สำนักงาน"


# Filled-in values whose marks stack or shift: below vowel + tone (ผู้), SARA AM with a
# tone (น้ำ), a tone shifted left of a tall consonant (ไฟฟ้า, ปั๊ม), two marks (ตั้ง, เริ่ม).
THAI_VALUES = {
    "served_unit": "โรงเรียนบ้านคลองน้ำไหล",
    "event_text": "ไฟฟ้าดับที่ห้องเรียนตั้งแต่เวลา 14:05 น. ปั๊มน้ำหยุดทำงาน",
    "hypothesis_text": "เริ่มจากหม้อแปลงไฟฟ้าของหมู่บ้าน",
    "reporter": Signatory("นางสาวผู้แจ้งซ่อม ทดสอบ", "ผู้ดูแลระบบ"),
}
THAI_PHRASES = ["โรงเรียนบ้านคลองน้ำไหล", "ไฟฟ้าดับที่ห้องเรียนตั้งแต่เวลา", "ปั๊มน้ำหยุดทำงาน",
                "เริ่มจากหม้อแปลงไฟฟ้าของหมู่บ้าน", "( นางสาวผู้แจ้งซ่อม ทดสอบ )",
                "ตำแหน่ง ผู้ดูแลระบบ", "ผู้ทำการซ่อม / แก้ไข"]


@pytest.mark.parametrize("variant", ["school", "office"])
def test_every_label_and_thai_value_is_found_verbatim(variant: Variant, tmp_path: Path) -> None:
    """An e-document system indexing the PDF finds every label of the form and the Thai
    values exactly as written: no normalisation, in each of pdftotext's reading modes."""
    pdf = tmp_path / f"{variant}.pdf"
    pdf.write_bytes(render_repair_pdf(make_report(variant=variant, **THAI_VALUES)))
    labels = [TITLES["th"][variant], SERVED_LABELS["th"][variant],
              *FORM_LABELS["th"].values()]
    for mode in ("", "-raw", "-layout"):
        text = pdf_text(pdf, mode=mode)
        missing = [w for w in [*labels, *THAI_PHRASES] if w not in text]
        assert not missing, f"pdftotext {mode or '(default)'}: not found {missing}\n{text}"


def test_actual_text_spans_keep_every_glyph_and_offset() -> None:
    """"ปั" + "ญ" as WeasyPrint draws it: the vowel sits 0.146 em left of the consonant's
    end and the pen comes back after it.  The cell's text goes on the consonant, the
    vowel gets an empty span, and every glyph and offset stays in place and in order."""
    glyphs = [Glyph(0x10C, 0, "ป"), Glyph(0x122, 3, "ั"), Glyph(0xFE, 6, "ญ")]
    ops = [b"/F1 14 Tf", b"[<010c>0 146.5<0122>-146<00fe>0] TJ"]
    widths = {b"F1": {0x10C: 600, 0x122: 0, 0xFE: 620}}
    out = add_actual_text(ops, glyphs, widths, None)
    assert out is not None
    shown = [op.get("ActualText").string if isinstance(op, dict) else op for op in out]
    assert shown == [b"/F1 14 Tf",
                     b"/Span", "ปั", b"BDC", b"[<010c>] TJ", b"EMC",
                     b"[0 146.5] TJ", b"/Span", "", b"BDC", b"[<0122>] TJ", b"EMC",
                     b"[-146 <00fe> 0] TJ"]
    # Glyphs that are not the ones Pango laid out: leave WeasyPrint's operators alone.
    assert add_actual_text(ops, glyphs[:2], widths, None) is None
    assert add_actual_text(ops, [Glyph(0x10D, 0, "ผ"), *glyphs[1:]], widths, None) is None


def test_pdf_page_is_not_blank(school_pdf: Path, tmp_path: Path) -> None:
    fraction = dark_fraction(school_pdf, tmp_path)
    # A filled form inks a few percent of the page; a blank or tofu-only page does not.
    assert 0.01 < fraction < 0.5, fraction


def test_office_variant_title_and_first_field(tmp_path: Path) -> None:
    pdf = tmp_path / "office.pdf"
    pdf.write_bytes(render_repair_pdf(make_report(variant="office", served_unit="กลุ่มบริหารงานบุคคล")))
    text = norm(pdf_text(pdf))
    assert norm(OFFICE_TITLE) in text
    assert norm("DLTV") not in text
    assert norm("กลุ่มงานที่ให้บริการ กลุ่มบริหารงานบุคคล") in text


def test_long_equipment_table_spans_pages_with_header_repeated(tmp_path: Path) -> None:
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(render_repair_pdf(make_report(equipment=equipment(60))))
    pages = pdf_pages(pdf)
    assert pages >= 2
    header = norm(" ".join(COLUMNS))
    for page in range(1, pages):   # every page the table runs over starts with its header
        assert header in norm(pdf_text(pdf, page)), page
    text = norm(pdf_text(pdf))
    assert norm("dltv-rx-59") in text
    assert norm("หน้า 1 / ") in text
    assert dark_fraction(pdf, tmp_path, page=2) > 0.01


# --- HTML --------------------------------------------------------------------------

def test_html_escapes_names_from_config() -> None:
    evil = '<script>alert("x")</script> & "quoted"'
    html = render_repair_html(make_report(
        office_name=evil, served_unit=evil, event_text=evil,
        equipment=[RepairEquipment(evil, evil, evil, evil, evil)],
        reporter=Signatory(evil, evil),
    ))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;quoted&#34;" in html


def test_html_is_self_contained_a4_thai() -> None:
    html = render_repair_html(make_report())
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="th">' in html
    assert "size: A4" in html
    assert "<link" not in html and "src=" not in html
    for label in [SCHOOL_TITLE, *LABELS]:
        assert label in html, label
    assert "23 พฤศจิกายน พ.ศ. 2569" in html


def test_unknown_repair_times_print_dotted_blanks() -> None:
    html = render_repair_html(make_report(repair_started=None, repair_finished=None,
                                          repairer=None, event_text="", hypothesis_text=""))
    date_line = html[html.index("วันที่ซ่อมแซมแก้ไข"):html.index("เหตุการณ์")]
    assert date_line.count("....") >= 5        # day, month, year, start, finish
    assert "พฤศจิกายน" not in date_line
    assert 'class="lines"' in html             # ruled lines to write the event by hand


def test_thai_digits_in_dates_and_numbers() -> None:
    html = render_repair_html(make_report(thai_digits=True))
    assert "๒๓ พฤศจิกายน พ.ศ. ๒๕๖๙" in html
    assert "๑๔:๐๕ น." in html
    assert "ใบแจ้งซ่อมเลขที่ ๔๒" in html
    assert "counter(page, thai)" in html
    assert "rt-62020001" in html               # identifiers keep their ASCII digits


def test_finish_after_midnight_shows_its_date() -> None:
    html = render_repair_html(make_report(
        repair_finished=datetime(2026, 11, 23, 18, 10, tzinfo=UTC)))   # 01:10 next day
    assert "01:10 น. (24 พฤศจิกายน พ.ศ. 2569)" in html


def test_english_labels() -> None:
    html = render_repair_html(make_report(lang="en"))
    assert "Repair Report: DLTV, DLIT, Computers, Software and Other Peripherals" in html
    assert "School served" in html and "Serial no." in html
    assert "23 November 2026" in html
    assert "วันที่รับแจ้ง" not in html


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_report(reported_at=datetime(2026, 11, 23, 14, 5))
