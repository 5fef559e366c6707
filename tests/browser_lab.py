"""A real browser for the page tests: Debian's chromium driven by Playwright."""

from __future__ import annotations

#: flags for a headless chromium in a container, with nothing phoning home
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
