"""The render stage: events as the words people read (Thai; English: ``notify.lang: en``).

One line per event, one message per group: the title names the office (and the number
of events), the body has the lines in time order and, with ``notify.base_url``, a link
to the status page; ticket lines link to the signed ticket page.  An event that cannot
be rendered (damaged data, a date no calendar holds) is found by :func:`unrenderable`
before its message is fixed, so it fails alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monitord.domain.events import NotificationEvent
from monitord.domain.incidents import (
    condition_of,
    device_hypothesis,
    group_label,
    is_group_key,
    root_device,
    upstream_hypothesis,
)
from monitord.domain.links import ticket_url
from monitord.domain.tickets import SOURCE_EN, SOURCE_TH, root_school
from monitord.notify.channel import NotifyPolicy
from monitord.thaidate import format_duration, format_timestamp, from_timestamp

LINES: dict[str, dict[str, str]] = {
    "th": {
        "ticket_opened": "🔴 เปิดใบแจ้งซ่อม #{tid} {subject} ขัดข้องตั้งแต่ {down_since}"
                         "{affected} — {hypothesis}{link}",
        "ticket_opened_upstream": "🔴 เปิดใบแจ้งซ่อม #{tid} เหตุขัดข้องต้นทางตั้งแต่ "
                                  "{down_since} — {hypothesis}{link}",
        "ticket_reported": "🔴 เปิดใบแจ้งซ่อม #{tid} {subject} รับแจ้งทาง{source}: "
                           "{problem}{link}",
        "ticket_condition": "🟠 เปิดใบแจ้งซ่อม #{tid} {subject} ยังใช้งานได้ แต่ต้องแก้ไข "
                            "(พบตั้งแต่ {down_since}): {reason}{link}",
        "ticket_repaired": "✅ ซ่อมเสร็จ/กลับมาใช้งานได้ #{tid} {subject}{link}",
        "ticket_condition_cleared": "✅ แก้ไขแล้ว #{tid} {subject}: ไม่พบปัญหา {condition} "
                                    "อีก{link}",
        "ticket_reopened": "🔁 ขัดข้องซ้ำ เปิดใบแจ้งซ่อมเดิม #{tid} {subject}{link}",
        "ticket_scheduled": "📅 นัดหมายซ่อม #{tid} {where}: {scheduled_for} โดย {actor}{link}",
        "ticket_closed": "☑️ ปิดใบแจ้งซ่อม #{tid} {where}{link}",
        "ticket_reminder": "⏰ ใบแจ้งซ่อม #{tid} {subject} ยังไม่ได้แก้ไข "
                           "(เปิดมาแล้ว {age}){link}",
        "ticket_escalated": "⏫ ใบแจ้งซ่อม #{tid} {subject} เปิดค้างเกิน {age} — "
                            "ขอให้ติดตาม{link}",
        "broker_unreachable": "⚠️ monitord ติดต่อ MQTT broker ไม่ได้: สถานะอุปกรณ์ที่รายงานผ่าน "
                              "MQTT ไม่ทราบ ({reason})",
        "broker_restored": "✅ monitord ติดต่อ MQTT broker ได้อีกครั้ง (ขาดการติดต่อ {age})",
        "storage_failing": "⚠️ monitord บันทึกลงฐานข้อมูลไม่ได้ ({reason}): ยังเฝ้าระวังต่อ "
                           "การเปลี่ยนแปลงเก็บไว้ในหน่วยความจำรอบันทึก — โปรดตรวจพื้นที่ดิสก์",
        "storage_restored": "✅ monitord บันทึกลงฐานข้อมูลได้อีกครั้ง (ขัดข้อง {age}) "
                            "การเปลี่ยนแปลงที่ค้างไว้บันทึกแล้ว",
        "upstream_started": "⚠️ เหตุขัดข้องต้นทาง: {hypothesis}",
        "upstream_ended": "✅ เหตุขัดข้องต้นทาง {where} สิ้นสุดแล้ว",
        "affected": " กระทบอุปกรณ์อื่น {n} รายการ",
        "affected_one": " กระทบอุปกรณ์อื่น 1 รายการ",
        "summary": "📋 สรุปประจำวัน: โรงเรียนออฟไลน์ {offline} แห่ง, ใบแจ้งซ่อมที่ยังเปิด {open} ใบ",
        "summary_offline": "  • ออฟไลน์: {name}",
        "summary_ticket": "  • #{id} {unit} (เปิดเมื่อ {when})",
        "status_page": "หน้าสถานะ: {url}",
        "events": "{n} เหตุการณ์",
    },
    "en": {
        "ticket_opened": "🔴 Repair ticket #{tid} opened, {subject} down since "
                         "{down_since}{affected} — {hypothesis}{link}",
        "ticket_opened_upstream": "🔴 Repair ticket #{tid} opened, upstream outage since "
                                  "{down_since} — {hypothesis}{link}",
        "ticket_reported": "🔴 Repair ticket #{tid} opened, {subject} reported by "
                           "{source}: {problem}{link}",
        "ticket_condition": "🟠 Repair ticket #{tid} opened, {subject} works but needs "
                            "fixing (seen since {down_since}): {reason}{link}",
        "ticket_repaired": "✅ Repaired / back up #{tid}, {subject}{link}",
        "ticket_condition_cleared": "✅ Fixed #{tid}, {subject}: {condition} is no longer "
                                    "seen{link}",
        "ticket_reopened": "🔁 Failed again, ticket #{tid} reopened, {subject}{link}",
        "ticket_scheduled": "📅 Repair #{tid} scheduled, {where}: {scheduled_for} by "
                            "{actor}{link}",
        "ticket_closed": "☑️ Ticket #{tid} closed, {where}{link}",
        "ticket_reminder": "⏰ Ticket #{tid}, {subject} still not fixed (open for "
                           "{age}){link}",
        "ticket_escalated": "⏫ Ticket #{tid}, {subject} open for more than {age} — "
                            "please follow up{link}",
        "broker_unreachable": "⚠️ monitord cannot reach the MQTT broker: devices reporting "
                              "over MQTT are in an unknown state ({reason})",
        "broker_restored": "✅ monitord reaches the MQTT broker again (it was unreachable for "
                           "{age})",
        "storage_failing": "⚠️ monitord cannot write its database ({reason}): monitoring goes "
                           "on, changes are kept in memory until they can be written — "
                           "check the disk",
        "storage_restored": "✅ monitord writes its database again (it failed for {age}); the "
                            "changes kept meanwhile are saved",
        "upstream_started": "⚠️ Upstream outage: {hypothesis}",
        "upstream_ended": "✅ Upstream outage of {where} is over",
        "affected": ", {n} other devices affected",
        "affected_one": ", 1 other device affected",
        "summary": "📋 Daily summary: {offline} schools offline, {open} tickets open",
        "summary_offline": "  • offline: {name}",
        "summary_ticket": "  • #{id} {unit} (opened {when})",
        "status_page": "Status page: {url}",
        "events": "{n} events",
    },
}


def _when_lang(ts: Any, lang: str) -> str:
    """A stored time in the message's language; "?" for one no calendar can hold."""
    if not ts:
        return "-"
    if lang == "en":
        moment = from_timestamp(float(ts))
        return "?" if moment is None else moment.strftime("%Y-%m-%d %H:%M")
    return format_timestamp(float(ts), abbreviated=True)


def _age(seconds: float, lang: str) -> str:
    if lang == "th":
        return format_duration(seconds)
    hours, minutes = divmod(int(seconds) // 60, 60)
    days, hours = divmod(hours, 24)
    return " ".join(p for p in (f"{days} d" if days else "", f"{hours} h" if hours else "",
                                f"{minutes} min" if minutes or not (days or hours) else "")
                    if p)


def render_line(event: NotificationEvent, policy: NotifyPolicy) -> str:
    """One event as one line (Thai, or English with ``notify.lang: en``)."""
    lang = "en" if policy.lang == "en" else "th"
    t = LINES[lang]
    d = event.data
    if event.kind == "daily_summary":
        offline = d.get("offline_schools") or []
        tickets = d.get("open_tickets") or []
        lines = [t["summary"].format(offline=len(offline), open=len(tickets))]
        lines += [t["summary_offline"].format(name=name) for name in offline[:50]]
        lines += [t["summary_ticket"].format(id=x["id"], unit=x["served_unit"],
                                             when=_when_lang(x["opened_at"], lang))
                  for x in tickets[:50]]
        return "\n".join(lines)
    template = t.get(event.kind)
    if template is None:
        return f"monitord: {d.get('message', event.kind)}"
    # An upstream outage (root "isp:NT") is named in words ("ผู้ให้บริการ NT"), never by
    # its internal key; a device ticket by its unit and device.
    root = str(d.get("root") or "")
    group = str(d.get("group") or (root if is_group_key(root) else ""))
    if group:
        where, what = group_label(group, lang), ""
        if event.kind == "ticket_opened":
            template = t["ticket_opened_upstream"]
    elif event.kind == "ticket_opened" and d.get("origin") == "manual":
        # รับแจ้ง: a person's report; a whole school's has no device name
        where = str(d.get("served_unit") or d.get("school") or "")
        what = str(d.get("root_name") or "")
        template = t["ticket_reported"]
    else:
        where = str(d.get("served_unit") or d.get("school") or "")
        # a manual ticket for a whole school ("school:<SMIS>") has no device to name
        what = str(d.get("root_name") or ("" if root_school(root) else root_device(root)))
        if event.kind == "ticket_opened" and d.get("condition"):
            # a device that works with a standing problem: the probe's reason says what
            # to do (renew the certificate)
            template = t["ticket_condition"]
        elif event.kind == "ticket_repaired" and (cond := condition_of(root)) is not None:
            template = t["ticket_condition_cleared"]
            d = {**d, "condition": cond[1]}
    subject = f"{where}: {what}" if where and what else where or what
    n = int(d.get("affected") or 0)
    affected = "" if not n else t["affected_one"] if n == 1 else t["affected"].format(n=n)
    tid = d.get("ticket_id")
    link = f" {ticket_url(policy.base_url, tid, policy.links)}" if policy.base_url and tid else ""
    return template.format(
        tid=tid, where=where, subject=subject, affected=affected,
        down_since=_when_lang(d.get("down_since"), lang),
        hypothesis=_hypothesis(d, group, lang), link=link,
        scheduled_for=_when_lang(d.get("scheduled_for"), lang), actor=d.get("actor", ""),
        age=_age(float(d.get("age", 0)), lang),
        reason=d.get("reason") or d.get("condition") or "", condition=d.get("condition", ""),
        source=_source(str(d.get("source") or ""), lang), problem=d.get("problem", ""))


def _source(source: str, lang: str) -> str:
    labels = SOURCE_EN if lang == "en" else SOURCE_TH
    return labels.get(source, source)


def _hypothesis(d: Mapping[str, Any], group: str, lang: str) -> str:
    """The likely cause in the message's language, from the facts the event carries;
    events recorded before they carried facts keep their stored (Thai) text."""
    if group and "schools" in d and "total" in d:
        return upstream_hypothesis(group, int(d["schools"]), int(d["total"]), lang)
    if "gateway" in d:
        return device_hypothesis(bool(d["gateway"]), str(d.get("isp") or ""), lang)
    return str(d.get("hypothesis", ""))


def render_message(events: Sequence[NotificationEvent], policy: NotifyPolicy,
                   office: str) -> tuple[str, str]:
    """(title, body) for a group of events sent to one channel as one message."""
    t = LINES["en" if policy.lang == "en" else "th"]
    title = f"monitord {office}"
    if len(events) > 1:
        title += ": " + t["events"].format(n=len(events))
    body = "\n".join(render_line(e, policy) for e in sorted(events, key=lambda e: e.ts))
    if policy.base_url and any(e.kind != "test" for e in events):
        body += "\n" + t["status_page"].format(url=f"{policy.base_url.rstrip('/')}/status")
    return title, body


def unrenderable(event: NotificationEvent, policy: NotifyPolicy) -> str:
    """Why ``event`` cannot be rendered ("" when it can): the delivery's ``last_error``."""
    try:
        render_line(event, policy)
    except Exception as exc:
        return f"cannot render: {type(exc).__name__}: {exc}"[:200]
    return ""
