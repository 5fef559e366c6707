"""The NOC wall screen (/wall) against a real daemon, in Debian's headless Chromium.

A small lab on 127.117.0.0/16: four schools, one of them dead from the start (its router,
and the switch and TV behind it), an office server named by its host name, two DLTV
receivers reporting over a real mosquitto (one without satellite lock).  While the page
is open a second school dies: the page must follow without a reload.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from PIL import Image
from playwright.sync_api import Page, sync_playwright

from tests.browser_lab import CHROMIUM_ARGS
from tests.daemon_lab import (
    DaemonProcess,
    IptablesDrop,
    base_config,
    http_get,
    wait_for,
    wait_value,
    write_config,
)
from tests.mqtt_lab import Broker

LAB_PREFIX = "127.117."
IP_RE = re.compile(r"\b127\.117\.\d+\.\d+\b")
HOSTILE_NAME = 'โรงเรียนบ้าน <i>ทดสอบ</i> & "ครู"'
FIGURES = {"schools_total", "schools_online", "schools_offline", "schools_other",
           "devices_down", "devices_unreachable", "dltv_total", "dltv_no_signal",
           "tickets_open", "upstream_outages", "upstream_schools"}


def lab_config(broker_port: int) -> dict[str, Any]:
    mq = {"mqtt": {"period": "60s"}}
    cfg = base_config([
        # school A (62020001, NT): dead from the start, with a switch and a TV behind it
        {"id": "a-rtr", "name": "เราเตอร์ ร.ร.บ้านทดสอบ", "school": "62020001",
         "kind": "router", "address": "127.117.0.1", "hostname": "gw-a.example"},
        {"id": "a-sw", "name": "สวิตช์ห้องคอม", "school": "62020001", "kind": "switch",
         "address": "127.117.0.2", "parent": "a-rtr"},
        {"id": "a-tv", "school": "62020001", "kind": "tv", "address": "127.117.0.3",
         "parent": "a-sw"},
        # school 62020002 (TRUE): fine
        {"id": "w-rtr", "name": "เราเตอร์วัดทดสอบ", "school": "62020002", "kind": "router",
         "address": "127.117.2.1"},
        # school B (62020003, NT, a hostile name): dies while the page is open
        {"id": "b-rtr", "name": "เราเตอร์ <b>B</b>", "school": "62020003", "kind": "router",
         "address": "127.117.1.1"},
        # school C (62020004, TRUE): two DLTV receivers over MQTT, one without lock
        {"id": "c-rtr", "name": "เราเตอร์อนุบาล", "school": "62020004", "kind": "router",
         "address": "127.117.3.1"},
        {"id": "c-rx1", "name": "เครื่องรับ ป.1", "school": "62020004", "kind": "dltv_receiver",
         "address": "127.0.0.1", "parent": "c-rtr", "probes": mq},
        {"id": "c-rx2", "name": "เครื่องรับ ป.2", "school": "62020004", "kind": "dltv_receiver",
         "address": "127.0.0.1", "parent": "c-rtr", "probes": mq},
        # an office server named by its host name (ids shaped like addresses are refused
        # by the config check): the wall must show neither, only its kind
        {"id": "office-hr", "name": "hr-srv.office.example",
         "hostname": "hr-srv.office.example", "kind": "server", "address": "127.117.0.9",
         "unit": "กลุ่มบริหารงานบุคคล"},
    ], ticket_delay="1s")
    cfg["schools"]["62020003"] = {"name": HOSTILE_NAME, "district": "คลองขลุง", "isp": "NT"}
    cfg["schools"]["62020004"] = {"name": "โรงเรียนอนุบาลทดสอบ", "district": "เมือง",
                                  "isp": "TRUE"}
    cfg["incidents"] = {"correlation": {"group_by": "isp", "min_schools": 2,
                                        "min_share": 0.5, "window": "10m"}}
    cfg["mqtt"] = {"host": "127.0.0.1", "port": broker_port, "client_id": "monitord-wall",
                   "reconnect_min": "200ms", "reconnect_max": "1s"}
    return cfg


def wall_json(d: DaemonProcess, lang: str = "th") -> dict[str, Any]:
    status, body = http_get(d.url + "/wall/data.json" + ("?lang=en" if lang == "en" else ""))
    assert status == 200, body
    assert not IP_RE.search(body), "an address of the lab in /wall/data.json"
    data: dict[str, Any] = json.loads(body)
    return data


def sse_messages(d: DaemonProcess, count: int, timeout: float) -> tuple[str, list[dict[str, Any]],
                                                                        float]:
    """Open /wall/events, read ``count`` snapshots; (content type, snapshots, seconds to
    the first one)."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout)
    start = time.monotonic()
    first = 0.0
    try:
        conn.request("GET", "/wall/events")
        resp = conn.getresponse()
        assert resp.status == 200
        ctype = resp.getheader("Content-Type") or ""
        out: list[dict[str, Any]] = []
        deadline = start + timeout
        while len(out) < count and time.monotonic() < deadline:
            line = resp.readline().decode()
            if not line:
                break
            if line.startswith("data: "):
                if not out:
                    first = time.monotonic() - start
                assert not IP_RE.search(line)
                out.append(json.loads(line[6:]))
        return ctype, out, first
    finally:
        conn.close()


def figure(page: Page, key: str) -> str:
    return page.inner_text(f"[data-figure={key}]").strip()


def test_wall_screen(tmp_path: Path, iptables: IptablesDrop, broker: Broker,
                     daemon_factory: Callable[..., DaemonProcess]) -> None:
    iptables.drop("127.117.0.0/24")  # school A and the office server
    config = write_config(tmp_path / "m.yaml", lab_config(broker.port))
    d = daemon_factory("run", "--config", str(config))
    d.wait_ready()

    def reports_applied() -> bool:
        for dev, lock in (("c-rx1", False), ("c-rx2", True)):
            broker.publish(f"monitord/62020004/{dev}/state",
                           {"ts": time.time(), "signal_lock": lock, "receiver_power": True})
        return bool(wall_json(d)["figures"]["dltv_no_signal"] == 1)

    wait_for(reports_applied, 20, "the receiver without lock on the wall", interval=0.5)
    expected = {"schools_total": 4, "schools_online": 3, "schools_offline": 1,
                "schools_other": 0, "devices_down": 3, "devices_unreachable": 2,
                "dltv_total": 2, "dltv_no_signal": 1, "tickets_open": 3,
                "upstream_outages": 0, "upstream_schools": 0}
    data = wait_value(lambda: wall_json(d), lambda v: v["figures"] == expected, 30,
                      "phase 1 figures (1 school down, 3 tickets)")
    # the documented fields
    assert set(data) >= {"version", "lang", "office", "generated_at", "updated_text",
                         "today_text", "digest", "figures", "down_schools", "upstream",
                         "events"}
    assert set(data["figures"]) == FIGURES
    [row] = data["down_schools"]
    assert row["smis"] == "62020001" and row["name"] == "โรงเรียนบ้านทดสอบ"
    assert row["district"] == "คลองขลุง" and row["isp"] == "NT"
    assert row["state_text"] == "ขัดข้อง" and re.search(r"(วินาที|นาที)", row["duration_text"])
    assert re.search(r"25\d\d", data["updated_text"]), "Buddhist-era year"
    texts = [e["text"] for e in data["events"]]
    assert any("เราเตอร์ ร.ร.บ้านทดสอบ · โรงเรียนบ้านทดสอบ" in t for t in texts), texts
    assert any("เครื่องแม่ข่าย · กลุ่มบริหารงานบุคคล" in t for t in texts), texts
    assert any(e["kind"] == "ticket" and e["badge"].startswith("ใบแจ้งซ่อม #")
               for e in data["events"]), data["events"]
    assert wall_json(d, "en")["down_schools"][0]["state_text"] == "Down"

    # The page, the stream and the headers.
    status, html = http_get(d.url + "/wall")
    assert status == 200 and not IP_RE.search(html) and "gw-a.example" not in html
    assert "hr-srv" not in html and "hr-srv" not in json.dumps(data, ensure_ascii=False)
    assert '<meta http-equiv="refresh" content="60">' in html
    assert "<b>B</b>" not in html and "<i>ทดสอบ</i>" not in html
    with urllib.request.urlopen(d.url + "/wall", timeout=5) as resp:
        csp = resp.headers["Content-Security-Policy"]
    assert "connect-src 'self'" in csp and "default-src 'none'" in csp
    ctype, snaps, first = sse_messages(d, 2, timeout=12)
    assert ctype.startswith("text/event-stream")
    assert len(snaps) == 2 and first < 3.0, (len(snaps), first)  # first at once, then ≤ 5 s
    assert snaps[0]["figures"] == expected

    shot = tmp_path / "wall.png"
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1920, "height": 1080})
        try:
            page = ctx.new_page()
            page.goto(d.url + "/wall", timeout=30000)
            assert page.title().startswith("ศูนย์เฝ้าระวังเครือข่าย")
            for key, value in expected.items():
                if page.query_selector(f"[data-figure={key}]") is not None:
                    assert figure(page, key) == str(value), key
            assert "บ้านทดสอบ" in page.inner_text("#down-list")
            assert "ขัดข้อง" in page.inner_text("#down-list")  # state in words, not colour
            wait_for(lambda: page.get_attribute("body", "data-transport") == "sse", 10,
                     "the event stream to open")
            # readable from 5 m and nothing to scroll at 1920×1080
            size = page.evaluate("parseFloat(getComputedStyle("
                                 "document.querySelector('[data-figure=schools_offline]')"
                                 ").fontSize)")
            assert size >= 100, size
            bottom = page.evaluate("document.querySelector('footer')"
                                   ".getBoundingClientRect().bottom")
            assert bottom <= 1080, bottom
            assert page.evaluate("document.documentElement.scrollWidth") <= 1920
            # with JavaScript the <noscript> refresh stays inert: the stream updates instead
            assert page.query_selector("meta[http-equiv=refresh]") is None
            page.evaluate("window.__noReload = 42")

            # School B dies while the page is open: it must follow without a reload.
            iptables.drop("127.117.1.0/24")
            wait_for(lambda: figure(page, "schools_offline") == "2", 30,
                     "the offline count to change on the open page")
            wait_for(lambda: page.query_selector("#down-list li[data-smis='62020003']"), 10,
                     "school B in the down list")
            wait_for(lambda: figure(page, "upstream_outages") == "1", 20,
                     "the ISP outage on the open page")
            assert page.evaluate("window.__noReload") == 42, "the page was reloaded"
            assert figure(page, "schools_online") == "2"
            down = page.inner_text("#down-list")
            hostile_short = HOSTILE_NAME.removeprefix("โรงเรียน")
            assert hostile_short in down  # shown as text, not markup
            assert page.query_selector("#down-list i, #events-list b") is None
            assert down.index("บ้านทดสอบ") < down.index(hostile_short)  # longest first
            assert down.count("⚠ NT ขัดข้อง") == 2  # both NT schools: the ISP's outage
            wait_for(lambda: "เราเตอร์ <b>B</b>" in page.inner_text("#events-list"), 10,
                     "school B's router in the events")
            assert not IP_RE.search(page.content())
            page.screenshot(path=str(shot))

            # The stream fails (e.g. a proxy that buffers): the script falls back to polling.
            page2 = ctx.new_page()
            page2.route("**/wall/events*", lambda route: route.abort())
            page2.goto(d.url + "/wall?lang=en", timeout=30000)
            wait_for(lambda: page2.get_attribute("body", "data-transport") == "poll", 10,
                     "the polling fallback")
            wait_for(lambda: int(page2.get_attribute("body", "data-updates") or 0) >= 2, 15,
                     "two polled updates")
            assert "Schools offline" in page2.inner_text("#figures")

            # The daemon stops while screens are connected: it exits cleanly and promptly.
            t0 = time.monotonic()
            assert d.stop(timeout=15) == 0
            assert time.monotonic() - t0 < 10
        finally:
            ctx.close()

    img = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    assert img.size == (1920, 1080)
    colours = [(n, cast(tuple[int, int, int], c))
               for n, c in img.getcolors(maxcolors=1 << 20) or []]
    assert len(colours) > 200, "the screenshot looks blank"
    dominant = max(colours)[1]
    assert sum(dominant) < 3 * 60, f"not a dark theme: {dominant}"
    reds = sum(n for n, (r, g, b) in colours if r > 200 and g < 110 and b < 110)
    assert reds > 5000, "no red (offline) figures on the screen"


def test_wall_without_javascript(tmp_path: Path,
                                 daemon_factory: Callable[..., DaemonProcess]) -> None:
    cfg = base_config([
        {"id": "a-rtr", "school": "62020001", "kind": "router", "address": "127.0.0.1"},
        {"id": "b-rtr", "school": "62020002", "kind": "router", "address": "127.0.0.1"},
    ])
    d = daemon_factory("run", "--config", str(write_config(tmp_path / "m.yaml", cfg)))
    d.wait_ready()
    wait_for(lambda: wall_json(d)["figures"]["schools_online"] == 2, 20, "both schools up")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1920, "height": 1080},
                                      java_script_enabled=False)
            page = ctx.new_page()
            page.goto(d.url + "/wall?lang=en", timeout=30000)
            assert figure(page, "schools_online") == "2"
            assert figure(page, "schools_offline") == "0"
            assert "All schools online" in page.inner_text("#down-list")
            assert page.query_selector("meta[http-equiv=refresh]") is not None
            assert re.search(r"B\.E\. 25\d\d", page.inner_text("footer"))
        finally:
            browser.close()
    assert LAB_PREFIX not in http_get(d.url + "/wall")[1]
