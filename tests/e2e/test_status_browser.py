"""The status page in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser_lab import CHROMIUM_ARGS
from tests.daemon_lab import (
    DaemonProcess,
    IptablesDrop,
    base_config,
    http_get,
    wait_for,
    write_config,
)


def test_status_page_in_chromium(tmp_path: Path, iptables: IptablesDrop,
                                 daemon_factory: Callable[..., DaemonProcess]) -> None:
    cfg = base_config([
        {"id": "a-rtr", "school": "62020001", "kind": "router", "address": "127.99.0.1"},
        {"id": "b-rtr", "school": "62020002", "kind": "router", "address": "127.99.1.1"},
    ])
    config = write_config(tmp_path / "m.yaml", cfg)
    iptables.drop("127.99.0.0/24")
    d = daemon_factory("run", "--config", str(config))
    d.wait_ready()
    wait_for(lambda: "ออฟไลน์ <strong>1</strong>" in http_get(d.url + "/status")[1], 30,
             "one school offline")
    shot = tmp_path / "status.png"
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 390, "height": 844})  # a phone
        try:
            page = ctx.new_page()
            page.goto(d.url + "/status", timeout=30000)
            assert page.title().startswith("สถานะการเชื่อมต่ออินเทอร์เน็ตของโรงเรียน")
            summary = page.inner_text("#summary")
            assert "ออนไลน์ 1" in summary and "ออฟไลน์ 1" in summary
            text = page.inner_text("main")
            assert "ขัดข้อง" in text and "ปกติ" in text and "127.99" not in text
            # Search works by submitting the form, no JavaScript needed for it.
            page.fill("input[name=q]", "62020002")
            page.click("button[type=submit]")
            page.wait_for_url("**/status?*q=62020002*", timeout=10000)
            assert "62020001" not in page.inner_text("main")
            page.goto(d.url + "/status", timeout=30000)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            ctx.close()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000  # rendered, not blank
    assert d.stop() == 0
