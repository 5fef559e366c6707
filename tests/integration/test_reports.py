"""Daily and monthly availability reports through the real CLI, on a database filled with
Storage's own API: HTML content, CSV as Excel reads it (BOM, Thai headers), PDF text
through poppler's pdftotext (Thai shaped and extractable)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitord.domain.state import State, Transition
from monitord.storage import Storage
from monitord.thaidate import fiscal_year
from tests.daemon_lab import ROOT, write_config
from tests.pdf_lab import norm, pdf_text

BKK = ZoneInfo("Asia/Bangkok")
H = 3600.0

SCHOOLS = {
    "62020001": {"name": "โรงเรียนบ้านคลองน้ำไหล", "district": "คลองลาน", "isp": "NT",
                 "schedule": "school"},
    "62020002": {"name": "โรงเรียนวัดหนองปลิง <ทดสอบ>", "district": "เมืองกำแพงเพชร",
                 "isp": "TRUE", "schedule": "school"},
    "62020003": {"name": "โรงเรียนบ้านวังน้ำขาว", "district": "ขาณุวรลักษบุรี", "isp": "3BB",
                 "schedule": "school"},
}


def ts(day: date, hour: int, minute: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BKK).timestamp()


def weekday_before(day: date, weekday: int) -> date:
    """The latest ``weekday`` (Mon = 0) strictly before ``day``."""
    d = day - timedelta(days=1)
    while d.weekday() != weekday:
        d -= timedelta(days=1)
    return d


# A Tuesday about two months ago: its month has data, and it is safely in the past.
TODAY = datetime.now(BKK).date()
DAY = weekday_before(TODAY - timedelta(days=55), 1)
HOLIDAY = DAY + timedelta(days=1)  # a Wednesday declared a holiday


def config() -> dict[str, Any]:
    return {
        "office": {"name": "สำนักงานเขตพื้นที่การศึกษาประถมศึกษากำแพงเพชร เขต 2",
                   "area_code": "6202"},
        "storage": {"retention_days": 3650},
        "schedules": {"school": {"days": ["mon-fri"], "hours": ["08:00-16:00"],
                                 "skip_holidays": True}},
        "holidays": [{"date": HOLIDAY.isoformat(), "name": "วันหยุดทดสอบ"}],
        "schools": SCHOOLS,
        "devices": [
            {"id": "s1-rtr", "school": "62020001", "kind": "router", "address": "10.20.1.1"},
            {"id": "s1-rx", "school": "62020001", "kind": "dltv_receiver",
             "address": "10.20.1.21", "parent": "s1-rtr"},
            {"id": "s2-rtr", "school": "62020002", "kind": "router", "address": "10.20.2.1"},
            {"id": "s3-rtr", "school": "62020003", "kind": "router", "address": "10.20.3.1"},
            {"id": "srv", "kind": "server", "address": "10.20.0.10"},
        ],
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Config and a database with: school 1 down 09:00–12:00 on DAY (3 of 8 school
    hours), school 2 down since DAY 15:00 and still down (across the holiday and every
    day since), school 3 up throughout; the receiver down on DAY only after hours."""
    tmp = tmp_path_factory.mktemp("reports")
    cfg = write_config(tmp / "m.yaml", config())
    db = tmp / "m.db"
    start = ts(DAY, 0) - 100 * 86400

    async def fill() -> None:
        store = await Storage.open(db)
        try:
            await store.record_event("daemon_started", "", start - 1)
            await store.record_transitions([
                Transition(dev, State.UNKNOWN, State.UP, start, "ok")
                for dev in ("s1-rtr", "s1-rx", "s2-rtr", "s3-rtr", "srv")])
            await store.record_transitions([
                Transition("s1-rtr", State.UP, State.DOWN, ts(DAY, 9), "3 failures"),
                Transition("s1-rtr", State.DOWN, State.UP, ts(DAY, 12), "ok"),
                Transition("s2-rtr", State.UP, State.DOWN, ts(DAY, 15), "3 failures"),
                Transition("s1-rx", State.UP, State.DOWN, ts(DAY, 17), "no signal lock"),
                Transition("s1-rx", State.DOWN, State.UP, ts(DAY, 18), "ok"),
            ])
        finally:
            await store.close()

    import asyncio
    asyncio.run(fill())
    return cfg, db


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "monitord", "report", *args],
                          capture_output=True, cwd=ROOT, timeout=120)


def read_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "CSV for Excel must start with a UTF-8 BOM"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_daily_csv_html_and_pdf(lab: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, db = lab
    common = ["--date", DAY.isoformat(), "--config", str(cfg), "--db", str(db)]
    out = run("daily", *common, "--format", "csv", "-o", "-")
    assert out.returncode == 0, out.stderr.decode()
    rows = read_csv(out.stdout)
    assert rows[0] == ["ลำดับ", "รหัส SMIS", "โรงเรียน", "อำเภอ", "ผู้ให้บริการอินเทอร์เน็ต",
                       "สถานะ", "ออฟไลน์ตั้งแต่", "เวลาออฟไลน์ในเวลาเรียน (นาที)",
                       "เวลาเรียน (นาที)", "อัตราการใช้งานได้ (%)"]
    body = {r[1]: r for r in rows[1:]}
    # Sorted by district (Thai collation of the names as Python orders them).
    assert [r[3] for r in rows[1:]] == sorted(r[3] for r in rows[1:])
    s1, s2, s3 = body["62020001"], body["62020002"], body["62020003"]
    assert s1[5] == "ออนไลน์" and s1[7] == "180" and s1[8] == "480" and s1[9] == "62.50"
    assert s2[5] == "ออฟไลน์" and s2[6] == f"{DAY.isoformat()} 15:00" and s2[7] == "60"
    assert s2[9] == "87.50" and s2[2] == "โรงเรียนวัดหนองปลิง <ทดสอบ>" and s2[4] == "TRUE"
    assert s3[5] == "ออนไลน์" and s3[7] == "0" and s3[9] == "100.00"

    out = run("daily", *common, "--format", "html", "-o", str(tmp_path / "d.html"))
    assert out.returncode == 0, out.stderr.decode()
    html = (tmp_path / "d.html").read_text(encoding="utf-8")
    assert "รายงานสถานะการเชื่อมต่ออินเทอร์เน็ตของโรงเรียนประจำวัน" in html
    assert "สรุปรายอำเภอ" in html and "3 ชั่วโมง" in html and "พ.ศ. " in html
    assert "&lt;ทดสอบ&gt;" in html and "<ทดสอบ>" not in html  # names escaped
    for secret in ("10.20.", "s1-rtr", "s2-rtr"):
        assert secret not in html

    # The holiday: no school hours, the offline school still listed as offline.
    out = run("daily", "--date", HOLIDAY.isoformat(), "--config", str(cfg), "--db", str(db),
              "--format", "csv", "-o", "-")
    hol = {r[1]: r for r in read_csv(out.stdout)[1:]}
    assert hol["62020002"][5] == "ออฟไลน์" and hol["62020002"][8] == "0"
    assert hol["62020002"][7] == "" and hol["62020002"][9] == ""

    pdf = tmp_path / "d.pdf"
    out = run("daily", *common, "--format", "pdf", "-o", str(pdf))
    assert out.returncode == 0, out.stderr.decode()
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = norm(pdf_text(pdf))
    for wanted in ("รายงานสถานะการเชื่อมต่ออินเทอร์เน็ตของโรงเรียนประจำวัน",
                   "โรงเรียนบ้านคลองน้ำไหล", "โรงเรียนวัดหนองปลิง<ทดสอบ>",
                   "โรงเรียนบ้านวังน้ำขาว", "เมืองกำแพงเพชร", "ขาณุวรลักษบุรี", "ออฟไลน์",
                   "สำนักงานเขตพื้นที่การศึกษาประถมศึกษากำแพงเพชรเขต2",
                   f"พ.ศ.{DAY.year + 543}"):
        assert norm(wanted) in text, wanted

    en = run("daily", *common, "--format", "csv", "--lang", "en", "-o", "-")
    assert read_csv(en.stdout)[0][:3] == ["No.", "SMIS code", "School"]


def test_availability_by_fiscal_year(lab: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, db = lab
    fy = fiscal_year(DAY)
    args = ["--fiscal-year", str(fy), "--config", str(cfg), "--db", str(db)]
    out = run("availability", *args, "--format", "csv", "-o", "-")
    assert out.returncode == 0, out.stderr.decode()
    rows = read_csv(out.stdout)
    header = rows[0]
    months = header[6:18]
    assert months[0] == f"ต.ค. {(fy - 1) % 100:02d}" and months[-1] == f"ก.ย. {fy % 100:02d}"
    assert header[:6] == ["กลุ่ม", "รหัส", "ชื่อ", "อำเภอ", "ผู้ให้บริการ", "จำนวน"]
    col = 6 + (DAY.month - 10) % 12
    by_code = {r[1]: r for r in rows[1:]}
    # School 1: 3 hours down out of that month's school hours; none in other months.
    s1 = by_code["62020001"]
    assert s1[0] == "โรงเรียน" and 95 < float(s1[col]) < 100
    assert float(by_code["62020003"][col]) == 100.0
    assert header[18] == "ทั้งช่วง" and float(by_code["62020002"][col]) < 100
    # Per device kind: routers, a receiver (down only after school hours), the server.
    assert by_code["router"][0] == "ประเภทอุปกรณ์" and by_code["router"][5] == "3"
    assert float(by_code["dltv_receiver"][col]) == 100.0
    assert float(by_code["server"][col]) == 100.0

    # From DAY's month to this month: school 2 has been down since DAY.
    span = ["--from", f"{DAY.year}-{DAY.month:02d}", "--to", f"{TODAY.year}-{TODAY.month:02d}",
            "--config", str(cfg), "--db", str(db)]
    rows = read_csv(run("availability", *span, "--format", "csv", "-o", "-").stdout)
    whole = rows[0].index("ทั้งช่วง")
    by_code = {r[1]: r for r in rows[1:]}
    assert float(by_code["62020002"][whole]) < 50  # up most of the first month only
    assert float(by_code["62020002"][whole + 1]) > 100  # hours offline over the period
    assert 99 < float(by_code["62020001"][whole]) < 100
    assert float(by_code["router"][whole]) < float(by_code["62020001"][whole])

    out = run("availability", *args, "--format", "pdf", "-o", str(tmp_path / "a.pdf"))
    assert out.returncode == 0, out.stderr.decode()
    text = norm(pdf_text(tmp_path / "a.pdf"))
    for wanted in (f"ปีงบประมาณ{fy}", "รายงานอัตราการใช้งานได้ของเครือข่าย",
                   "โรงเรียนบ้านวังน้ำขาว", "เครื่องรับสัญญาณดาวเทียม", "ต.ค.", "ก.ย."):
        assert norm(wanted) in text, wanted

    out = run("availability", "--from", f"{DAY.year}-{DAY.month:02d}", "--to",
              f"{DAY.year}-{DAY.month:02d}", "--config", str(cfg), "--db", str(db),
              "--format", "html", "--lang", "en", "-o", str(tmp_path / "a.html"))
    assert out.returncode == 0, out.stderr.decode()
    html = (tmp_path / "a.html").read_text(encoding="utf-8")
    assert "Network availability report" in html and "By device kind" in html
    assert "10.20." not in html


def test_usage_errors_exit_2(lab: tuple[Path, Path]) -> None:
    cfg, db = lab
    base = ["--config", str(cfg), "--db", str(db), "-o", "-"]
    assert run("daily", "--date", "25/11/2569", *base).returncode == 2
    future = (TODAY + timedelta(days=3)).isoformat()
    assert run("daily", "--date", future, *base).returncode == 2
    assert run("availability", *base).returncode == 2
    assert run("availability", "--from", "2026-13", *base).returncode == 2
    assert run("availability", "--fiscal-year", "2026", *base).returncode == 2
    missing = run("daily", "--config", str(cfg), "--db", str(db.with_name("none.db")),
                  "-o", "-")
    assert missing.returncode == 1 and b"none.db" in missing.stderr


def test_daily_report_is_fast_for_300_schools(tmp_path: Path) -> None:
    """300 schools × 10 devices, a month of flapping history: seconds, not minutes."""
    from monitord.config import parse_config
    from monitord.reports.daily import build_daily
    from monitord.reports.monthly import build_monthly
    from monitord.storage.history import history_reader

    data = config()
    data["schools"] = {f"6202{n:04d}": {"name": f"โรงเรียนที่ {n}", "district": f"อำเภอ {n % 9}",
                                        "isp": "NT", "schedule": "school"} for n in range(300)}
    data["devices"] = [
        {"id": f"d{n}-{k}", "school": f"6202{n:04d}", "kind": "router" if k == 0 else "tv",
         "address": "10.0.0.1", **({"parent": f"d{n}-0"} if k else {})}
        for n in range(300) for k in range(10)]
    cfg = parse_config(write_config(tmp_path / "big.yaml", data).read_text()).config
    db = tmp_path / "big.db"
    now = time.time()

    async def fill() -> None:
        store = await Storage.open(db)
        try:
            batch = []
            for n in range(300):
                for k in range(10):
                    dev, t = f"d{n}-{k}", now - 40 * 86400
                    batch.append(Transition(dev, State.UNKNOWN, State.UP, t, ""))
                    for i in range(30 if k == 0 else 3):  # routers flap daily
                        t = now - (30 - i) * 86400 + (n % 7) * 3600
                        batch += [Transition(dev, State.UP, State.DOWN, t, ""),
                                  Transition(dev, State.DOWN, State.UP, t + 1800, "")]
            await store.record_transitions(batch)
        finally:
            await store.close()

    import asyncio
    asyncio.run(fill())
    with history_reader(db) as load:
        t0 = time.monotonic()
        report = build_daily(cfg, load)
        t1 = time.monotonic()
        today = datetime.now(BKK).date()
        monthly = build_monthly(cfg, load, (today.year, today.month) if today.month > 1
                                else (today.year - 1, 12), (today.year, today.month))
        t2 = time.monotonic()
    assert len(report.rows) == 300 and len(monthly.schools) == 300
    assert t1 - t0 < 10 and t2 - t1 < 20, (t1 - t0, t2 - t1)
