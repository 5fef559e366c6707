"""Console users for the demo: one per role, so the officers' console can be tried at
once (``/console``).  A fresh demo database gets them with one random password printed
in the banner; a resumed database (``--db``) keeps the users it has."""

from __future__ import annotations

import secrets
from pathlib import Path

from monitord.domain.access import Role
from monitord.domain.passwords import hash_password
from monitord.storage import Storage

#: (name, role, display name) — the school user gets the lab's first school
DEMO_USERS: tuple[tuple[str, Role, str], ...] = (
    ("admin", Role.ADMIN, "ผู้ดูแลระบบ (สาธิต)"),
    ("officer", Role.OFFICER, "เจ้าหน้าที่ ICT (สาธิต)"),
    ("tech", Role.TECHNICIAN, "ช่างเทคนิค (สาธิต)"),
    ("school", Role.SCHOOL, "ครู ICT โรงเรียน (สาธิต)"),
    ("director", Role.VIEWER, "ผู้อำนวยการกลุ่ม (สาธิต)"),
)


async def ensure_demo_users(db: Path, first_school: str) -> str:
    """Create the demo's users in an empty user table; returns the banner line."""
    store = await Storage.open(db)
    try:
        if await store.list_users():
            return ("demo: console /console — the resumed database's users sign in as "
                    "before")
        password = secrets.token_urlsafe(9)
        digest = hash_password(password)
        for name, role, label in DEMO_USERS:
            await store.add_user(name, role, digest, display_name=label,
                                 schools=(first_school,) if role is Role.SCHOOL else ())
    finally:
        await store.close()
    names = ", ".join(name for name, _, _ in DEMO_USERS)
    return (f"demo: officers' console {{base}}/console — sign in as {names} "
            f"(school {first_school}) with the password {password} (this run only)")
