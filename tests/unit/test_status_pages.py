"""The status pages' caches (monitord.http.status.StatusPages): the same page as a fresh
render, whatever changed between two requests; gzip kept while the body is the same."""

from __future__ import annotations

import gzip
from datetime import date, timedelta

from monitord.domain.availability import Bar, DayCell
from monitord.domain.state import State
from monitord.http.status import SchoolRow, StatusData, StatusPages, render_status

NOW = 1_796_000_000.0


def bar(down: float) -> Bar:
    first = date(2026, 11, 1)
    return Bar(tuple(DayCell(first + timedelta(days=n), 28800.0, 28800.0 - down, down)
                     for n in range(30)))


def office(states: dict[str, State], bars: dict[str, Bar | None]) -> StatusData:
    return StatusData("สำนักงานทดสอบ", [
        SchoolRow(smis, f"โรงเรียน <{smis}>", f"อำเภอ {n % 3}", "NT" if n % 2 else "", states[smis],
            NOW - 3600 * n, (), bars.get(smis))
        for n, smis in enumerate(sorted(states))])


async def test_cached_rows_give_the_page_a_fresh_render_gives() -> None:
    pages = StatusPages()
    states = {f"620200{n:02d}": State.UP for n in range(12)}
    bars: dict[str, Bar | None] = {smis: bar(0.0) for smis in states}
    for step in range(5):
        data = office(states, bars)
        for lang in ("th", "en"):
            for q, isp in (("", ""), ("03", ""), ("", "NT"), ("<", "")):
                got = await pages.render(data, lang=lang, now=NOW + 60 * step, q=q, isp=isp)
                assert got is not None
                assert got.decode() == render_status(data, lang=lang, now=NOW + 60 * step,
                                                     q=q, isp=isp)
        # between requests: a school goes down, another comes back, new figures arrive
        states[f"620200{step:02d}"] = State.DOWN
        states[f"620200{step + 5:02d}"] = State.UNREACHABLE if step % 2 else State.UP
        bars[f"620200{step + 1:02d}"] = bar(600.0 * step) if step % 2 else None
    page = (await pages.render(office(states, bars), lang="th", now=NOW)) or b""
    assert b"&lt;62020000&gt;" in page and b"<62020000>" not in page
    assert b"s-down" in page and "ตั้งแต่".encode() in page


async def test_a_schools_page_and_an_unknown_school() -> None:
    pages = StatusPages()
    data = office({"62020001": State.DOWN}, {"62020001": bar(60.0)})
    got = await pages.render(data, lang="en", now=NOW, smis="62020001")
    assert got is not None
    assert got.decode() == render_status(data, lang="en", now=NOW, smis="62020001")
    assert await pages.render(data, lang="th", now=NOW, smis="99999999") is None
    assert await pages.body(data, lang="th", now=NOW, smis="99999999", gzip_ok=True) is None


async def test_gzip_is_kept_while_the_body_is_the_same() -> None:
    pages = StatusPages()
    states = {f"620200{n:02d}": State.UP for n in range(40)}
    bars: dict[str, Bar | None] = {smis: bar(0.0) for smis in states}
    raw, zipped = await pages.body(office(states, bars), lang="th", now=NOW) or (b"", True)
    assert not zipped
    first = await pages.body(office(states, bars), lang="th", now=NOW, gzip_ok=True)
    assert first is not None and first[1] and gzip.decompress(first[0]) == raw
    again = await pages.body(office(states, bars), lang="th", now=NOW, gzip_ok=True)
    assert again is not None and again[0] is first[0]  # not compressed again
    states["62020007"] = State.DOWN
    changed = await pages.body(office(states, bars), lang="th", now=NOW, gzip_ok=True)
    assert changed is not None and changed[1]
    assert gzip.decompress(changed[0]) == render_status(
        office(states, bars), lang="th", now=NOW).encode()  # type: ignore[union-attr]


async def test_a_nul_in_the_search_cannot_break_the_page() -> None:
    pages = StatusPages()
    data = office({"62020001": State.UP}, {"62020001": bar(0.0)})
    got = await pages.render(data, lang="th", now=NOW, q="\x00\x00", isp="\x00")
    assert got is not None and b"\x00" not in got
