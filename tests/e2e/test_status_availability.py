"""The 30-day availability bar on /status in real headless Chromium, from a real daemon
whose database holds an outage written with Storage's own API; and /reports over HTTP."""

from __future__ import annotations

import asyncio
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import sync_playwright

from monitord.domain.state import State, Transition
from monitord.storage import Storage
from tests.browser_lab import CHROMIUM_ARGS
from tests.daemon_lab import DaemonProcess, base_config, http_get, wait_for, write_config

BKK = ZoneInfo("Asia/Bangkok")


def at(day: date, hour: int) -> float:
    return datetime(day.year, day.month, day.day, hour, tzinfo=BKK).timestamp()


def test_availability_bar_in_chromium(tmp_path: Path,
                                      daemon_factory: Callable[..., DaemonProcess]) -> None:
    today = datetime.now(BKK).date()
    outage = today - timedelta(days=2)
    while outage.weekday() >= 5:  # a school day, at least two days ago
        outage -= timedelta(days=1)
    weekend = today - timedelta(days=1)
    while weekend.weekday() != 6:
        weekend -= timedelta(days=1)
    cfg = base_config([
        {"id": "a-rtr", "school": "62020001", "kind": "router", "address": "127.98.0.1",
         "hostname": "gw-a.school.example", "serial": "SER-A1"},
        {"id": "a-tv", "school": "62020001", "kind": "tv", "address": "127.98.0.2",
         "parent": "a-rtr", "name": "โทรทัศน์ ป.1"},
        {"id": "b-rtr", "school": "62020002", "kind": "router", "address": "127.98.1.1"},
    ])
    cfg["schedules"] = {"school": {"days": ["mon-fri"], "hours": ["08:00-16:00"]}}
    cfg["schools"]["62020001"]["schedule"] = "school"
    config = write_config(tmp_path / "m.yaml", cfg)
    db = tmp_path / "monitord.db"

    async def fill() -> None:
        store = await Storage.open(db)
        try:
            start = time.time() - 40 * 86400
            await store.record_transitions([
                Transition(d, State.UNKNOWN, State.UP, start, "ok")
                for d in ("a-rtr", "a-tv", "b-rtr")])
            await store.record_transitions([
                Transition("a-rtr", State.UP, State.DOWN, at(outage, 9), "3 failures"),
                Transition("a-rtr", State.DOWN, State.UP, at(outage, 12), "ok")])
        finally:
            await store.close()

    asyncio.run(fill())
    d = daemon_factory("run", "--config", str(config), db=db)
    d.wait_ready()
    # The first request starts the computation in the background; it lands within seconds.
    wait_for(lambda: "<i class=a1" in http_get(d.url + "/status")[1], 30, "availability bar")

    cell = f"{outage.day}/{outage.month}"
    shot = tmp_path / "status.png"
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 390, "height": 844})  # a phone
        try:
            page = ctx.new_page()
            resp = page.goto(d.url + "/status", timeout=30000)
            assert resp is not None and resp.headers.get("content-encoding") == "gzip"
            school = page.locator("li", has_text="โรงเรียนบ้านทดสอบ")
            cells = school.locator(".bar i")
            assert cells.count() == 30
            bad = school.locator(f'.bar i[title="{cell} 62.5%"]')
            assert bad.count() == 1 and bad.get_attribute("class") == "a1"
            off = school.locator(f'.bar i[title="{weekend.day}/{weekend.month} หยุด"]')
            assert off.count() == 1 and off.get_attribute("class") == "nh"
            label = school.locator(".bar").get_attribute("aria-label") or ""
            assert label.startswith("ใช้งานได้ ") and "เฉพาะเวลาเรียน" in label
            assert "ใช้งานได้ 9" in school.inner_text()  # the figure in words, too
            # The other school's routers follow "always": no day without hours.
            other = page.locator("li", has_text="โรงเรียนวัดทดสอบ")
            assert other.locator(".bar i.nh").count() == 0
            assert other.locator(".bar i").count() == 30
            box = cells.first.bounding_box()
            assert box is not None and box["width"] > 2 and box["height"] > 5
            text = page.inner_text("body")
            for secret in ("127.98", "gw-a.school.example", "SER-A1", "a-rtr"):
                assert secret not in text and secret not in page.content()
            page.screenshot(path=str(shot), full_page=True)

            # One school's page: the bar, the days in words, each device's figure.
            page.goto(d.url + "/status/62020001", timeout=30000)
            assert page.locator(".big .bar i").count() == 30
            page.click("#by-day summary")
            rows = page.locator("#by-day tbody tr")
            assert rows.count() == 30
            row = page.locator("#by-day tbody tr", has_text="62.5%")
            assert "3 ชั่วโมง" in row.inner_text()
            assert "ไม่มีเวลาเรียน" in page.inner_text("#by-day")
            assert "โทรทัศน์ ป.1" in page.inner_text("main")
            assert "127.98" not in page.content()
            page.goto(d.url + "/status?lang=en", timeout=30000)
            assert page.locator(f'.bar i[title="{cell} 62.5%"]').count() == 1
            assert "Available 9" in page.inner_text("main")
        finally:
            ctx.close()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000  # rendered, not blank

    # Reports over HTTP: types, file names, security headers, no addresses.
    with urllib.request.urlopen(d.url + "/reports/daily?format=csv", timeout=30) as r:
        body = r.read()
        assert r.headers["Content-Type"].startswith("text/csv")
        assert r.headers["Content-Disposition"].startswith('attachment; filename="daily-')
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    text = body.decode("utf-8-sig")
    assert body.startswith(b"\xef\xbb\xbf") and text.startswith("ลำดับ,รหัส SMIS,โรงเรียน")
    assert "โรงเรียนบ้านทดสอบ" in text and "127.98" not in text
    with urllib.request.urlopen(d.url + f"/reports/daily?date={outage.isoformat()}"
                                "&format=pdf", timeout=60) as r:
        assert r.headers["Content-Type"] == "application/pdf"
        assert r.read().startswith(b"%PDF-")
    status, html = http_get(d.url + f"/reports/availability?from={outage:%Y-%m}&to={today:%Y-%m}")
    assert status == 200 and "รายงานอัตราการใช้งานได้ของเครือข่าย" in html
    assert "127.98" not in html
    assert http_get(d.url + "/reports/daily?format=doc")[0] == 400
    assert http_get(d.url + "/reports")[0] == 200
    assert d.stop() == 0
