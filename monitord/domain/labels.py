"""Words for states and device kinds (Thai and English), shared by the pages and the
reports."""

from __future__ import annotations

from monitord.domain.state import State
from monitord.domain.tickets import STATUS_TH, TicketStatus

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
           "service": "ระบบบริการ", "other": "อื่นๆ"},
    "en": {"router": "Router", "switch": "Switch", "access_point": "Wi-Fi access point",
           "server": "Server", "dltv_receiver": "Satellite receiver", "tv": "TV",
           "projector": "Projector", "ups": "UPS", "service": "Service",
           "other": "Other"},
}
#: a ticket's status in words (Thai: the repair form's own terms)
TICKET_STATUS_TEXT: dict[str, dict[str, str]] = {
    "th": STATUS_TH,
    "en": {TicketStatus.OPEN: "opened", TicketStatus.SCHEDULED: "scheduled",
           TicketStatus.IN_REPAIR: "in repair", TicketStatus.REPAIRED: "repaired",
           TicketStatus.CLOSED: "closed"},
}
