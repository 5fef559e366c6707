"""The inventory pages for admins (:data:`~monitord.domain.access.Perm.INVENTORY`).

- ``GET /console/import``: the upload form (kind, CSV file, "skip bad rows");
- ``POST /console/import``: a preview (a dry run): the encoding, the rows, how many
  schools or devices would be added / changed / stay, every bad row (row, column,
  message) and an "apply" button.  The uploaded bytes stay on the server for
  :data:`UPLOAD_TTL` seconds under a random id bound to the user, so applying needs no
  second upload;
- ``POST /console/import/apply``: :meth:`~monitord.http.ports.Commands.import_inventory`
  (the daemon reloads at once) → the result;
- ``GET /console/export/{kind}.csv``: the schools or devices as the CSV the import reads.
"""

from __future__ import annotations

import importlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from monitord.config.inventory import KINDS, MAX_CSV_BYTES, ImportReport
from monitord.domain.access import Perm
from monitord.http.console.guard import csrf_of, lang_of, require
from monitord.http.ports import CommandError, Commands, Invalid, NotFound, Unavailable, View

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
#: how long an uploaded file waits for "apply" (seconds)
UPLOAD_TTL = 15 * 60
#: uploads kept at most (the oldest go first)
MAX_UPLOADS = 20
MAX_LISTED = 200

LABELS: dict[str, dict[str, str]] = {
    "th": {
        "title": "นำเข้าข้อมูลโรงเรียนและอุปกรณ์", "kind": "ข้อมูล",
        "schools": "โรงเรียน", "devices": "อุปกรณ์", "file": "ไฟล์ CSV",
        "skip_bad": "ข้ามแถวที่มีปัญหา (นำเข้าเฉพาะแถวที่ถูกต้อง)",
        "preview": "ตรวจสอบก่อนนำเข้า", "apply": "นำเข้า",
        "export": "ส่งออกเป็น CSV", "encoding": "การเข้ารหัส", "rows": "จำนวนแถว",
        "added": "เพิ่มใหม่", "changed": "แก้ไข", "unchanged": "ไม่เปลี่ยนแปลง",
        "problems": "แถวที่มีปัญหา", "row": "แถว", "column": "คอลัมน์",
        "message": "ปัญหา", "warnings": "ข้อสังเกต", "skipped": "แถวที่ข้าม",
        "config_problems": "ผลลัพธ์จะทำให้ไฟล์ตั้งค่าใช้งานไม่ได้ จึงไม่บันทึก",
        "blocked": "ยังนำเข้าไม่ได้: แก้ไขแถวที่มีปัญหาแล้วอัปโหลดใหม่ "
                   "หรือเลือก \"ข้ามแถวที่มีปัญหา\"",
        "nothing": "ไม่มีอะไรเปลี่ยนแปลง", "applied": "นำเข้าเรียบร้อย ระบบโหลดข้อมูลใหม่แล้ว",
        "inventory": "ไฟล์ข้อมูล", "again": "นำเข้าไฟล์อื่น",
        "help": "หัวคอลัมน์ภาษาไทยหรืออังกฤษ เช่น รหัส SMIS, ชื่อโรงเรียน, อำเภอ, ตำบล, "
                "ผู้ให้บริการอินเทอร์เน็ต, ละติจูด, ลองจิจูด, percode หรือ school, id, kind, "
                "name, address, parent, brand_model, serial; UTF-8 หรือ Windows-874",
        "expired": "ไฟล์ที่อัปโหลดหมดอายุแล้ว (เก็บไว้ 15 นาที) โปรดอัปโหลดใหม่",
        "no_file": "โปรดเลือกไฟล์ CSV", "too_big": "ไฟล์ใหญ่เกินไป",
    },
    "en": {
        "title": "Import schools and devices", "kind": "Data", "schools": "Schools",
        "devices": "Devices", "file": "CSV file",
        "skip_bad": "Skip bad rows (import only the good ones)",
        "preview": "Check before importing", "apply": "Import",
        "export": "Export as CSV", "encoding": "Encoding", "rows": "Rows",
        "added": "New", "changed": "Changed", "unchanged": "Unchanged",
        "problems": "Bad rows", "row": "Row", "column": "Column", "message": "Problem",
        "warnings": "Warnings", "skipped": "Skipped rows",
        "config_problems": "The result would make the config invalid: nothing written",
        "blocked": "Cannot import yet: fix the bad rows and upload again, or tick "
                   "\"Skip bad rows\"",
        "nothing": "Nothing changes", "applied": "Imported; the daemon reloaded it",
        "inventory": "Inventory file", "again": "Import another file",
        "help": "Thai or English headers, e.g. smis, name, district, subdistrict, isp, lat, "
                "lon, percode, or school, id, kind, name, address, parent, brand_model, "
                "serial; UTF-8 or Windows-874",
        "expired": "The upload has expired (kept 15 minutes): please upload again",
        "no_file": "Choose a CSV file", "too_big": "The file is too large",
    },
}


@dataclass
class Upload:
    user: str
    kind: str
    data: bytes
    filename: str
    skip_bad: bool
    expires: float


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              autoescape=jinja2.select_autoescape(["html"]))


_ENV = _env()


def routes(view: View, commands: Commands) -> list[BaseRoute]:
    uploads: dict[str, Upload] = {}

    def prune(now: float) -> None:
        for key in [k for k, u in uploads.items() if u.expires <= now]:
            del uploads[key]
        while len(uploads) >= MAX_UPLOADS:
            del uploads[min(uploads, key=lambda k: uploads[k].expires)]

    def page(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
        user = require(request, Perm.INVENTORY)
        lang = lang_of(request)
        cfg = view.config
        ctx: dict[str, Any] = {"office": cfg.office.name if cfg is not None else "monitord"}
        ctx.update(_layout_context(request, view, user))
        ctx.update(lang=lang, L={**ctx.get("L", {}), **LABELS[lang]}, user=user,
                   csrf=csrf_of(request), kinds=KINDS, max_listed=MAX_LISTED, **values)
        body = _ENV.get_template("console/import.html").render(**ctx)
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    def error(request: Request, exc: CommandError) -> HTMLResponse:
        status = (404 if isinstance(exc, NotFound) else 503 if isinstance(exc, Unavailable)
                  else 422)
        details = exc.problems if isinstance(exc, Invalid) else []
        return page(request, status, mode="form", error=str(exc),
                    error_details=[p[1] for p in details])

    async def form(request: Request) -> Response:
        require(request, Perm.INVENTORY)
        return page(request, mode="form", kind=request.query_params.get("kind", "schools"))

    async def preview(request: Request) -> Response:
        user = require(request, Perm.INVENTORY)
        lang = lang_of(request)
        async with request.form(max_files=1, max_fields=10) as data:
            kind = str(data.get("kind", ""))
            skip_bad = data.get("skip_bad") not in (None, "", "0")
            upload = data.get("file")
            content = b""
            filename = ""
            if isinstance(upload, UploadFile):
                filename = Path(upload.filename or "upload.csv").name[:200]
                content = await upload.read(MAX_CSV_BYTES + 1)
        if kind not in KINDS:
            kind = "schools"
        if not content:
            return page(request, 422, mode="form", kind=kind, error=LABELS[lang]["no_file"])
        if len(content) > MAX_CSV_BYTES:
            return page(request, 413, mode="form", kind=kind, error=LABELS[lang]["too_big"])
        try:
            report = await commands.import_inventory(kind, content, filename, user.name,
                                                     dry_run=True, skip_bad=skip_bad)
        except CommandError as exc:
            return error(request, exc)
        now = time.time()
        prune(now)
        upload_id = ""
        if _can_apply(report):
            upload_id = secrets.token_urlsafe(24)
            uploads[upload_id] = Upload(user.name, kind, content, filename, skip_bad,
                                        now + UPLOAD_TTL)
        return page(request, mode="preview", kind=kind, report=report, upload_id=upload_id,
                    filename=filename, skip_bad=skip_bad)

    async def apply(request: Request) -> Response:
        user = require(request, Perm.INVENTORY)
        lang = lang_of(request)
        async with request.form(max_files=0, max_fields=10) as data:
            upload_id = str(data.get("upload", ""))
        prune(time.time())
        upload = uploads.get(upload_id)
        if upload is None or upload.user != user.name:
            return page(request, 410, mode="form", error=LABELS[lang]["expired"])
        try:
            report = await commands.import_inventory(
                upload.kind, upload.data, upload.filename, user.name, dry_run=False,
                skip_bad=upload.skip_bad)
        except CommandError as exc:
            return error(request, exc)
        uploads.pop(upload_id, None)
        return page(request, mode="result", kind=upload.kind, report=report,
                    filename=upload.filename)

    async def export(request: Request) -> Response:
        require(request, Perm.INVENTORY)
        kind = request.path_params["kind"]
        if kind not in KINDS:
            return page(request, 404, mode="form", error=f"no such export: {kind[:40]}")
        try:
            body = await commands.export_inventory(kind)
        except CommandError as exc:
            return error(request, exc)
        return Response(body, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{kind}.csv"',
            "Cache-Control": "no-store"})

    return [
        Route("/console/import", form, methods=["GET"]),
        Route("/console/import", preview, methods=["POST"]),
        Route("/console/import/apply", apply, methods=["POST"]),
        Route("/console/export/{kind}.csv", export, methods=["GET"]),
    ]


def _layout_context(request: Request, view: View, user: Any) -> dict[str, Any]:
    """What ``console/_layout.html`` needs (navigation, role, language switch), from the
    console pages' shared helpers (``monitord.http.console.render.context``) when they
    are there; the page's own labels are laid over the layout's."""
    try:
        module = importlib.import_module("monitord.http.console.render")
    except ImportError:
        return {}
    make = getattr(module, "context", None)
    return dict(make(request, view, user)) if callable(make) else {}


def _can_apply(report: ImportReport) -> bool:
    return report.ok and bool(report.added or report.changed)
