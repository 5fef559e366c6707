"""Typed per-device PJLink settings (``Target.params`` of the ``pjlink`` probe).

Config merges ``defaults.pjlink`` → ``kinds.<kind>.pjlink`` → a device's ``pjlink`` key
by key and validates the result with :class:`PjlinkParams` (docs/pjlink.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from monitord.values import SecretRef, code_string


class PjlinkParams(BaseModel):
    """Per-projector settings.

    ``password`` should be a :class:`SecretRef` (``{env: NAME}`` / ``{file: PATH}``); a
    literal string is accepted for labs and kept as a :class:`SecretStr` so it never shows
    in ``repr``.  ``class`` (``auto``: ask the projector with ``%1CLSS ?``) decides
    whether Class 2 commands (serial number) are sent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    port: int = Field(4352, ge=1, le=65535)
    password: SecretRef | SecretStr | None = None
    timeout: float | None = Field(None, gt=0, le=60, description="seconds per answer "
                                  "(default: engines.pjlink.timeout)")
    pjlink_class: Annotated[Literal["auto", "1", "2"], BeforeValidator(code_string)] = Field(
        "auto", alias="class", description="auto: ask the projector (%1CLSS ?)")
    lamp_life_hours: int | None = Field(None, ge=1, le=100_000, description="rated lamp "
                                        "life; with lamp_warn_share: hours that degrade")
    lamp_warn_share: float = Field(0.9, gt=0, le=1, description="share of the rated life "
                                   "past which the projector is DEGRADED")
