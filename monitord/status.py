"""The public schools' connectivity status page (``/status``, ``/status/<smis>``).

Server-side rendered HTML: readable on a phone over a slow school link, no framework, no
JavaScript needed (a few lines reload it every minute when JavaScript is there). Thai by
default, English with ``?lang=en``. It shows schools and states only — never addresses,
host names, serial numbers, people or credentials (PDPA): the view it renders is built
from exactly those fields and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import jinja2

from monitord.state import State
from monitord.thaidate import format_datetime, format_duration

TEMPLATES = Path(__file__).parent / "templates"

STATE_TEXT = {
    "th": {State.UP: "ปกติ", State.DEGRADED: "ช้า/ไม่เสถียร", State.DOWN: "ขัดข้อง",
           State.UNREACHABLE: "เข้าถึงไม่ได้", State.MAINTENANCE: "ปิดปรับปรุง",
           State.UNKNOWN: "ไม่ทราบสถานะ"},
    "en": {State.UP: "Up", State.DEGRADED: "Degraded", State.DOWN: "Down",
           State.UNREACHABLE: "Unreachable", State.MAINTENANCE: "Maintenance",
           State.UNKNOWN: "Unknown"},
}
KIND_TEXT = {
    "th": {"router": "เราเตอร์", "switch": "สวิตช์", "access_point": "จุดกระจายสัญญาณไร้สาย",
           "server": "เครื่องแม่ข่าย", "dltv_receiver": "เครื่องรับสัญญาณดาวเทียม",
           "tv": "โทรทัศน์", "projector": "เครื่องฉายโปรเจกเตอร์", "ups": "เครื่องสำรองไฟ",
           "other": "อื่นๆ"},
    "en": {"router": "Router", "switch": "Switch", "access_point": "Wi-Fi access point",
           "server": "Server", "dltv_receiver": "Satellite receiver", "tv": "TV",
           "projector": "Projector", "ups": "UPS", "other": "Other"},
}
LABELS = {
    "th": {"title": "สถานะการเชื่อมต่ออินเทอร์เน็ตของโรงเรียน", "online": "ออนไลน์",
           "offline": "ออฟไลน์", "search": "ค้นหาชื่อโรงเรียนหรือรหัส SMIS", "isp": "ผู้ให้บริการ",
           "all_isps": "ทุกผู้ให้บริการ", "district": "อำเภอ", "since": "ตั้งแต่",
           "updated": "ปรับปรุงล่าสุด", "devices": "อุปกรณ์", "back": "กลับหน้ารวม",
           "go": "ค้นหา", "none": "ไม่พบโรงเรียน", "other_lang": "English",
           "schools": "โรงเรียน", "for": "เป็นเวลา"},
    "en": {"title": "Schools' connectivity status", "online": "online", "offline": "offline",
           "search": "Search school name or SMIS code", "isp": "ISP", "all_isps": "All ISPs",
           "district": "District", "since": "since", "updated": "Updated",
           "devices": "Devices", "back": "All schools", "go": "Search",
           "none": "No school found", "other_lang": "ภาษาไทย", "schools": "schools",
           "for": "for"},
}


@dataclass(frozen=True, slots=True)
class DeviceRow:
    kind: str
    name: str  # the device's display name from config — never its address
    state: State
    since: float


@dataclass(frozen=True, slots=True)
class SchoolRow:
    smis: str
    name: str
    district: str
    isp: str
    state: State
    since: float
    devices: Sequence[DeviceRow] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class StatusData:
    office: str
    schools: Sequence[SchoolRow]


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              autoescape=jinja2.select_autoescape(["html"]),
                              undefined=jinja2.StrictUndefined)


_ENV = _env()


def school_state(states: Sequence[State]) -> State:
    """A school's state from its link devices: the worst one counts."""
    order = [State.DOWN, State.UNREACHABLE, State.DEGRADED, State.MAINTENANCE, State.UNKNOWN,
             State.UP]
    for st in order:
        if st in states:
            return st
    return State.UNKNOWN


def render_status(data: StatusData, *, lang: str, now: float, q: str = "", isp: str = "",
                  smis: str | None = None) -> str | None:
    """The overview page, or one school's page; None when ``smis`` is unknown."""
    lang = "en" if lang == "en" else "th"
    texts = STATE_TEXT[lang]

    def since_text(ts: float) -> str:
        when = datetime.fromtimestamp(ts, UTC)
        if lang == "en":
            return f"since {when.astimezone().strftime('%Y-%m-%d %H:%M')}"
        return f"ตั้งแต่ {format_datetime(when, abbreviated=True)} ({format_duration(now - ts)})"

    common = {"lang": lang, "L": LABELS[lang], "office": data.office, "texts": texts,
              "kinds": KIND_TEXT[lang], "since_text": since_text,
              "updated": format_datetime(datetime.fromtimestamp(now, UTC), abbreviated=True)
              if lang == "th" else datetime.fromtimestamp(now, UTC).astimezone().isoformat(
                  timespec="minutes")}
    if smis is not None:
        school = next((s for s in data.schools if s.smis == smis), None)
        if school is None:
            return None
        return _ENV.get_template("school.html").render(school=school, **common)
    needle = q.strip().lower()
    schools = [s for s in data.schools
               if (not isp or s.isp == isp)
               and (not needle or needle in s.name.lower() or needle in s.smis)]
    districts: dict[str, list[SchoolRow]] = {}
    for s in sorted(schools, key=lambda s: (s.district, s.name)):
        districts.setdefault(s.district, []).append(s)
    online = sum(1 for s in schools if s.state in (State.UP, State.DEGRADED))
    offline = sum(1 for s in schools if s.state in (State.DOWN, State.UNREACHABLE))
    isps = sorted({s.isp for s in data.schools if s.isp})
    return _ENV.get_template("status.html").render(
        districts=districts, online=online, offline=offline, isps=isps, q=q, isp=isp,
        total=len(schools), **common)


StatusSource = Callable[[], StatusData]
