"""The public schools' connectivity status page (``/status``, ``/status/<smis>``).

Server-side rendered HTML: readable on a phone over a slow school link, no framework, no
JavaScript needed (a few lines reload it every minute when JavaScript is there). Thai by
default, English with ``?lang=en``. It shows schools and states only — never addresses,
host names, serial numbers, people or credentials (PDPA): the view it renders is built
from exactly those fields and nothing else.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import jinja2
from markupsafe import Markup, escape

from monitord.domain.labels import KIND_TEXT, STATE_TEXT
from monitord.domain.school import OFFLINE_STATES, ONLINE_STATES
from monitord.domain.state import State
from monitord.thaidate import BANGKOK, format_date, format_datetime, format_duration

if TYPE_CHECKING:
    from monitord.domain.availability import Bar, DayCell

TEMPLATES = Path(__file__).parent / "templates"

LABELS = {
    "th": {"title": "สถานะการเชื่อมต่ออินเทอร์เน็ตของโรงเรียน", "online": "ออนไลน์",
           "offline": "ออฟไลน์", "search": "ค้นหาชื่อโรงเรียนหรือรหัส SMIS", "isp": "ผู้ให้บริการ",
           "all_isps": "ทุกผู้ให้บริการ", "district": "อำเภอ", "since": "ตั้งแต่",
           "updated": "ปรับปรุงล่าสุด", "devices": "อุปกรณ์", "back": "กลับหน้ารวม",
           "go": "ค้นหา", "none": "ไม่พบโรงเรียน", "other_lang": "English",
           "console": "สำหรับเจ้าหน้าที่",
           "schools": "โรงเรียน", "for": "เป็นเวลา",
           "avail": "ใช้งานได้", "avail_period": "ใน 30 วัน (เฉพาะเวลาเรียน)",
           "avail_title": "อัตราการใช้งานได้ 30 วัน เฉพาะเวลาเรียน",
           "no_hours": "ไม่มีเวลาเรียน", "no_data": "ไม่มีข้อมูล", "today": "วันนี้ถึงขณะนี้",
           "offline_time": "ออฟไลน์", "days_offline": "วันที่มีช่วงออฟไลน์",
           "legend": "แถบ 30 วัน (เฉพาะเวลาเรียน)", "l_full": "ใช้งานได้ ≥ 99.5%",
           "l_mid": "95–99.5%", "l_low": "ต่ำกว่า 95% (แท่งยิ่งเตี้ยยิ่งขัดข้องนาน)",
           "day": "วันที่", "by_day": "อัตราการใช้งานได้รายวัน",
           "pending": "กำลังคำนวณอัตราการใช้งานได้", "days": "วัน", "in_30": "ใน 30 วัน",
           "off_day": "หยุด"},
    "en": {"title": "Schools' connectivity status", "online": "online", "offline": "offline",
           "search": "Search school name or SMIS code", "isp": "ISP", "all_isps": "All ISPs",
           "district": "District", "since": "since", "updated": "Updated",
           "devices": "Devices", "back": "All schools", "go": "Search",
           "none": "No school found", "other_lang": "ภาษาไทย",
           "console": "Officers' console", "schools": "schools",
           "for": "for",
           "avail": "Available", "avail_period": "over 30 days (school hours only)",
           "avail_title": "30-day availability, school hours only",
           "no_hours": "no school hours", "no_data": "no data", "today": "today so far",
           "offline_time": "offline", "days_offline": "days with offline time",
           "legend": "30-day bar (school hours only)", "l_full": "available ≥ 99.5%",
           "l_mid": "95–99.5%", "l_low": "below 95% (the lower, the longer down)",
           "day": "Date", "by_day": "Availability by day",
           "pending": "availability being computed", "days": "days", "in_30": "over 30 days",
           "off_day": "no school"},
}


@dataclass(frozen=True, slots=True)
class DeviceRow:
    kind: str
    name: str  # the device's display name from config — never its address
    state: State
    since: float
    availability: float | None = None  # the last 30 days, in the device's active hours


@dataclass(frozen=True, slots=True)
class SchoolRow:
    smis: str
    name: str
    district: str
    isp: str
    state: State
    since: float
    devices: Sequence[DeviceRow] = field(default_factory=tuple)
    availability: Bar | None = None  # 30 days of school hours (None: not computed yet)


@dataclass(frozen=True, slots=True)
class StatusData:
    office: str
    schools: Sequence[SchoolRow]


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              autoescape=jinja2.select_autoescape(["html"]),
                              undefined=jinja2.StrictUndefined)


_ENV = _env()


def percent(ratio: float | None, lang: str = "th") -> str:
    """"98.7%", rounded down so that anything short of 100 % never reads 100 %."""
    if ratio is None:
        return LABELS["en" if lang == "en" else "th"]["no_data"]
    if ratio >= 1.0:
        return "100%"
    return f"{math.floor(ratio * 1000) / 10:.1f}%"


def duration_text(seconds: float, lang: str) -> str:
    if lang != "en":
        return format_duration(max(seconds, 0.0))
    minutes = int(max(seconds, 0.0) // 60)
    if minutes < 1:
        return f"{int(max(seconds, 0.0))} s"
    h, m = divmod(minutes, 60)
    return f"{h} h {m} min" if h and m else f"{h} h" if h else f"{m} min"


def day_text(day: date, lang: str, *, year: bool = False) -> str:
    if lang == "en":
        return day.strftime("%a %d %b %Y" if year else "%a %d %b")
    text = format_date(day, abbreviated=True)
    return text if year else text.rsplit(" ", 1)[0]


def cell_class(cell: DayCell) -> str:
    """CSS class of one day: height and colour both tell the availability."""
    if not cell.has_hours:
        return "nh"
    r = cell.ratio
    if r is None:
        return "nd"
    for limit, name in ((0.995, "a4"), (0.95, "a3"), (0.80, "a2"), (0.50, "a1")):
        if r >= limit:
            return name
    return "a0"


def cell_text(cell: DayCell, lang: str, today: date | None = None) -> str:
    """The words for one day (its title and, on a school's page, its table row)."""
    L = LABELS["en" if lang == "en" else "th"]
    head = day_text(cell.day, lang)
    if cell.day == today:
        head += f" ({L['today']})"
    if not cell.has_hours:
        return f"{head}: {L['no_hours']}"
    if cell.ratio is None:
        return f"{head}: {L['no_data']}"
    text = f"{head}: {percent(cell.ratio)}"
    if cell.down > 0:
        text += f" ({L['offline_time']} {duration_text(cell.down, lang)})"
    return text


def cell_title(cell: DayCell, lang: str) -> str:
    """The short words for one day on the overview ("23/11 98.9%"): 300 schools × 30
    days must stay light on a slow link; a school's own page has the full text."""
    L = LABELS["en" if lang == "en" else "th"]
    head = f"{cell.day.day}/{cell.day.month}"
    if not cell.has_hours:
        return f"{head} {L['off_day']}"
    return f"{head} {percent(cell.ratio, lang)}"


def bar_summary(bar: Bar, lang: str) -> str:
    L = LABELS["en" if lang == "en" else "th"]
    no_hours = sum(1 for c in bar.cells if not c.has_hours)
    offline = sum(1 for c in bar.cells if c.down > 0)
    return (f"{L['avail']} {percent(bar.ratio, lang)} {L['avail_period']}, "
            f"{L['days_offline']} {offline} {L['days']}, {L['off_day']} {no_hours} {L['days']}")


#: states whose row says since when (the overview and a school's page)
SINCE_STATES = frozenset({State.DOWN, State.UNREACHABLE})
#: the overview renders missing rows in slices of this many seconds, letting the event
#: loop run in between (all 2,000 rows after a figures refresh: a few slices)
SLICE_SECONDS = 0.02
#: where a district's rows go in the rendered overview: NUL and a random word of this
#: process (no config text can hold it; NUL is taken out of the search words)
_MARK = f"\x00{secrets.token_hex(8)}\x00"
#: gzip level of the status pages (9 costs twice the CPU for 10 % fewer bytes)
GZIP_LEVEL = 6
#: smaller bodies go uncompressed (as Starlette's GZipMiddleware did)
GZIP_MINIMUM = 1400
#: compressed bodies kept (page, lang, search): the most recent ones
GZIP_ENTRIES = 16
#: bodies larger than this are compressed in a thread (zlib lets the loop run meanwhile)
GZIP_INLINE = 64 * 1024


def _context(data: StatusData, lang: str, now: float) -> dict[str, Any]:
    texts = STATE_TEXT[lang]
    today = datetime.fromtimestamp(now, BANGKOK).date()

    def since_text(ts: float) -> str:
        when = datetime.fromtimestamp(ts, UTC)
        if lang == "en":
            return f"since {when.astimezone().strftime('%Y-%m-%d %H:%M')}"
        return f"ตั้งแต่ {format_datetime(when, abbreviated=True)} ({format_duration(now - ts)})"

    return {"lang": lang, "L": LABELS[lang], "office": data.office, "texts": texts,
            "kinds": KIND_TEXT[lang], "since_text": since_text,
            "percent": lambda r: percent(r, lang), "cell_class": cell_class,
            "cell_text": lambda c: cell_text(c, lang, today),
            "cell_title": lambda c: cell_title(c, lang),
            "bar_summary": lambda b: bar_summary(b, lang),
            "duration_text": lambda secs: duration_text(secs, lang),
            "day_label": lambda d: day_text(d, lang, year=True),
            "updated": format_datetime(datetime.fromtimestamp(now, UTC), abbreviated=True)
            if lang == "th" else datetime.fromtimestamp(now, UTC).astimezone().isoformat(
                timespec="minutes")}


@functools.lru_cache(maxsize=4096)
def _cell_html(cell: DayCell, lang: str) -> str:
    """One day of an overview bar (many schools share the same days: cached)."""
    return f'<i class={escape(cell_class(cell))} title="{escape(cell_title(cell, lang))}"></i>'


def bar_html(bar: Bar, lang: str) -> str:
    """The overview's 30-day bar: what ``_bar.html``'s ``bar(b)`` macro writes, in Python
    (2,000 schools × 30 days)."""
    label = LABELS[lang]
    cells = "".join([_cell_html(c, lang) for c in bar.cells])
    return (f'<div class="av"><span class="bar" role="img" '
            f'aria-label="{escape(bar_summary(bar, lang))}">{cells}</span> '
            f"<small>{escape(label['avail'])} {escape(percent(bar.ratio, lang))}</small></div>")


class _Row:
    """A school's cached overview row: its head (name, state, since) and its bar."""

    __slots__ = ("bar", "bar_html", "head", "html", "key")

    def __init__(self, key: tuple[str, ...], head: str, bar: Bar | None,
                 bar_html: str) -> None:
        self.key, self.head, self.bar, self.bar_html = key, head, bar, bar_html
        self.html = f"\n{head}{bar_html}</li>\n".encode()


class StatusPages:
    """``/status`` and ``/status/<smis>`` cheap at 2,000 schools.

    Each school's overview row is kept as HTML until what it shows changes (its head:
    state, the since text of an offline school, name, ISP; its bar: a new figures
    snapshot, every 5 minutes), so a request joins cached rows; the rows still to
    render are rendered in slices of :data:`SLICE_SECONDS` with the event loop running
    in between.  A body's gzip is kept per (page, lang, search) and reused while the
    body is the same; a new body is compressed in a thread.  The page is always current:
    nothing is cached by time."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, _Row]] = {"th": {}, "en": {}}
        self._gzip: OrderedDict[tuple[str, ...], tuple[bytes, bytes]] = OrderedDict()
        self._row_template = _ENV.get_template("_status_row.html")

    async def render(self, data: StatusData, *, lang: str, now: float, q: str = "",
                     isp: str = "", smis: str | None = None) -> bytes | None:
        """The overview page, or one school's page, UTF-8; None when ``smis`` is unknown.
        The same page as :func:`render_status`."""
        lang = "en" if lang == "en" else "th"
        common = _context(data, lang, now)
        if smis is not None:
            page = _school_page(data, smis, common)
            return None if page is None else page.encode()
        await asyncio.sleep(0)  # the caller read the states (~10 ms at 2,000 schools)
        q, isp = q.replace("\x00", ""), isp.replace("\x00", "")
        schools, summary = _overview_rows(data, q, isp)
        cache = self._rows[lang]
        if len(cache) > 2 * len(data.schools) + 100:  # schools removed by reloads
            cache.clear()
        since_text = common["since_text"]
        texts, labels = common["texts"], common["L"]
        html: dict[str, list[bytes]] = {}
        started = time.perf_counter()
        for s in schools:
            since = since_text(s.since) if s.state in SINCE_STATES else ""
            key = (s.name, s.isp, s.state.value, since)
            row = cache.get(s.smis)
            if row is None or row.key != key or row.bar is not s.availability:
                if row is not None and row.key == key:
                    head = row.head
                else:
                    head = self._row_template.render(s=s, since=since, lang=lang, L=labels,
                                                     texts=texts) + "\n"
                if row is not None and row.bar is s.availability:
                    bar = row.bar_html
                else:
                    bar = bar_html(s.availability, lang) if s.availability else ""
                row = cache[s.smis] = _Row(key, head, s.availability, bar)
                if time.perf_counter() - started > SLICE_SECONDS:
                    await asyncio.sleep(0)
                    started = time.perf_counter()
            html.setdefault(s.district, []).append(row.html)
        # The page around the rows, with a marker where each district's rows go: the
        # rows are joined as bytes (3 MB of them at 2,000 schools).
        districts = list(html.values())
        page = _ENV.get_template("status.html").render(
            districts={d: Markup(f"{_MARK}{n}{_MARK}") for n, d in enumerate(html)},
            q=q, isp=isp, **summary, **common)
        parts = page.split(_MARK)
        return b"".join(b"".join(districts[int(part)]) if i % 2 else part.encode()
                        for i, part in enumerate(parts))

    async def body(self, data: StatusData, *, lang: str, now: float, q: str = "",
                   isp: str = "", smis: str | None = None, gzip_ok: bool = False
                   ) -> tuple[bytes, bool] | None:
        """The page encoded (UTF-8) and, when ``gzip_ok`` and it is worth it, gzipped:
        (body, gzipped); None when ``smis`` is unknown."""
        raw = await self.render(data, lang=lang, now=now, q=q, isp=isp, smis=smis)
        if raw is None:
            return None
        if not gzip_ok or len(raw) < GZIP_MINIMUM:
            return raw, False
        key = ("school" if smis is not None else "overview", smis or "",
               "en" if lang == "en" else "th", q, isp)
        hit = self._gzip.get(key)
        if hit is not None and hit[0] == raw:
            self._gzip.move_to_end(key)
            return hit[1], True
        if len(raw) > GZIP_INLINE:
            packed = await asyncio.to_thread(gzip.compress, raw, GZIP_LEVEL, mtime=0)
        else:
            packed = gzip.compress(raw, GZIP_LEVEL, mtime=0)
        self._gzip[key] = (raw, packed)
        self._gzip.move_to_end(key)
        while len(self._gzip) > GZIP_ENTRIES:
            self._gzip.popitem(last=False)
        return packed, True


def _school_page(data: StatusData, smis: str, common: Mapping[str, Any]) -> str | None:
    school = next((s for s in data.schools if s.smis == smis), None)
    if school is None:
        return None
    return _ENV.get_template("school.html").render(school=school, **common)


def _overview_rows(data: StatusData, q: str, isp: str
                   ) -> tuple[list[SchoolRow], dict[str, Any]]:
    """The overview's schools (searched, by district and name) and the figures above
    them."""
    needle = q.strip().lower()
    schools = [s for s in data.schools
               if (not isp or s.isp == isp)
               and (not needle or needle in s.name.lower() or needle in s.smis)]
    schools.sort(key=lambda s: (s.district, s.name))
    summary = {"online": sum(1 for s in schools if s.state in ONLINE_STATES),
               "offline": sum(1 for s in schools if s.state in OFFLINE_STATES),
               "isps": sorted({s.isp for s in data.schools if s.isp}),
               "total": len(schools)}
    return schools, summary


def render_status(data: StatusData, *, lang: str, now: float, q: str = "", isp: str = "",
                  smis: str | None = None) -> str | None:
    """The overview page, or one school's page; None when ``smis`` is unknown (rendered
    from scratch: the site uses :class:`StatusPages`)."""
    coro = StatusPages().render(data, lang=lang, now=now, q=q, isp=isp, smis=smis)
    # it yields (asyncio.sleep(0)) only before the rows and between two of them
    for _ in range(len(data.schools) + 3):
        try:
            coro.send(None)
        except StopIteration as done:
            page = cast("bytes | None", done.value)
            return None if page is None else page.decode()
    coro.close()
    raise RuntimeError("status page rendering did not finish")
