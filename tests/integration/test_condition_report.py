"""A condition's ticket (a TLS certificate about to expire) printed as the repair report:
its เหตุการณ์ / ปัญหา says what was found and what to do, read back from the PDF with
poppler's pdftotext (scripts/setup-reports.sh)."""

from __future__ import annotations

from pathlib import Path

from monitord.reports.from_ticket import report_from_ticket
from monitord.reports.repair import render_repair_pdf
from tests.pdf_lab import norm, pdf_text
from tests.unit.test_pipeline import MONDAY_10
from tests.unit.test_pipeline_conditions import KEY, REASON, open_lab, write_config


async def test_repair_report_of_a_condition_ticket(tmp_path: Path) -> None:
    lab = await open_lab(write_config(tmp_path), tmp_path / "m.db", MONDAY_10)
    try:
        lab.observe("web-portal", "icmp")
        lab.observe("web-portal", "snmp", conditions={KEY: REASON})
        await lab.settle(after=61)
        (ticket,) = await lab.storage.list_tickets()
        report = report_from_ticket(await lab.storage.get_ticket(ticket["id"]))
    finally:
        lab.pipeline.stop_event.set()
        await lab.storage.close()
    assert report.variant == "office"
    assert [e.remark for e in report.equipment] == ["ตรวจพบปัญหา"]
    pdf = tmp_path / "condition.pdf"
    pdf.write_bytes(render_repair_pdf(report))
    text = norm(pdf_text(pdf))
    for phrase in ("เหตุการณ์ / ปัญหา / สาเหตุ", "ระบบตรวจพบปัญหาของ เว็บไซต์สำนักงาน",
                   "อุปกรณ์ยังใช้งานได้", "หมดอายุใน 9 วัน", "ต่ออายุใบรับรอง",
                   "ข้อสมมุติฐาน / การแก้ไข"):
        assert norm(phrase) in text, phrase
    assert norm("ไม่ตอบสนอง") not in text
