"""``monitord import|export`` as a process: a 300-school OBEC list in Windows-874 with three
bad rows reports exactly those rows; the clean list imports and ``monitord check`` passes;
export → import changes nothing; a running daemon picks up imported devices without a
restart."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.daemon_lab import DaemonProcess, base_config, cli, wait_for, write_config

HEADER = ("รหัส SMIS,ชื่อโรงเรียน,อำเภอ,ตำบล,ผู้ให้บริการอินเทอร์เน็ต,ละติจูด,ลองจิจูด,"
          "รหัส percode")
DISTRICTS = ("เมืองกำแพงเพชร", "คลองขลุง", "คลองลาน", "ขาณุวรลักษบุรี", "ปางศิลาทอง", "ลานกระบือ")
ISPS = ("NT", "TRUE", "AIS Fibre", "3BB")


def school_rows(bad: bool) -> list[str]:
    rows = []
    for i in range(300):
        smis = f"6202{1001 + i:04d}"
        lat, lon = f"{16.0 + i / 1000:.3f}", f"{99.3 + i / 1000:.3f}"
        district = DISTRICTS[i % len(DISTRICTS)]
        rows.append(f"{smis},โรงเรียนบ้านทดสอบที่ {i + 1},{district},ตำบล{i % 7},"
                    f"{ISPS[i % len(ISPS)]},{lat},{lon},{40_001 + i:06d}")
    if bad:  # spreadsheet rows 12, 151 and 299 (header = row 1)
        rows[10] = rows[10].replace("62021011,", "6202101,")
        rows[149] = rows[149].replace(",16.149,", ",116.149,")
        rows[297] = rows[297].replace(f",{DISTRICTS[297 % 6]},", ",,")
    return rows


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_bytes(("\r\n".join([HEADER, *rows]) + "\r\n").encode("cp874"))
    return path


def lab(tmp_path: Path, devices: list[dict[str, object]] | None = None) -> Path:
    data = base_config(devices or [])
    data["include"] = ["inventory.yaml"]
    (tmp_path / "inventory.yaml").write_text("", encoding="utf-8")
    return write_config(tmp_path / "monitord.yaml", data)


def test_300_schools_in_windows_874(tmp_path: Path) -> None:
    config = lab(tmp_path)
    bad = write_csv(tmp_path / "โรงเรียน.csv", school_rows(bad=True))
    res = cli("import", "schools", str(bad), "--config", str(config))
    assert res.returncode == 2, res.stderr
    row_lines = [ln for ln in res.stderr.splitlines() if re.match(rf"{re.escape(str(bad))}:\d+: ",
                                                                  ln)]
    assert row_lines == [
        f"{bad}:12: smis: SMIS code must be 8 digits, got '6202101' (Excel may have dropped a "
        "leading zero: format the column as text)",
        f"{bad}:151: lat: must be between -90 and 90, got 116.149",
        f"{bad}:299: district: empty: required",
    ], res.stderr
    assert "300 schools rows (Windows-874)" in res.stderr
    assert "3 bad row(s): nothing applied" in res.stderr
    assert (tmp_path / "inventory.yaml").read_text() == ""

    clean = write_csv(tmp_path / "clean.csv", school_rows(bad=False))
    res = cli("import", "schools", str(clean), "--config", str(config), "--dry-run")
    assert res.returncode == 0 and "dry run" in res.stderr, res.stderr
    assert (tmp_path / "inventory.yaml").read_text() == ""
    res = cli("import", "schools", str(clean), "--config", str(config))
    assert res.returncode == 0, res.stderr
    assert "300 new, 0 changed, 0 unchanged" in res.stderr
    res = cli("check", "--config", str(config))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK (302 schools, 0 devices)" in res.stderr

    exported = tmp_path / "export.csv"
    res = cli("export", "schools", "--config", str(config), "-o", str(exported))
    assert res.returncode == 0, res.stderr
    first = exported.read_bytes()
    assert first.startswith(b"\xef\xbb\xbf") and first.count(b"\r\n") == 303
    inventory = (tmp_path / "inventory.yaml").read_bytes()
    res = cli("import", "schools", str(exported), "--config", str(config))
    assert res.returncode == 0, res.stderr
    assert "0 new, 0 changed, 302 unchanged" in res.stderr
    assert (tmp_path / "inventory.yaml").read_bytes() == inventory
    res = cli("export", "schools", "--config", str(config), "-o", str(tmp_path / "again.csv"))
    assert res.returncode == 0
    assert (tmp_path / "again.csv").read_bytes() == first


def test_skip_bad_and_no_inventory(tmp_path: Path) -> None:
    config = lab(tmp_path)
    bad = write_csv(tmp_path / "bad.csv", school_rows(bad=True))
    res = cli("import", "schools", str(bad), "--config", str(config), "--skip-bad")
    assert res.returncode == 0, res.stderr
    assert "skipped 3 bad row(s): 12, 151, 299" in res.stderr
    assert "297 new" in res.stderr
    data = base_config([])
    write_config(config, data)  # no include:
    res = cli("import", "schools", str(bad), "--config", str(config))
    assert res.returncode == 2
    assert "add `include: [inventory.yaml]`" in res.stderr


def test_running_daemon_picks_up_imported_devices(
        tmp_path: Path, daemon_factory: Callable[..., DaemonProcess]) -> None:
    config = lab(tmp_path, [{"id": "r1", "school": "62020001", "kind": "router",
                             "address": "127.0.0.1"}])
    daemon = daemon_factory("run", "--config", str(config))
    daemon.wait_ready()
    wait_for(lambda: "r1" in daemon.metrics().by_label("monitord_device_up", "device"), 20,
             "r1 in /metrics")
    devices = tmp_path / "devices.csv"
    devices.write_bytes(("รหัสโรงเรียน,รหัสอุปกรณ์,ประเภท,ชื่ออุปกรณ์,ที่อยู่ IP,parent\n"
                         "62020001,sw-62020001,switch,สวิตช์,127.0.0.2,r1\n"
                         "62020002,r-62020002,router,เราเตอร์,127.0.0.3,\n").encode("cp874"))
    res = cli("import", "devices", str(devices), "--config", str(config))
    assert res.returncode == 0, res.stderr

    def picked_up() -> bool:
        up = daemon.metrics().by_label("monitord_device_up", "device")
        return {"r1", "sw-62020001", "r-62020002"} <= set(up)

    wait_for(picked_up, 30, "the imported devices in /metrics")
    assert "configuration file changed" in daemon.log()
    assert "configuration reloaded: 2 schools, 3 devices" in daemon.log()

    # a hand edit that does not validate: rejected with its problems, the devices stay
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(inventory.read_text(encoding="utf-8").replace(
        "kind: switch", "kind: swtich"), encoding="utf-8")
    wait_for(lambda: "new configuration rejected" in daemon.log(), 30, "the rejected reload")
    assert f"{inventory}:" in daemon.log() and "devices[0].kind" in daemon.log()
    assert "sw-62020001" in daemon.metrics().by_label("monitord_device_up", "device")
