"""The daemon's life cycle: start, signals, reload, stop.

What it runs is built elsewhere: :mod:`monitord.app.compile` turns the config into jobs,
specs, topology and channels; :mod:`monitord.app.pipeline` carries observations to the
database (probes → tracker → engine → writer); :mod:`monitord.app.readmodel` is what the
pages and metrics read; :func:`monitord.http.server.build_app` assembles the routes.

Signals: SIGTERM/SIGINT stop gracefully (running rounds finish or are cancelled within
seconds, pending state changes are flushed); SIGHUP reloads the config — an invalid new
file is rejected with every problem logged and the running config stays in force.  The
same reload happens when the config or a file it includes (``include:``, the inventory
``monitord import`` writes) changes: their mtimes and sizes are checked every
``CONFIG_WATCH_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import signal
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

from monitord import __version__
from monitord.app.commands import AppCommands
from monitord.app.compile import (
    Prepared,
    build_channels,
    build_notify_policy,
    make_probers,
    mqtt_devices,
    mqtt_settings,
    prepare,
    resolve_db_path,
    trap_sources,
)
from monitord.app.looplag import LoopLagMonitor
from monitord.app.pipeline import REASON_LIMIT, Pipeline, Saved
from monitord.app.readmodel import ReadModel, Runtime
from monitord.app.writer import StateWriter
from monitord.config import Config, ConfigError, Problem, load_config, parse_listen
from monitord.config.loader import included_files
from monitord.domain.links import LinkSecretError, LinkSigner, load_secret
from monitord.http.server import HttpServer, bind, default_concurrency, raise_open_files_limit
from monitord.http.site import build_app, close_site
from monitord.notify import Deliverer
from monitord.probes.base import ProbeSetupError
from monitord.probes.mqtt import MqttSource
from monitord.probes.scheduler import Scheduler
from monitord.probes.snmp.traps import TrapEvent, TrapReceiver, TrapSettings
from monitord.storage import Storage, error_reason, error_text
from monitord.values import one_line

__all__ = ["Daemon", "DaemonOptions", "StateWriter", "resolve_db_path"]

log = logging.getLogger("monitord")

PRUNE_EVERY_SECONDS = 3600.0
#: how often the config file and the files it includes are checked for changes
CONFIG_WATCH_SECONDS = 3.0
#: what to do when the database cannot be opened at start, by error reason
OPEN_HINTS = {
    "corrupt": " (damaged or not a database: see `monitord db check`; restore a copy made "
               "with `monitord db backup`)",
    "read_only": " (the database, its directory and file system must be writable by "
                 "monitord)",
    "cannot_open": " (the database's directory must exist and be writable by monitord)",
    "disk_full": " (the disk is full: free space, then start again)",
}


@dataclass
class DaemonOptions:
    config_path: Path
    db_path: Path | None = None
    listen: str | None = None
    extra_banner: list[str] = field(default_factory=list)
    notify_urls: list[str] = field(default_factory=list)


async def open_database(cfg: Config, db_path: Path
                        ) -> tuple[Storage, Storage, LinkSigner, Saved]:
    """Both database connections (the state writer's and the outbox worker's: their
    transactions must not interleave on one connection), the saved state and the link
    signer; closes what it opened when something fails."""
    stores: list[Storage] = []
    try:
        stores.append(await Storage.open(db_path))
        stores.append(await Storage.open(db_path))
        saved = await Pipeline.load_saved(stores[0])
        links = LinkSigner(await asyncio.to_thread(
            load_secret, cfg.http.link_secret, db_path.parent), cfg.http.link_ttl)
    except BaseException:
        for store in stores:
            with contextlib.suppress(Exception):
                await store.close()
        raise
    return stores[0], stores[1], links, saved


def log_allocations() -> None:
    """SIGUSR2 with ``PYTHONTRACEMALLOC=10`` in the environment (Python traces from the
    start; slows the daemon): the 25 places holding the most memory, to the log."""
    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.statistics("traceback")
    log.warning("memory: %.1f MB traced in %d places; the largest:",
                sum(st.size for st in stats) / 1e6, len(stats))
    for st in stats[:25]:
        frames = " < ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}"
                            for f in st.traceback[:6])
        log.warning("  %8.1f MB %9d blocks  %s", st.size / 1e6, st.count, frames)


def settle_heap(full: bool = True) -> None:
    """After start and after a reload: collect, then keep what is alive now (the config,
    the device tables: ~500,000 objects at 20,000 devices) out of the garbage collector's
    full passes, which otherwise walk all of it every few minutes and hold the event loop
    for 0.3–0.5 s each time (as Instagram's ``gc.freeze()`` recipe).  After a reload only
    the young generations are collected (a full pass would hold the loop itself): the
    config it replaced is freed by reference counting (it holds no cycles)."""
    gc.collect() if full else gc.collect(1)
    gc.freeze()
    _trim()


def _trim() -> None:
    """Hand the heap's free pages back to the system (glibc keeps them after the
    config's parse: tens of MB at 20,000 devices); elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def file_signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


async def _warn_without_admin(storage: Storage, db_path: Path) -> None:
    """First start (or every admin disabled): say how to create one, once."""
    try:
        if await storage.has_enabled_admin():
            return
    except Exception as exc:  # the daemon monitors anyway
        log.warning("cannot read the console's users: %s", error_text(exc))
        return
    log.warning("no enabled admin user for the console (/console): create one with "
                "`monitord users add NAME --role admin --db %s`", db_path)


class Daemon:
    version = __version__

    def __init__(self, options: DaemonOptions) -> None:
        self.options = options
        self.pipeline = Pipeline()
        self.runtime = Runtime(stop_event=self.pipeline.stop_event, loop_lag=LoopLagMonitor())
        self.view = ReadModel(self.pipeline, self.runtime)
        #: officers' changes from the API (the same commands as the CLI's)
        self.commands = AppCommands.for_daemon(
            lambda: self.pipeline.storage, lambda: self.pipeline.config,
            self.pipeline.maintenance_changed,
            allocate_ticket=self.pipeline.allocate_ticket,
            release_ticket=self.pipeline.release_ticket,
            config_path=options.config_path, inventory_changed=self.reload)
        self.mqtt: MqttSource | None = None
        self.http: HttpServer | None = None
        self._notify_store: Storage | None = None
        self._reload_lock = asyncio.Lock()
        #: the config's and its included files' signatures at the last (re)load
        self._watched: dict[str, tuple[int, int, int] | None] = {}
        self._includes: list[str] = []

    @property
    def stop_event(self) -> asyncio.Event:
        return self.runtime.stop_event

    @property
    def config(self) -> Config | None:
        return self.pipeline.config

    def _adopt(self, cfg: Config, prepared: Prepared | None = None) -> list[str]:
        rt = self.runtime
        p = prepared if prepared is not None else prepare(cfg)
        removed = self.pipeline.configure(cfg, p)
        rt.config_loaded_at = time.time()
        if rt.scheduler is not None:
            rt.scheduler.set_jobs([j for j in p.jobs if rt.probe_up.get(j.probe, False)])
        if self.mqtt is not None:
            self.mqtt.set_devices(p.mqtt_devices)
        if self.pipeline.traps is not None:
            self.pipeline.traps.set_devices(p.trap_sources)
        for prober in rt.probers.values():  # snmp, pjlink: per-device memory
            forget = getattr(prober, "forget", None)
            if forget is not None:
                for dev_id in removed:
                    forget(dev_id)
        return removed

    async def reload(self) -> bool:
        """Load the config file again; on any failure keep the running config and say so
        (log, ``/healthz``, ``monitord_config_last_reload_success 0``)."""
        async with self._reload_lock:
            path = self.options.config_path
            log.info("reloading configuration from %s", path)
            self.runtime.last_reload_attempt_at = time.time()
            main_sig = await asyncio.to_thread(file_signature, str(path))
            try:
                result = await asyncio.to_thread(load_config, path)
            except ConfigError as exc:
                self._watched = await asyncio.to_thread(self._rejected_signatures)
                return await self._reload_failed(exc.problems)
            except Exception as exc:  # load_config maps everything; this is a last guard
                log.exception("reading the new configuration failed")
                self._watched = await asyncio.to_thread(self._rejected_signatures)
                return await self._reload_failed(
                    [Problem(str(path), 1, "(top)", one_line(f"{exc!r}", REASON_LIMIT))])
            await asyncio.to_thread(self._loaded, result.config, main_sig)
            for warning in result.warnings:
                log.warning("%s", warning)
            new, old = result.config, self.config
            try:
                # the derived tables in the thread too: the event loop only swaps them in
                prepared = await asyncio.to_thread(prepare, new)
                removed = self._adopt(new, prepared)
            except Exception as exc:
                log.exception("applying the new configuration failed")
                if old is not None:
                    self._adopt(old)
                return await self._reload_failed(
                    [Problem(str(path), 1, "(top)",
                             one_line(f"cannot apply: {exc!r}", REASON_LIMIT))])
            if old is not None and (old.storage != new.storage or old.http != new.http
                                    or old.engines != new.engines):
                log.warning("storage/http/engines settings changed: they apply after a restart")
            await self._configure_traps(new)  # communities are read again, too
            if old is not None and old.mqtt != new.mqtt:
                log.warning("mqtt broker settings changed: they apply after a restart")
            if self.mqtt is None and mqtt_devices(new):
                log.warning("devices watched over MQTT were added: restart monitord to "
                            "connect to the broker")
            dl = self.pipeline.deliverer
            if dl is not None:
                dl.configure(build_channels(new, self.options.notify_urls),
                             build_notify_policy(new, self.runtime.links),
                             new.office.short_name or new.office.name)
                dl.calendar = new.calendar()
            storage = self.pipeline.storage
            if removed and storage is not None:
                try:
                    await storage.forget_devices(removed)
                except Exception as exc:
                    log.error("cannot forget removed devices: %s", exc)
            self.runtime.last_reload_ok = True
            self.runtime.last_reload_error = ""
            self.pipeline.counters["monitord_config_reloads_total"][("success",)] += 1
            log.info("configuration reloaded: %d schools, %d devices",
                     len(new.schools), len(new.devices))
            settle_heap(full=False)
            await self.pipeline.record_event("config_reloaded", f"{len(new.devices)} devices")
            return True

    async def _reload_failed(self, problems: list[Problem]) -> bool:
        self.runtime.last_reload_ok = False
        more = f" (and {len(problems) - 1} more; see the log)" if len(problems) > 1 else ""
        self.runtime.last_reload_error = one_line(
            (problems[0].without_values() if problems else "rejected") + more, 300)
        self.pipeline.counters["monitord_config_reloads_total"][("failure",)] += 1
        log.error("new configuration rejected, keeping the running one:")
        for problem in problems:
            log.error("  %s", problem)
        await self.pipeline.record_event("config_rejected", f"{len(problems)} problems")
        return False

    def _loaded(self, cfg: Config, main_sig: tuple[int, int, int] | None) -> None:
        """A config was loaded from the file as it was at ``main_sig``: watch its includes
        from now on (known from the load: no second parse of a large file)."""
        self._includes = list(cfg.includes)
        main = str(self.options.config_path)
        self._watched = {main: main_sig,
                         **{f: file_signature(f) for f in self._includes}}

    def _signatures(self) -> dict[str, tuple[int, int, int] | None]:
        """(mtime, size, inode) of the config and of the files it includes (None: the file
        is missing); cheap (no parsing): a changed config is reloaded, which learns its
        new include list."""
        main = str(self.options.config_path)
        return {main: file_signature(main), **{f: file_signature(f) for f in self._includes}}

    def _rejected_signatures(self) -> dict[str, tuple[int, int, int] | None]:
        """After a rejected (re)load: watch the files the rejected config names, so that
        fixing a broken included file is noticed too."""
        self._includes = included_files(str(self.options.config_path))
        return self._signatures()

    async def _watch_loop(self) -> None:
        """Reload when the config or a file it includes changed (checked every
        ``CONFIG_WATCH_SECONDS``): ``monitord import`` and hand edits take effect without
        SIGHUP.  A reload that fails validation keeps the running config, as SIGHUP."""
        while not self.stop_event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=CONFIG_WATCH_SECONDS)
            if self.stop_event.is_set():
                return
            try:
                now = await asyncio.to_thread(self._signatures)
            except Exception as exc:  # stat failing is the reload's problem to report
                log.debug("watching the config files: %s", exc)
                continue
            if now != self._watched and not self._reload_lock.locked():
                changed = sorted(f for f in now.keys() | self._watched.keys()
                                 if now.get(f) != self._watched.get(f))
                log.info("configuration file changed (%s)", ", ".join(changed))
                await self.reload()

    async def _prune_loop(self, storage: Storage, writer: StateWriter,
                          retention_days: int) -> None:
        while not self.stop_event.is_set():
            try:
                n = await storage.prune(retention_days)
                if n:
                    log.info("pruned %d history rows older than %d days", n, retention_days)
            except Exception as exc:
                log.error("pruning history failed: %s", exc)
                writer.report_failure(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=PRUNE_EVERY_SECONDS)

    async def _start_probes(self, cfg: Config) -> None:
        rt = self.runtime
        rt.probers = make_probers(cfg)
        for name, prober in rt.probers.items():
            try:
                await prober.start()
                rt.probe_up[name] = True
            except ProbeSetupError as exc:
                rt.probe_up[name] = False
                log.error("probe %s cannot start: %s — its devices stay UNKNOWN", name, exc)
        rt.scheduler = Scheduler(rt.probers, self.pipeline.on_results)
        if mqtt_devices(cfg) or cfg.mqtt is not None:
            self.mqtt = self.pipeline.mqtt = MqttSource(mqtt_settings(cfg),
                                                        self.pipeline.on_mqtt)

    def _on_trap(self, event: TrapEvent) -> None:
        """An accepted SNMP trap: an event, and an early poll of the device(s)."""
        self.pipeline.on_trap(event)
        cfg, sch = self.config, self.runtime.scheduler
        if not event.actionable or cfg is None or sch is None or not cfg.snmp_traps.repoll:
            return
        for dev in event.device_ids:
            probes = sch.poll_now(dev, cfg.snmp_traps.repoll_min_interval)
            if probes:
                log.info("polling %s now (%s) after SNMP trap %s", dev, ", ".join(probes),
                         event.trap)

    async def _configure_traps(self, cfg: Config) -> None:
        """Start, stop, rebind or re-key the SNMP trap receiver to match ``cfg``.  A
        receiver that cannot start (port 162 without the capability, a missing community
        secret) is logged; monitoring goes on without it."""
        settings: TrapSettings = cfg.snmp_traps
        current = self.pipeline.traps
        self.pipeline.traps_error = ""
        if not settings.enabled:
            if current is not None:
                await current.close()
                self.pipeline.traps = None
                log.info("snmp traps: receiver stopped")
            return
        try:
            communities = await asyncio.to_thread(settings.reveal_communities)
        except (LookupError, OSError) as exc:
            log.error("snmp traps: cannot read a community: %s — receiver %s", exc,
                      "keeps its old communities" if current else "not started")
            if current is None:
                self.pipeline.traps_error = f"cannot read a community: {exc}"
            return
        if current is not None and current.listen == settings.addresses():
            current.set_communities(communities)
            current.set_devices(trap_sources(cfg))
            return
        receiver = TrapReceiver(settings.addresses(), communities, self._on_trap)
        receiver.set_devices(trap_sources(cfg))
        if current is not None:
            await current.close()
            self.pipeline.traps = None
        try:
            await receiver.start()
        except ProbeSetupError as exc:
            log.error("snmp traps: %s", exc)
            self.pipeline.traps_error = str(exc)
            return
        self.pipeline.traps = receiver
        log.info("snmp traps: listening on %s",
                 ", ".join(f"{h}:{p}" for h, p in receiver.addresses))

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the process exit code."""
        main_sig = file_signature(str(self.options.config_path))
        try:
            result = await asyncio.to_thread(load_config, self.options.config_path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("%s", problem)
            log.error("configuration invalid, not starting")
            return 2
        cfg = result.config
        self._loaded(cfg, main_sig)
        for warning in result.warnings:
            log.warning("%s", warning)

        db_path = resolve_db_path(cfg, self.options.db_path)
        open_files = raise_open_files_limit()
        try:
            sock = bind(*parse_listen(self.options.listen or cfg.http.listen))
        except (OSError, ValueError) as exc:
            log.error("%s", exc)
            return 1
        try:
            storage, self._notify_store, links, saved = await open_database(cfg, db_path)
        except Exception as exc:
            sock.close()
            if isinstance(exc, LinkSecretError):
                log.error("%s", exc)
            else:
                log.error("cannot open database %s: %s%s", db_path, error_text(exc),
                          OPEN_HINTS.get(error_reason(exc), ""))
            return 1
        self.runtime.links = links
        await _warn_without_admin(storage, db_path)
        writer = StateWriter(storage)
        deliverer = Deliverer(self._notify_store.connection,
                              build_channels(cfg, self.options.notify_urls),
                              build_notify_policy(cfg, links),
                              cfg.office.short_name or cfg.office.name)
        deliverer.calendar = cfg.calendar()
        # While the database cannot be written, the outbox worker waits: a message sent
        # but not marked sent would go out again every second.
        deliverer.hold = lambda: not writer.up
        deliverer.on_error = writer.report_failure
        self.pipeline.attach(storage, writer, deliverer)

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        reload_tasks: set[asyncio.Task[bool]] = set()

        def on_hup() -> None:
            task = asyncio.create_task(self.reload())
            reload_tasks.add(task)
            task.add_done_callback(reload_tasks.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        if tracemalloc.is_tracing():  # PYTHONTRACEMALLOC=10: where the memory goes
            loop.add_signal_handler(signal.SIGUSR2, log_allocations)
        await self._start_probes(cfg)
        self._adopt(cfg)
        self.pipeline.restore(saved)
        await self._configure_traps(cfg)

        connections = cfg.http.limit_concurrency or default_concurrency(open_files)
        log.info("open files limit %d: HTTP connections at most %d", open_files, connections)
        site = build_app(self.view, self.commands)
        self.http = HttpServer(site, sock, limit_concurrency=connections)
        await self.http.start()
        self.view.status_data()  # starts computing the status page's availability figures
        h, p = self.http.address
        base = f"http://{h if ':' not in h else f'[{h}]'}:{p}"
        log.info("monitord %s: %d schools, %d devices; database %s", self.version,
                 len(cfg.schools), len(cfg.devices), db_path)
        log.info("metrics: %s/metrics  health: %s/healthz", base, base)
        for line in self.options.extra_banner:
            log.info("%s", line.format(base=base))
        await self.pipeline.record_event("daemon_started", f"version {self.version}")
        settle_heap()

        assert self.runtime.scheduler is not None and self.runtime.loop_lag is not None
        tasks = [
            asyncio.create_task(self.runtime.scheduler.run(self.stop_event), name="scheduler"),
            asyncio.create_task(writer.run(self.stop_event), name="writer"),
            asyncio.create_task(self._prune_loop(storage, writer, cfg.storage.retention_days),
                                name="prune"),
            asyncio.create_task(self.pipeline.tick_loop(self.stop_event), name="tick"),
            asyncio.create_task(deliverer.run(self.stop_event), name="notify"),
            asyncio.create_task(self._watch_loop(), name="config-watch"),
            asyncio.create_task(self.runtime.loop_lag.run(self.stop_event), name="loop-lag"),
        ]
        if self.mqtt is not None:
            s = self.mqtt.settings
            log.info("mqtt: %d devices from broker %s:%d", len(mqtt_devices(cfg)), s.host,
                     s.port)
            tasks.append(asyncio.create_task(self.mqtt.run(self.stop_event), name="mqtt"))
        await self.stop_event.wait()
        log.info("stopping")
        if self.pipeline.traps is not None:
            await self.pipeline.traps.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        for prober in self.runtime.probers.values():
            try:
                await prober.close()
            except Exception as exc:
                log.warning("closing probe %s: %s", getattr(prober, "name", "?"), exc)
        await self.http.stop()
        await close_site(site)
        if not await writer.flush():
            log.error("%d state changes could not be written before exit", writer.pending)
        await self.pipeline.record_event("daemon_stopped", "")
        await storage.close()
        await self._notify_store.close()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        log.info("stopped")
        return 0
