"""Printable reports (รายงาน) that monitord produces for the office's paperwork.

The repair report renderer lives in :mod:`monitord.reports.repair`; it only lays out
data it is given, so the ticket engine and the CLI decide what goes into a report.
"""

from monitord.reports.repair import (
    RepairEquipment,
    RepairReport,
    Signatory,
    render_repair_html,
    render_repair_pdf,
)

__all__ = [
    "RepairEquipment",
    "RepairReport",
    "Signatory",
    "render_repair_html",
    "render_repair_pdf",
]
