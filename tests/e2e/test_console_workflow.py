"""The officers' console end to end: a real daemon on a small lab, users made with the
real CLI (``monitord users add … --password-stdin``) and Debian's headless Chromium
driven by Playwright, phone-sized.

An officer receives a phone report for a school's projector, assigns it, schedules it,
records the repair and closes it; the repair report PDF shows what was recorded.  A
school user sees only their school (another school's ticket is 403 on the page, the API
and the PDF link), a technician sees what is assigned to them, a form post without the
CSRF token is refused, ten wrong passwords are throttled, and the list and the detail fit
a 390×844 screen without horizontal scrolling.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.browser_lab import CHROMIUM_ARGS
from tests.daemon_lab import MONITORD, ROOT, DaemonProcess, base_config, write_config
from tests.pdf_lab import norm, pdf_text

PHONE = {"width": 390, "height": 844}
PASSWORD = "ม้าลาย-Zebra-2569!"
WRONG = "not-the-password-0"
USERS: list[tuple[str, str, list[str]]] = [
    ("officer1", "officer", []),
    ("tech1", "technician", []),
    ("school2", "school", ["62020002"]),
    ("victim1", "officer", []),
]


def lab_config() -> dict[str, Any]:
    devices = [
        {"id": "a-rtr", "school": "62020001", "kind": "router", "address": "127.97.1.1",
         "name": "เราเตอร์โรงเรียน"},
        {"id": "a-proj", "school": "62020001", "kind": "projector", "address": "127.97.1.5",
         "parent": "a-rtr", "name": "เครื่องฉายห้อง ป.6", "brand_model": "Epson EB-X51",
         "serial": "PJ-0001"},
        {"id": "b-rtr", "school": "62020002", "kind": "router", "address": "127.97.2.1",
         "name": "เราเตอร์โรงเรียนวัด"},
    ]
    return base_config(devices)


def add_user(db: Path, name: str, role: str, schools: list[str]) -> None:
    args = [*MONITORD, "users", "add", name, "--role", role, "--db", str(db),
            "--password-stdin"]
    for smis in schools:
        args += ["--school", smis]
    res = subprocess.run(args, input=PASSWORD + "\n", capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert PASSWORD not in res.stdout + res.stderr


def fits(page: Page) -> bool:
    """No horizontal scrolling."""
    return bool(page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


def sign_in(browser: Browser, url: str, name: str) -> tuple[BrowserContext, Page]:
    ctx = browser.new_context(viewport=PHONE, locale="th-TH")
    page = ctx.new_page()
    page.goto(url + "/console/tickets", timeout=30000)
    assert "/console/signin" in page.url  # not signed in yet
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/tickets$"), timeout=30000)
    return ctx, page


def report(page: Page, url: str, school: str, device: str | None, problem: str) -> int:
    """รับแจ้ง by phone through the form; the new ticket's number."""
    page.goto(url + "/console/tickets/new", timeout=30000)
    with page.expect_navigation():  # choosing the school shows its devices (JS: at once)
        page.select_option("#school", school)
    if device is not None:
        page.check(f"input[name=devices][value={device}]")
    page.check("input[name=source][value=phone]")
    page.fill("#reporter_name", "ครูวิชัย มีสุข")
    page.fill("#reporter_position", "ครูผู้รับผิดชอบงาน ICT")
    page.fill("#reporter_phone", "081-234-5678")
    page.fill("#problem", problem)
    page.click("#submit-report")
    page.wait_for_url(re.compile(r".*/console/tickets/\d+\?ok=new"), timeout=30000)
    match = re.search(r"/console/tickets/(\d+)", page.url)
    assert match
    return int(match.group(1))


def act(page: Page, action: str, fields: dict[str, str] | None = None,
        select: dict[str, str] | None = None) -> None:
    """Open an action's form, fill it in and send it; wait for the flash message."""
    form = f"#form-{action}"
    summary = page.locator(f"details:has({form}) > summary")
    if summary.count():
        summary.click()
    for name, value in (fields or {}).items():
        page.fill(f"{form} [name={name}]", value)
    for name, value in (select or {}).items():
        page.select_option(f"{form} [name={name}]", value)
    page.click(f"{form} button[type=submit]")
    page.wait_for_url(re.compile(rf".*\?ok={action}"), timeout=30000)
    assert page.locator("#flash").count() == 1


def test_console_workflow_in_chromium(tmp_path: Path,
                                      daemon_factory: Callable[..., DaemonProcess]) -> None:
    config = write_config(tmp_path / "m.yaml", lab_config())
    d = daemon_factory("run", "--config", str(config))
    d.wait_ready()
    for name, role, schools in USERS:
        add_user(d.db, name, role, schools)
    bangkok = ZoneInfo("Asia/Bangkok")
    day = (datetime.now(bangkok) + timedelta(days=1)).date().isoformat()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            # -- an officer receives a phone report for school 1's projector --------
            octx, officer = sign_in(browser, d.url, "officer1")
            assert "เจ้าหน้าที่" in officer.inner_text("header")
            tid = report(officer, d.url, "62020001", "a-proj", "เครื่องฉายภาพไม่ติด มีไฟกะพริบ")
            facts = officer.inner_text("#facts")
            assert "081-234-5678" in facts and "เครื่องฉายภาพไม่ติด" in facts
            assert "โทรศัพท์" in facts and "รับแจ้ง" in facts
            assert "PJ-0001" in officer.inner_text("#equipment")
            assert fits(officer)
            other = report(officer, d.url, "62020002", None, "อินเทอร์เน็ตใช้ไม่ได้ทั้งโรงเรียน")

            officer.goto(f"{d.url}/console/tickets/{tid}", timeout=30000)
            act(officer, "acknowledge")
            act(officer, "assign", select={"assignee": "tech1"})
            assert "tech1" in officer.inner_text("#assigned")
            act(officer, "schedule", {"date": day, "time": "09:30"})
            assert "09:30 น." in officer.inner_text("#appointment")
            assert "นัดหมายแล้ว" in officer.inner_text("#status")
            act(officer, "start")
            act(officer, "finish", {"start_date": day, "start_time": "09:45",
                                    "finish_date": day, "finish_time": "11:15"})
            act(officer, "record", {
                "cause": "หลอดภาพหมดอายุการใช้งาน", "fix": "เปลี่ยนหลอดภาพใหม่",
                "summary": "ทดสอบฉายภาพได้ปกติ", "repairer_name": "นายสมชาย ใจดี",
                "repairer_position": "นักวิชาการคอมพิวเตอร์"})
            officer.once("dialog", lambda dialog: dialog.accept())  # "close this ticket?"
            act(officer, "close")
            assert "ปิด" in officer.inner_text("#status")
            timeline = officer.inner_text("#timeline")
            for word in ("นัดหมายแล้ว", "กำลังซ่อม", "ซ่อมเสร็จ", "ปิด", "officer1"):
                assert word in timeline
            assert fits(officer)
            officer.screenshot(path=str(tmp_path / "detail-390.png"), full_page=True)

            # the Thai repair report shows what was recorded
            pdf = officer.request.get(f"{d.url}/tickets/{tid}/report.pdf")
            assert pdf.status == 200 and pdf.body()[:5] == b"%PDF-"
            path = tmp_path / f"ticket-{tid}.pdf"
            path.write_bytes(pdf.body())
            text = norm(pdf_text(path))
            for value in ("หลอดภาพหมดอายุการใช้งาน", "เปลี่ยนหลอดภาพใหม่", "ทดสอบฉายภาพได้ปกติ",
                          "นายสมชาย ใจดี", "ครูวิชัย มีสุข", "โรงเรียนบ้านทดสอบ", "PJ-0001"):
                assert norm(value) in text, value

            # the list on a phone: both tickets of the day (one closed), no scrolling
            officer.goto(d.url + "/console/tickets?status=all", timeout=30000)
            rows = officer.locator("#tickets tbody tr")
            assert rows.count() == 2
            assert fits(officer)
            officer.screenshot(path=str(tmp_path / "list-390.png"), full_page=True)

            # a form post without the CSRF token → 403, nothing changed
            refused = officer.request.post(f"{d.url}/console/tickets/{other}/close",
                                           form={"note": "no token"})
            assert refused.status == 403
            api = officer.request.get(f"{d.url}/api/v1/tickets/{other}")
            assert api.status == 200 and api.json()["status"] == "open"

            # -- a school user sees only their school -------------------------------
            sctx, school = sign_in(browser, d.url, "school2")
            listed = school.inner_text("#tickets")
            assert f"#{other}" in listed and f"#{tid}" not in listed
            response = school.goto(f"{d.url}/console/tickets/{tid}")
            assert response is not None and response.status == 403
            assert school.request.get(f"{d.url}/api/v1/tickets/{tid}").status == 403
            assert school.request.get(f"{d.url}/tickets/{tid}/report.pdf").status == 403
            assert school.request.get(f"{d.url}/tickets/{tid}").status == 403
            response = school.goto(f"{d.url}/console/tickets/{other}")
            assert response is not None and response.status == 200
            assert school.locator("#actions").count() == 0  # nothing to confirm yet
            sctx.close()

            # -- a technician sees the tickets assigned to them ---------------------
            tctx, tech = sign_in(browser, d.url, "tech1")
            tech.goto(d.url + "/console/tickets?status=all", timeout=30000)
            listed = tech.inner_text("#tickets")
            assert f"#{tid}" in listed and f"#{other}" not in listed
            response = tech.goto(f"{d.url}/console/tickets/{other}")
            assert response is not None and response.status == 403
            tctx.close()
            octx.close()

            # -- ten wrong passwords: the sign-in is throttled ----------------------
            vctx = browser.new_context(viewport=PHONE)
            page = vctx.new_page()
            statuses = []
            for _ in range(10):
                page.goto(d.url + "/console/signin", timeout=30000)
                page.fill("input[name=name]", "victim1")
                page.fill("input[name=password]", WRONG)
                with page.expect_response(lambda r: r.request.method == "POST") as answer:
                    page.click("button[type=submit]")
                statuses.append(answer.value.status)
            assert statuses[0] == 401 and statuses[-1] == 429, statuses
            assert "ลองเข้าสู่ระบบผิดหลายครั้งเกินไป" in page.inner_text("main")
            page.goto(d.url + "/console/signin", timeout=30000)  # even the right one now
            page.fill("input[name=name]", "victim1")
            page.fill("input[name=password]", PASSWORD)
            with page.expect_response(lambda r: r.request.method == "POST") as answer:
                page.click("button[type=submit]")
            assert answer.value.status == 429
            vctx.close()
        finally:
            browser.close()
    for shot in ("detail-390.png", "list-390.png"):
        data = (tmp_path / shot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000  # rendered
    assert PASSWORD not in d.log()
    assert d.stop() == 0
