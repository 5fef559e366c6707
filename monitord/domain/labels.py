"""Words for states and device kinds (Thai and English), shared by the pages and the
reports."""

from __future__ import annotations

from monitord.domain.state import State

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
