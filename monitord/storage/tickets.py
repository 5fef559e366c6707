"""Repair tickets in SQLite: what the engine decides, what officers fill in.

The incident engine decides *when* a ticket opens, recovers, relapses or auto-closes;
this module writes those decisions with guarded SQL so that an officer's edit made
through the CLI while the daemon runs is never overwritten: the daemon only touches the
status columns, and only from the statuses where its decision still makes sense.
Statuses and the ticket's frozen facts are :mod:`monitord.domain.tickets`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiosqlite

from monitord.domain.incidents import (
    Change,
    Incident,
    IncidentClosed,
    IncidentOpened,
    IncidentUpdated,
    TicketAutoClosed,
    TicketDeviceBack,
    TicketInfo,
    TicketJoined,
    TicketOpen,
    TicketRecovered,
    TicketRelapsed,
)
from monitord.domain.notifications import (
    TicketSubject,
    ticket_closed_by,
    ticket_reported,
    ticket_scheduled,
)
from monitord.domain.tickets import (
    STATUS_TH,
    STATUSES,
    SYSTEM_ACTOR,
    Equipment,
    TicketContext,
    TicketError,
    TicketStatus,
    received_note,
    root_school,
)
from monitord.storage.outbox import record
from monitord.storage.tx import rollback


async def apply_changes(db: aiosqlite.Connection, changes: Sequence[Change],
                        contexts: Mapping[int, TicketContext], now: float) -> None:
    """Write engine decisions; the caller holds the transaction."""
    for ch in changes:
        if isinstance(ch, IncidentOpened | IncidentUpdated | IncidentClosed):
            await _upsert_incident(db, ch.incident)
        elif isinstance(ch, TicketOpen):
            await _open_ticket(db, ch, contexts.get(ch.ticket_id), now)
        elif isinstance(ch, TicketRecovered):
            cur = await db.execute(
                "UPDATE ticket SET status = 'repaired', repaired_at = ?, recovery_seconds = ?,"
                " repair_finished = COALESCE(repair_finished, ?), updated_at = ?"
                " WHERE id = ? AND status IN ('open', 'scheduled', 'in_repair')",
                (ch.ts, ch.down_seconds, ch.ts, now, ch.ticket_id),
            )
            if cur.rowcount:
                note = (f"ไม่พบปัญหา {ch.condition} อีกแล้ว (พบอยู่ {ch.down_seconds:.0f} วินาที)"
                        if ch.condition else
                        f"กลับมาใช้งานได้ (ขัดข้อง {ch.down_seconds:.0f} วินาที)")
                await _event(db, ch.ticket_id, ch.ts, TicketStatus.REPAIRED, SYSTEM_ACTOR,
                             note)
        elif isinstance(ch, TicketRelapsed):
            cur = await db.execute(
                "UPDATE ticket SET status = 'open', repaired_at = NULL, recovery_seconds = NULL,"
                " repair_finished = NULL, incident_id = ?, relapses = relapses + 1,"
                " updated_at = ? WHERE id = ? AND status = 'repaired'",
                (ch.incident.id, now, ch.ticket_id),
            )
            if cur.rowcount:
                await _event(db, ch.ticket_id, ch.ts, TicketStatus.OPEN, SYSTEM_ACTOR,
                             "ขัดข้องซ้ำภายในช่วงเวลาที่กำหนด: เปิดใบแจ้งซ่อมเดิมอีกครั้ง")
        elif isinstance(ch, TicketAutoClosed):
            cur = await db.execute(
                "UPDATE ticket SET status = 'closed', closed_at = ?, updated_at = ?"
                " WHERE id = ? AND status = 'repaired'", (ch.ts, now, ch.ticket_id))
            if cur.rowcount:
                await _event(db, ch.ticket_id, ch.ts, TicketStatus.CLOSED, SYSTEM_ACTOR,
                             "ใช้งานได้ต่อเนื่องตามเวลาที่กำหนด: ปิดอัตโนมัติ")
        elif isinstance(ch, TicketJoined):
            await _join_ticket(db, ch, now)
        elif isinstance(ch, TicketDeviceBack):
            async with db.execute("SELECT status FROM ticket WHERE id = ?",
                                  (ch.ticket_id,)) as cur:
                row = await cur.fetchone()
            if row is not None and row["status"] != TicketStatus.CLOSED:
                await _event(db, ch.ticket_id, ch.ts, row["status"], SYSTEM_ACTOR,
                             f"อุปกรณ์กลับมาใช้งานได้: {ch.device_id} "
                             f"(ขัดข้อง {ch.down_seconds:.0f} วินาที)")


async def _upsert_incident(db: aiosqlite.Connection, inc: Incident) -> None:
    await db.execute(
        "INSERT INTO incident (id, kind, root, school, opened_at, closed_at, reason, hypothesis,"
        " affected, members, parent_incident, ticket_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT (id) DO UPDATE SET closed_at = excluded.closed_at,"
        " reason = excluded.reason, hypothesis = excluded.hypothesis, affected = excluded.affected,"
        " members = excluded.members, parent_incident = excluded.parent_incident,"
        " ticket_id = excluded.ticket_id",
        (inc.id, inc.kind, inc.root, inc.school, inc.opened_at, inc.closed_at, inc.reason,
         inc.hypothesis, json.dumps(sorted(inc.affected)), json.dumps(sorted(inc.members)),
         inc.parent_incident, inc.ticket_id),
    )


async def _open_ticket(db: aiosqlite.Connection, ch: TicketOpen, ctx: TicketContext | None,
                       now: float) -> None:
    inc = ch.incident
    ctx = ctx or TicketContext("office", "", inc.school, "", "", "ระบบ monitord", "")
    cur = await db.execute(
        "INSERT INTO ticket (id, incident_id, root, school, variant, served_unit, status,"
        " opened_at, down_since, reason, hypothesis, reporter_name, reporter_position,"
        " equipment, office_name, group_name, updated_at)"
        " VALUES (?,?,?,?,?,?,'open',?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO NOTHING",
        (ch.ticket_id, inc.id, inc.root, ctx.school, ctx.variant, ctx.served_unit, ch.ts,
         inc.opened_at, inc.reason, inc.hypothesis, ctx.reporter_name, ctx.reporter_position,
         json.dumps([_eq(e) for e in ctx.equipment], ensure_ascii=False),
         ctx.office_name, ctx.group_name, now),
    )
    if cur.rowcount:
        await _event(db, ch.ticket_id, ch.ts, TicketStatus.OPEN, SYSTEM_ACTOR, "เปิดอัตโนมัติ")
    await db.execute("UPDATE incident SET ticket_id = ? WHERE id = ?", (ch.ticket_id, inc.id))


async def _join_ticket(db: aiosqlite.Connection, ch: TicketJoined, now: float) -> None:
    """An automatic ticket's incident joins the manual ticket that covers its device: the
    report gets the observed facts (incident, since when, reason, hypothesis)."""
    inc = ch.incident
    cur = await db.execute(
        "UPDATE ticket SET incident_id = ?, down_since = MIN(down_since, ?), reason = ?,"
        " hypothesis = ?, updated_at = ? WHERE id = ? AND status IN"
        " ('open', 'scheduled', 'in_repair')",
        (inc.id, inc.opened_at, inc.reason, inc.hypothesis, now, ch.ticket_id))
    if cur.rowcount:
        async with db.execute("SELECT status FROM ticket WHERE id = ?",
                              (ch.ticket_id,)) as c:
            row = await c.fetchone()
        status = row["status"] if row is not None else TicketStatus.OPEN
        what = f"{inc.root} ไม่ตอบสนอง" + (f" ({inc.reason})" if inc.reason else "")
        await _event(db, ch.ticket_id, ch.ts, status, SYSTEM_ACTOR,
                     f"ระบบตรวจพบ {what}: รวมเข้ากับใบแจ้งซ่อมที่รับแจ้งไว้")
    await db.execute("UPDATE incident SET ticket_id = ? WHERE id = ?", (ch.ticket_id, inc.id))


def _eq(e: Equipment) -> dict[str, str]:
    return {"device_id": e.device_id, "name": e.name, "hostname": e.hostname,
            "brand_model": e.brand_model, "serial": e.serial, "remark": e.remark}


async def _event(db: aiosqlite.Connection, ticket_id: int, ts: float, status: str, actor: str,
                 note: str) -> None:
    await db.execute(
        "INSERT INTO ticket_event (ticket_id, ts, status, actor, note) VALUES (?,?,?,?,?)",
        (ticket_id, ts, status, actor, note),
    )


# -- reads ---------------------------------------------------------------------------


#: columns of migration 4 and their values in a database read (read-only) before it
_MANUAL_DEFAULTS: dict[str, Any] = {
    "origin": "auto", "report_source": None, "reporter_phone": "", "problem": "",
    "assigned_to": None, "acknowledged_at": None, "acknowledged_by": None,
    "created_by": None}


def _row(r: Any) -> dict[str, Any]:
    d = dict(r)
    for key, value in _MANUAL_DEFAULTS.items():
        d.setdefault(key, value)
    d["equipment"] = json.loads(d.get("equipment") or "[]")
    d["status_th"] = STATUS_TH.get(d["status"], d["status"])
    return d


async def get_ticket(db: aiosqlite.Connection, ticket_id: int) -> dict[str, Any]:
    async with db.execute("SELECT * FROM ticket WHERE id = ?", (ticket_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        raise TicketError(f"no ticket {ticket_id}")
    ticket = _row(row)
    async with db.execute(
        "SELECT ts, status, actor, note FROM ticket_event WHERE ticket_id = ? ORDER BY id",
        (ticket_id,),
    ) as cur:
        ticket["history"] = [dict(r) for r in await cur.fetchall()]
    async with db.execute("SELECT root, affected FROM incident WHERE id = ?",
                          (ticket["incident_id"],)) as cur:
        inc = await cur.fetchone()
    ticket["affected"] = json.loads(inc["affected"]) if inc else []
    #: the device the system saw fail (a manual ticket: the incident that joined it)
    ticket["incident_root"] = inc["root"] if inc else None
    return ticket


async def list_tickets(db: aiosqlite.Connection, status: str | None = None,
                       include_closed: bool = False, *,
                       schools: Sequence[str] | None = None,
                       assigned_to: str | None = None) -> list[dict[str, Any]]:
    """Tickets by status (not closed unless ``include_closed``); ``schools``: only those
    of these schools (a role's scope: an empty list gives none); ``assigned_to``: only
    those assigned to this user."""
    sql = "SELECT * FROM ticket"
    where: list[str] = []
    args: list[Any] = []
    if status is not None:
        where.append("status = ?")
        args.append(status)
    elif not include_closed:
        where.append("status != 'closed'")
    if schools is not None:
        if not schools:
            return []
        where.append(f"school IN ({', '.join('?' for _ in schools)})")
        args.extend(schools)
    if assigned_to is not None:
        where.append("assigned_to = ?")
        args.append(assigned_to)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY opened_at, id"
    async with db.execute(sql, args) as cur:
        return [_row(r) for r in await cur.fetchall()]


async def ticket_infos(db: aiosqlite.Connection) -> list[TicketInfo]:
    """What the engine needs to know of every ticket that is not closed."""
    async with db.execute(
        "SELECT id, root, status, repaired_at, origin, equipment FROM ticket"
        " WHERE status != 'closed'"
    ) as cur:
        rows = await cur.fetchall()
    out = []
    for r in rows:
        if r["origin"] == "manual":
            try:
                devices = frozenset(str(e["device_id"])
                                    for e in json.loads(r["equipment"] or "[]"))
            except (ValueError, TypeError, KeyError):
                devices = frozenset()
            out.append(TicketInfo(r["id"], r["root"], r["status"], r["repaired_at"],
                                  manual=True, devices=devices, school=root_school(r["root"])))
        else:
            out.append(TicketInfo(r["id"], r["root"], r["status"], r["repaired_at"]))
    return out


async def next_ticket_id(db: aiosqlite.Connection) -> int:
    async with db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM ticket") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 1


async def open_incidents(db: aiosqlite.Connection) -> list[Incident]:
    async with db.execute("SELECT * FROM incident WHERE closed_at IS NULL") as cur:
        rows = await cur.fetchall()
    return [
        Incident(r["id"], r["kind"], r["root"], r["opened_at"], r["reason"], r["hypothesis"],
                 r["school"], set(json.loads(r["affected"])), set(json.loads(r["members"])),
                 r["parent_incident"], None, r["ticket_id"])
        for r in rows
    ]


async def _notify_officer_change(db: aiosqlite.Connection, ticket_id: int, actor: str,
                                 scheduled_for: float | None, status: str | None,
                                 now: float) -> None:
    async with db.execute("SELECT root, school, served_unit, equipment FROM ticket"
                          " WHERE id = ?", (ticket_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return
    equipment = json.loads(row["equipment"] or "[]")
    whole_school = root_school(row["root"]) is not None  # a manual report: no one device
    subject = TicketSubject(ticket_id, row["root"],
                            "" if whole_school else equipment[0]["name"] if equipment
                            else row["root"],
                            served_unit=row["served_unit"], school=row["school"])
    events = []
    if scheduled_for is not None:
        events.append(ticket_scheduled(subject, actor, scheduled_for, now))
    if status == TicketStatus.CLOSED:
        events.append(ticket_closed_by(subject, actor, now))
    await record(db, events)


# -- officers' changes ---------------------------------------------------------------

_FIELDS = ("cause", "fix", "summary", "event_text", "repairer_name", "repairer_position",
           "repair_started", "repair_finished")


async def officer_update(db: aiosqlite.Connection, ticket_id: int, actor: str, *,
                         status: str | None = None, note: str = "",
                         scheduled_for: float | None = None,
                         fields: Mapping[str, Any] | None = None,
                         now: float | None = None) -> dict[str, Any]:
    """Apply an officer's change in its own transaction; returns the updated ticket."""
    now = time.time() if now is None else now
    fields = dict(fields or {})
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise TicketError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if status is not None and status not in STATUSES:
        raise TicketError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    await db.execute("BEGIN IMMEDIATE")
    try:
        async with db.execute("SELECT status FROM ticket WHERE id = ?", (ticket_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise TicketError(f"no ticket {ticket_id}")
        current = row["status"]
        if current == TicketStatus.CLOSED and status not in (None, TicketStatus.CLOSED):
            raise TicketError(f"ticket {ticket_id} is closed")
        sets = {k: v for k, v in fields.items() if v is not None}
        if scheduled_for is not None:
            sets["scheduled_for"] = scheduled_for
            status = status or (TicketStatus.SCHEDULED if current == TicketStatus.OPEN
                                else None)
        if status == TicketStatus.IN_REPAIR and "repair_started" not in sets:
            sets["repair_started"] = now
        if status == TicketStatus.REPAIRED:
            sets.setdefault("repair_finished", now)
            sets["repaired_at"] = now
        if status == TicketStatus.CLOSED:
            sets["closed_at"] = now
        if status is not None:
            sets["status"] = status
        sets["updated_at"] = now
        assignments = ", ".join(f"{k} = ?" for k in sets)
        await db.execute(f"UPDATE ticket SET {assignments} WHERE id = ?",
                         [*sets.values(), ticket_id])
        if status is not None and status != current:
            await _event(db, ticket_id, now, status, actor, note)
        elif note or fields or scheduled_for is not None:
            await _event(db, ticket_id, now, current, actor, note or "แก้ไขรายละเอียด")
        if scheduled_for is not None or status == TicketStatus.CLOSED:
            await _notify_officer_change(db, ticket_id, actor, scheduled_for, status, now)
        await db.execute("COMMIT")
    except BaseException:
        await rollback(db)
        raise
    return await get_ticket(db, ticket_id)


# -- manual tickets (รับแจ้ง), acknowledgement, assignment --------------------------------


async def insert_manual(db: aiosqlite.Connection, ctx: TicketContext, *, root: str,
                        source: str, reporter_phone: str, problem: str, actor: str,
                        ticket_id: int | None = None, district: str | None = None,
                        kind: str | None = None, now: float | None = None) -> int:
    """Store a manual ticket in its own transaction, with its first history row and the
    same "ticket opened" notification as automatic tickets; returns its number.

    ``ticket_id``: the number the running daemon's engine gave it (tickets of both kinds
    share one sequence); None (no daemon): the next free number, taken in the insert's
    transaction.  ``ctx`` carries the reporter's name and position."""
    now = time.time() if now is None else now
    await db.execute("BEGIN IMMEDIATE")
    try:
        if ticket_id is None:
            ticket_id = await next_ticket_id(db)
        cur = await db.execute(
            "INSERT INTO ticket (id, incident_id, root, school, variant, served_unit, status,"
            " opened_at, down_since, reason, hypothesis, event_text, reporter_name,"
            " reporter_position, equipment, office_name, group_name, origin, report_source,"
            " reporter_phone, problem, created_by, updated_at)"
            " VALUES (?,'',?,?,?,?,'open',?,?,'','',?,?,?,?,?,?,'manual',?,?,?,?,?)"
            " ON CONFLICT (id) DO NOTHING",
            (ticket_id, root, ctx.school, ctx.variant, ctx.served_unit, now, now, problem,
             ctx.reporter_name, ctx.reporter_position,
             json.dumps([_eq(e) for e in ctx.equipment], ensure_ascii=False),
             ctx.office_name, ctx.group_name, source, reporter_phone, problem, actor, now))
        if not cur.rowcount:
            raise TicketError(f"ticket number {ticket_id} is already taken")
        await _event(db, ticket_id, now, TicketStatus.OPEN, actor,
                     received_note(source, ctx.reporter_name))
        subject = TicketSubject(ticket_id, root,
                                ctx.equipment[0].name if len(ctx.equipment) == 1 else "",
                                served_unit=ctx.served_unit, school=ctx.school,
                                district=district, kind=kind)
        await record(db, [ticket_reported(subject, now, source, problem)])
        await db.execute("COMMIT")
    except BaseException:
        await rollback(db)
        raise
    return ticket_id


async def _active_row(db: aiosqlite.Connection, ticket_id: int) -> Any:
    async with db.execute("SELECT * FROM ticket WHERE id = ?", (ticket_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        raise TicketError(f"no ticket {ticket_id}")
    if row["status"] == TicketStatus.CLOSED:
        raise TicketError(f"ticket {ticket_id} is closed")
    return row


async def acknowledge(db: aiosqlite.Connection, ticket_id: int, actor: str, note: str = "",
                      now: float | None = None) -> dict[str, Any]:
    """รับทราบ: someone has taken the ticket in hand (reminders and escalation stop).
    Acknowledging again changes nothing; a closed ticket cannot be acknowledged."""
    now = time.time() if now is None else now
    await db.execute("BEGIN IMMEDIATE")
    try:
        row = await _active_row(db, ticket_id)
        if row["acknowledged_at"] is None:
            await db.execute("UPDATE ticket SET acknowledged_at = ?, acknowledged_by = ?,"
                             " updated_at = ? WHERE id = ?", (now, actor, now, ticket_id))
            await _event(db, ticket_id, now, row["status"], actor,
                         f"รับทราบ: {note}" if note else "รับทราบ")
        await db.execute("COMMIT")
    except BaseException:
        await rollback(db)
        raise
    return await get_ticket(db, ticket_id)


async def assign(db: aiosqlite.Connection, ticket_id: int, actor: str, assignee: str | None,
                 note: str = "", now: float | None = None) -> dict[str, Any]:
    """มอบหมาย the ticket to a user (None: nobody); a closed ticket cannot be assigned."""
    now = time.time() if now is None else now
    await db.execute("BEGIN IMMEDIATE")
    try:
        row = await _active_row(db, ticket_id)
        if row["assigned_to"] != assignee:
            await db.execute("UPDATE ticket SET assigned_to = ?, updated_at = ? WHERE id = ?",
                             (assignee, now, ticket_id))
            text = f"มอบหมายให้ {assignee}" if assignee else "ยกเลิกการมอบหมาย"
            await _event(db, ticket_id, now, row["status"], actor,
                         f"{text}: {note}" if note else text)
        await db.execute("COMMIT")
    except BaseException:
        await rollback(db)
        raise
    return await get_ticket(db, ticket_id)
