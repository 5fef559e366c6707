"""`monitord demo`: the real daemon on a simulated office, dead block via iptables."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from monitord.demo import processes
from monitord.demo.office import RULE_COMMENT, DemoLab, build_lab, lab_of_config
from monitord.demo.services import EXPIRING_SERVICE, SERVICES
from tests.daemon_lab import (
    MONITORD,
    ROOT,
    DaemonProcess,
    free_port,
    http_get,
    require_root,
    wait_for,
    wait_value,
)
from tests.notify_lab import Webhook


@pytest.fixture
def one_demo_at_a_time() -> Iterator[None]:
    """Demos use fixed ports (SNMP agents on 16161, projectors on 4352): a demo test waits
    until no other demo test of this machine runs (other sessions included)."""
    with processes.machine_lock("monitord-demo-tests", 200):
        yield


def rule_present() -> bool:
    out = subprocess.run(["iptables", "-w", "5", "-S", "INPUT"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return RULE_COMMENT in out


def test_lab_shape() -> None:
    lab = build_lab()
    schools = lab.config["schools"]
    assert len(schools) >= 30 and lab.device_count >= 300
    assert all(d["address"].startswith("127.") for d in lab.config["devices"])
    assert len(lab.dead_devices) == 23
    assert lab.down_devices == lab.dead_devices and not lab.agents   # no broker: no MQTT
    # a projector per school; the live ones answer PJLink, a few DEGRADED: no tickets
    assert len(lab.projectors) == 33 and lab.degraded_projectors
    assert lab.degraded_projectors.isdisjoint(lab.down_devices)
    with_mqtt = build_lab(mqtt_port=18830)
    assert with_mqtt.dead_devices == lab.dead_devices
    assert with_mqtt.down_devices == lab.dead_devices | with_mqtt.faulty_devices
    assert len(with_mqtt.faulty_devices) >= 5 and with_mqtt.degraded_devices


def lab_of(data_dir: Path) -> DemoLab:
    """The lab as the running demo built it: with MQTT when it found mosquitto, its trap
    receiver's port, the office services it started."""
    return lab_of_config(yaml.safe_load((data_dir / "demo.yaml").read_text(encoding="utf-8")))


@pytest.mark.usefixtures("one_demo_at_a_time")
def test_demo_runs_and_cleans_up(tmp_path: Path,
                                 daemon_factory: Callable[..., DaemonProcess]) -> None:
    require_root()
    d = daemon_factory("demo", "--data-dir", str(tmp_path / "demo"))
    d.wait_ready(timeout=60)
    assert rule_present()
    lab = lab_of(tmp_path / "demo")

    def states() -> tuple[int, int] | None:
        ups = d.metrics().by_label("monitord_device_up", "device")
        down = {dev for dev, v in ups.items() if v == 0}
        up = sum(1 for v in ups.values() if v == 1)
        if down == set(lab.down_devices) and up == lab.device_count - len(lab.down_devices):
            return len(down), up
        return None

    # DOWN: the dead block, and (with MQTT) the devices whose agent reports a fault
    down, up = wait_for(states, 90, "demo devices settle: the dead block DOWN, the rest UP")
    assert (down, up) == (len(lab.down_devices), lab.device_count - len(lab.down_devices))
    assert len(lab.dead_devices) == 23
    # Issue 15: the live projectors' lamp hours, the faulty ones DEGRADED with a reason (an
    # UP device for monitord_device_up, never a ticket), the routers' first link trap
    # (20 s after the start) accepted by the trap receiver.
    assert lab.trap_routers and lab.projectors

    def pjlink_and_traps() -> bool:
        m = d.metrics()
        hours = {lab_["device"] for lab_, _ in m.samples("monitord_pjlink_lamp_hours")}
        assert hours == {p.device_id for p in lab.projectors}, "lamp hours"
        states = {lab_["device"] for lab_, v in m.samples("monitord_device_state")
                  if lab_["state"] == "degraded" and v == 1}
        assert lab.degraded_projectors <= states, sorted(lab.degraded_projectors - states)
        accepted = sum(v for lab_, v in m.samples("monitord_snmp_traps_total")
                       if lab_["result"] == "accepted")
        assert accepted > 0, "no trap accepted"
        # the office's services over HTTPS: response times and certificates, one expiring
        web = {s.device_id for s in SERVICES if s.probe == "http"}
        assert set(m.by_label("monitord_http_response_seconds", "device")) == web
        expiry = m.by_label("monitord_tls_cert_not_after_timestamp_seconds", "device")
        assert set(expiry) == web, "certificates"
        soon = {dev for dev, t in expiry.items() if t - time.time() < 21 * 86400}
        assert soon == {EXPIRING_SERVICE}
        return True

    wait_for(pjlink_and_traps, 60, "projector lamp hours, DEGRADED projectors, a trap, the "
             "services' response times and certificates", interval=1)
    # The public status page: two schools offline, the rest online; no addresses.
    status, page = http_get(d.url + "/status")
    assert status == 200
    assert "ออนไลน์ <strong>34</strong> · ออฟไลน์ <strong>2</strong> · 36 โรงเรียน" in page
    assert "127." not in page and "demo.invalid" not in page and "SN0" not in page
    status, school = http_get(d.url + "/status/62020005")
    assert status == 200 and "ขัดข้อง" in school and "เข้าถึงไม่ได้" in school
    assert "127." not in school and "SN005" not in school
    # The first tickets open within two minutes of start: one per root cause.
    def tickets() -> list[str]:
        res = subprocess.run([*MONITORD, "tickets", "list", "--db", str(d.db), "--format",
                              "json"], capture_output=True, text=True, cwd=ROOT, timeout=60)
        return sorted(t["root"] for t in json.loads(res.stdout)) if res.returncode == 0 else []

    want = sorted(lab.root_causes + lab.condition_tickets)
    roots = wait_value(tickets, lambda r: len(r) >= len(want), 120, "demo tickets")
    assert roots == want
    # two dead schools (their routers), three single devices, each faulty MQTT agent, and
    # the e-office certificate that expires in 10 days ("renew the certificate")
    assert len(roots) == 5 + len(lab.faulty_devices) + 1
    log = d.log()
    assert "/status" in log and "/metrics" in log and "/healthz" in log
    # 368 devices, and the office's four services (three over HTTPS, DNS with dnsmasq)
    assert lab.device_count == 368 + 4
    assert f"23 of {lab.device_count} devices are dead" in log
    # secrets by reference: the PJLink password and the community never show
    for secret in ("demo-pjlink", "demo-public"):
        assert secret not in log and secret not in d.metrics_text(), secret
    # The console can be tried at once: the banner names the demo users and this run's
    # password, and the officer signs in with it and sees the demo's tickets.
    found = re.search(r"sign in as admin, officer, tech, school, director \(school "
                      r"(\d{8})\) with the password (\S+) ", log)
    assert found, "the demo banner names the console's users and password"
    with httpx.Client(base_url=d.url, timeout=30) as web:
        form = web.get("/console/signin").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf
        r = web.post("/console/signin", data={"csrf_token": csrf.group(1), "name": "officer",
                                              "password": found.group(2)})
        assert r.status_code == 303, r.text
        listing = web.get("/console/tickets")
        assert listing.status_code == 200
        listed = subprocess.run([*MONITORD, "tickets", "list", "--db", str(d.db), "--format",
                                 "json"], capture_output=True, text=True, cwd=ROOT, timeout=60)
        first = json.loads(listed.stdout)[0]["id"]
        assert f'href="/console/tickets/{first}"' in listing.text
    assert d.stop() == 0
    assert not rule_present(), "the demo must remove its iptables rule on exit"


def _demo(data_dir: Path, log: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """`monitord demo` on a small lab (school 5 is dead: one ticket) with our own args."""
    port = free_port()
    with log.open("ab") as out:
        proc = processes.spawn([*MONITORD, "demo", "--data-dir", str(data_dir), "--schools",
                                "5", "--listen", f"127.0.0.1:{port}", *extra],
                               output=out, cwd=ROOT)
    return proc, f"http://127.0.0.1:{port}"


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    return processes.stop(proc, 30)


@pytest.mark.usefixtures("one_demo_at_a_time")
def test_second_demo_run_starts_fresh_and_notifies_again(tmp_path: Path) -> None:
    """Issue 12, finding 17: a second `monitord demo --notify URL` used to resume the first
    run's database, whose tickets were all still open, and sent nothing."""
    require_root()
    data_dir = tmp_path / "demo"
    hook = Webhook()
    procs: list[subprocess.Popen[bytes]] = []

    def run_until_all_notified(run: int) -> str:
        """Start the demo, wait until every root cause's ticket was sent (#1 … #n), stop
        it; its output."""
        seen = len(hook.messages())
        log = tmp_path / f"run{run}.log"
        config = data_dir / "demo.yaml"
        config.unlink(missing_ok=True)
        proc, _url = _demo(data_dir, log, "--notify", hook.url)
        procs.append(proc)
        wait_for(lambda: config.exists() or proc.poll() is not None, 60, "the demo config")
        lab = lab_of(data_dir)
        tickets = len(lab.root_causes) + len(lab.condition_tickets)

        def all_sent() -> bool:
            text = "\n".join(hook.messages()[seen:])
            return proc.poll() is not None or all(
                f"เปิดใบแจ้งซ่อม #{k} " in text for k in range(1, tickets + 1))

        wait_for(all_sent, 150, f"{tickets} tickets notified by demo run {run}", interval=0.5)
        assert proc.poll() is None, log.read_text(encoding="utf-8", errors="replace")
        assert _stop(proc) == 0
        return log.read_text(encoding="utf-8", errors="replace")

    try:
        out = run_until_all_notified(1)
        assert f"demo: new database {data_dir / 'demo.db'}" in out, out
        # Again: the same tickets, opened anew (numbered from #1) on a fresh database.
        out = run_until_all_notified(2)
        [old] = sorted(data_dir.glob("demo-*.db"))
        assert (f"demo: fresh database {data_dir / 'demo.db'}; the previous run's was "
                f"moved to {old} (resume it with --db {old})") in out, out

        # --db resumes a database, says so and never moves it.
        log = tmp_path / "run3.log"
        proc, url = _demo(data_dir, log, "--db", str(old))
        procs.append(proc)
        wait_for(lambda: http_get(url + "/healthz")[0] == 200 or proc.poll() is not None, 60,
                 "the resumed demo")
        assert _stop(proc) == 0
        out = log.read_text(encoding="utf-8", errors="replace")
        assert f"demo: resuming the database {old} (--db)" in out, out
        assert sorted(data_dir.glob("demo-*.db")) == [old]
    finally:
        for p in procs:
            if p.poll() is None:
                _stop(p)
        hook.close()
    rules = subprocess.run(["iptables", "-w", "5", "-S", "INPUT"], capture_output=True,
                           text=True, timeout=30, check=True).stdout
    assert not [p.pid for p in procs if f"{RULE_COMMENT}-{p.pid}" in rules]
