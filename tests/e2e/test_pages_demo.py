"""The pages against the demo lab itself (SNMP agents, MQTT agents, dead block), in
Debian's headless Chromium: what an officer opening them would see."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from tests.browser_lab import CHROMIUM_ARGS
from tests.daemon_lab import DaemonProcess, http_get, require_root, wait_for

IPV4 = re.compile(r"\b127\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")


def colours(png: Path) -> int:
    with Image.open(png) as img:
        return len(img.convert("RGB").getcolors(maxcolors=1 << 20) or [])


def test_pages_on_the_demo_lab(tmp_path: Path,
                               daemon_factory: Callable[..., DaemonProcess]) -> None:
    require_root()
    d = daemon_factory("demo", "--data-dir", str(tmp_path / "demo"), "--schools", "6")
    d.wait_ready(timeout=60)

    def wall() -> dict[str, int] | None:
        status, body = http_get(d.url + "/wall/data.json")
        figures: dict[str, int] = json.loads(body)["figures"] if status == 200 else {}
        # school 5 is in the dead block; SNMP and MQTT data have arrived
        ready = (figures.get("schools_offline") == 1 and figures.get("dltv_total", 0) > 0
                 and d.metrics().get_sample("monitord_mqtt_broker_up") == 1
                 and d.metrics().samples("monitord_interface_receive_bytes_total"))
        return figures if ready else None

    figures = wait_for(wall, 90, "the demo's states, SNMP and MQTT data")
    assert figures["schools_total"] == 6 and figures["schools_online"] == 5

    shots = tmp_path / "shots"
    shots.mkdir()
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1920, "height": 1080})
        try:
            page = ctx.new_page()
            # The wall screen: the figures, then live updates without a reload.
            page.goto(d.url + "/wall", timeout=30000)
            assert page.inner_text("[data-figure=schools_offline]").strip() == "1"
            assert page.inner_text("[data-figure=schools_total]").strip() == "6"
            assert "บ้านวังแขม" in page.inner_text("#down-list")  # the dead school
            first = page.inner_text("#updated")
            page.wait_for_function(
                "t => document.querySelector('#updated').textContent !== t", arg=first,
                timeout=20000)  # the next snapshot arrived over the event stream
            assert not IPV4.search(page.content())
            page.screenshot(path=str(shots / "wall.png"))

            # The public status page on a phone: schools, states, the 30-day bar, no IPs.
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(d.url + "/status", timeout=30000)
            main = page.inner_text("main")
            assert "ออนไลน์ 5" in page.inner_text("#summary")
            assert "ขัดข้อง" in main and "ปกติ" in main
            page.wait_for_selector(".av .bar i", timeout=30000)  # figures computed at start
            html = page.content()
            assert not IPV4.search(html) and "demo-public" not in html
            page.screenshot(path=str(shots / "status.png"), full_page=True)
            page.goto(d.url + "/status/62020005", timeout=30000)
            school = page.inner_text("main")
            assert "ขัดข้อง" in school and "เข้าถึงไม่ได้" in school
            assert not IPV4.search(page.content())

            # The daily report, as the office would print it.
            page.set_viewport_size({"width": 1280, "height": 900})
            page.goto(d.url + "/reports/daily", timeout=30000)
            report = page.inner_text("body")
            assert "บ้านวังแขม" in report and "ออฟไลน์" in report
            assert not IPV4.search(page.content())
            page.screenshot(path=str(shots / "daily.png"))
        finally:
            ctx.close()
    for name in ("wall.png", "status.png", "daily.png"):
        assert colours(shots / name) > 50, f"{name} looks blank"
    assert d.stop() == 0
