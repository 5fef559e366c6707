"""The public status page over real HTTP from the real daemon: content, filters, PDPA."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from tests.daemon_lab import (
    DaemonProcess,
    IptablesDrop,
    base_config,
    http_get,
    wait_for,
    write_config,
)


def test_status_page_groups_filters_and_hides_addresses(
        tmp_path: Path, iptables: IptablesDrop,
        daemon_factory: Callable[..., DaemonProcess]) -> None:
    cfg = base_config([
        {"id": "62020001-rtr", "school": "62020001", "kind": "router", "address": "127.97.0.1",
         "hostname": "gw1.school.example", "serial": "SERIAL-XYZ"},
        {"id": "62020001-rx", "school": "62020001", "kind": "dltv_receiver",
         "address": "127.97.0.2", "parent": "62020001-rtr", "name": "เครื่องรับ ป.1"},
        {"id": "62020002-rtr", "school": "62020002", "kind": "router", "address": "127.97.1.1"},
    ])
    cfg["schools"]["62020002"]["name"] = "<script>alert(1)</script> โรงเรียนวัดทดสอบ"
    config = write_config(tmp_path / "m.yaml", cfg)
    iptables.drop("127.97.0.0/24")
    d = daemon_factory("run", "--config", str(config))
    d.wait_ready()
    wait_for(lambda: "ออฟไลน์ <strong>1</strong>" in http_get(d.url + "/status")[1], 30,
             "school 1 offline on the page")
    status, page = http_get(d.url + "/status")
    assert status == 200
    assert "อำเภอ คลองขลุง" in page and "อำเภอ คลองลาน" in page
    assert "ขัดข้อง" in page and "ตั้งแต่" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    for secret in ("127.97", "gw1.school.example", "SERIAL-XYZ", "62020001-rtr"):
        assert secret not in page
    # Filter by ISP, search by name and by SMIS code.
    assert "62020002" not in http_get(d.url + "/status?isp=NT")[1].split("</form>")[1]
    found = http_get(d.url + "/status?q=" + quote("หนองปลิง"))[1]
    assert "ไม่พบโรงเรียน" in found
    found = http_get(d.url + "/status?q=62020002")[1].split("</form>")[1]
    assert "62020002" in found and "62020001" not in found
    # One school's page: devices by kind, states in words, still no addresses.
    wait_for(lambda: "เข้าถึงไม่ได้" in http_get(d.url + "/status/62020001")[1], 30,
             "the receiver behind the dead router shown as unreachable")
    status, school = http_get(d.url + "/status/62020001")
    assert status == 200 and "เครื่องรับ ป.1" in school
    assert "เครื่องรับสัญญาณดาวเทียม" in school and "127.97" not in school
    assert "SERIAL-XYZ" not in school and "gw1.school.example" not in school
    assert http_get(d.url + "/status/99999999")[0] == 404
    en = http_get(d.url + "/status?lang=en")[1]
    assert "Schools&#39; connectivity status" in en and "Down" in en
    assert d.stop() == 0
