"""The benchmarks' keep-alive HTTP/1.1 client for the reference exporters' scrape
endpoints (snmp_exporter's /snmp, blackbox_exporter's /probe): just enough HTTP to read
one response after another on a connection, including Go's chunked bodies."""

from __future__ import annotations

import asyncio


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    """An HTTP/1.1 chunked body (Go sends large responses this way)."""
    parts = []
    for _ in range(100_000):
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            break
        parts.append(await reader.readexactly(size))
        await reader.readline()
    return b"".join(parts)


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
              ) -> tuple[bytes, bytes]:
    """``GET path`` on a kept-alive connection: (status line, body)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status = await reader.readline()
    length, chunked = 0, False
    for _ in range(100):
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        low = line.lower()
        if low.startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        elif low.startswith(b"transfer-encoding:") and b"chunked" in low:
            chunked = True
    body = await (read_chunked(reader) if chunked else reader.readexactly(length))
    return status, body
