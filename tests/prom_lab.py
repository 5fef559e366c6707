"""A real Prometheus server for tests, and the PromQL found in dashboards and rule files."""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from monitord.demo import processes
from monitord.demo.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_CONFIG = ROOT / "config" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "config" / "prometheus" / "alerts.yml"
ALERTS_TEST = ROOT / "config" / "prometheus" / "alerts_test.yml"
GRAFANA = ROOT / "grafana"
DATASOURCE_UID = "monitord-prometheus"

# Grafana's built-in panel types (Grafana 10/11); "row" is a layout element.
PANEL_TYPES = frozenset({
    "alertlist", "annolist", "barchart", "bargauge", "candlestick", "canvas", "dashlist",
    "datagrid", "flamegraph", "gauge", "geomap", "heatmap", "histogram", "logs", "news",
    "nodeGraph", "piechart", "stat", "state-timeline", "status-history", "table", "text",
    "timeseries", "traces", "trend", "xychart", "row",
})


# ------------------------------------------------------------------------ Prometheus server

class PromError(Exception):
    pass


class PrometheusServer:
    """``prometheus`` (Debian package) on loopback, scraping one monitord target.

    The configuration is the shipped config/prometheus/prometheus.yml with the intervals
    shortened, the monitord target pointed at the test daemon and the rules loaded from
    config/prometheus/alerts.yml.
    """

    def __init__(self, workdir: Path, monitord_port: int, interval: str = "1s") -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise AssertionError("prometheus is not installed: run scripts/setup.sh --dev "
                                 "(Debian package `prometheus`)")
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
        cfg["global"]["scrape_interval"] = interval
        cfg["global"]["evaluation_interval"] = interval
        cfg["rule_files"] = [str(ALERTS)]
        jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
        monitord = jobs["monitord"]
        monitord["scrape_interval"] = interval
        monitord["scrape_timeout"] = interval
        monitord["static_configs"] = [{"targets": [f"127.0.0.1:{monitord_port}"]}]
        cfg["scrape_configs"] = [monitord]
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.proc = processes.spawn(
            [binary, f"--config.file={self.config_path}",
             f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            output=self._log, cwd=workdir,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)

        processes.wait_until(ready, timeout, "prometheus /-/ready", interval=0.1,
                             proc=self.proc, log=self.log_path)

    def api(self, path: str, **params: str) -> Any:
        """GET/POST the HTTP API; return ``data`` or raise PromError with Prometheus' error."""
        body = urllib.parse.urlencode(params).encode() if params else None
        req = urllib.request.Request(self.url + "/api/v1/" + path, data=body)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                doc = json.load(resp)
        except urllib.error.HTTPError as exc:
            doc = json.load(exc)
        if doc.get("status") != "success":
            raise PromError(f"{doc.get('errorType')}: {doc.get('error')}")
        return doc["data"]

    def query(self, expr: str) -> list[Any]:
        """Instant query; the result as a list (a scalar/string result is one element)."""
        data = self.api("query", query=expr)
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            return [result]
        return list(result)

    def stop(self) -> None:
        processes.stop(self.proc, timeout=20)
        self._log.close()


# ------------------------------------------------------------------------ dashboards

def dashboard_files() -> list[Path]:
    return sorted(p for p in GRAFANA.rglob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: not a JSON object"
    return data


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for p in panels:
        yield p
        yield from iter_panels(p.get("panels", []))


@dataclass(frozen=True)
class Expr:
    where: str          # "<file> › <panel title> [refId]" or "<file> › rule <name>"
    expr: str           # PromQL with Grafana variables still in place
    kind: str = "panel"  # panel | variable | alert


def dashboard_exprs(path: Path) -> list[Expr]:
    dash = load_dashboard(path)
    out: list[Expr] = []
    for p in iter_panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append(Expr(f"{path.name} › {p.get('title')} [{t.get('refId')}]",
                                t["expr"]))
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        out.append(Expr(f"{path.name} › variable ${var['name']}", str(q), "variable"))
    return out


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*([a-zA-Z_]\w*)\s*\)\s*$")
_QUERY_RESULT = re.compile(r"^\s*query_result\(\s*(.+)\s*\)\s*$", re.S)


def variable_promql(query: str) -> tuple[str, str | None]:
    """A Grafana Prometheus variable query as (PromQL, label whose values are offered)."""
    if m := _LABEL_VALUES.match(query):
        return m.group(1), m.group(2)
    if m := _QUERY_RESULT.match(query):
        return m.group(1), None
    raise AssertionError(f"unsupported variable query {query!r}")


def dashboard_variables(path: Path) -> dict[str, dict[str, Any]]:
    dash = load_dashboard(path)
    return {v["name"]: v for v in dash.get("templating", {}).get("list", [])}


GRAFANA_BUILTINS = {
    "__rate_interval": "30s", "__interval": "15s", "__range": "5m",
    "__interval_ms": "15000", "__range_s": "300",
}
_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana variables ($x, ${x}, ${x:fmt}, [[x]]) with concrete values."""
    merged = {**GRAFANA_BUILTINS, **values}

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in merged:
            raise AssertionError(f"no value for Grafana variable ${name} in {expr!r}")
        return merged[name]

    return _VAR.sub(repl, expr)


# ------------------------------------------------------------------------ rules

def rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"]]


_SELECTOR = re.compile(
    r'(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')'
    r'|(?P<sel>(?<![\w:])(?:monitord_[a-zA-Z0-9_:]*|up)(?![\w:(])'
    r'(?:\s*\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})?)'
)


def selectors(expr: str) -> list[str]:
    """The instant-vector selectors of monitord's metrics (and ``up``) in a PromQL expression."""
    out: list[str] = []
    for m in _SELECTOR.finditer(expr):
        if m.group("sel") and m.group("sel") not in out:
            out.append(m.group("sel"))
    return out
