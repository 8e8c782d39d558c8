"""`hpo search --ray [ADDRESS]`: the session's workers placed on a Ray cluster (Ray's only
importer; an optional extra, `pip install "hpo[ray]"`).

Each worker is a Ray task running the trial loop of a `--jobs` worker (`hpo.search.workers`) on
the shared stores; the driver (the process the user started) opens and closes the session and
shows one display. A worker whose process or node dies is run again by Ray (`RETRIES`); its trial
is failed and re-queued like any dead process's (`hpo.search.recovery`), so the target stays exact.
Ctrl-C or SIGTERM on the driver stops every worker, and each records its trial."""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, cast

from hpo.config import RAY_LOCAL as LOCAL
from hpo.errors import ConfigError
from hpo.search.context import SearchObserver
from hpo.search.session import Session, StopReason
from hpo.search.workers import QueueObserver, WorkerReport, conclude, relay, work
from hpo.signals import sigterm_as_interrupt

RETRIES = 3  # runs of a worker whose process or node died (Ray's default for tasks)
CONNECT_TIMEOUT_S = 5.0  # for a cluster's address to answer at all
POLL_S = 0.5  # how often a worker reads the driver's stop request
STOP_GRACE_S = 60.0  # after Ctrl-C, how long workers get to record their trials before a kill


@dataclass(frozen=True)
class Node:
    """A live node of the cluster, as its resources say."""

    address: str  # IP address
    cpus: float
    gpus: float


@dataclass(frozen=True)
class Placement:
    """What the workers ask Ray for: `workers` tasks of `cpus` CPUs and `gpus` GPUs each."""

    workers: int
    cpus: int
    gpus: int
    nodes: int  # live nodes of the cluster when the call began

    @property
    def device(self) -> str:
        """Each worker's device: the GPU Ray gave it (it sees only that one), else the CPU."""
        return "cuda" if self.gpus else "cpu"

    def describe(self) -> str:
        each = f"{self.cpus} CPU" + (f" + {self.gpus} GPU" if self.gpus else "")
        return f"Ray: {self.workers} worker(s) of {each} on a cluster of {self.nodes} node(s)"


def place(*, nodes: list[Node], jobs: int | None, device: str) -> Placement:
    """Workers and their resources: `--jobs`, else one per GPU of the cluster (when `--device`
    allows one), else one per node that has a CPU. A CPU worker asks for its share of the
    cluster's CPUs, at most the smallest node's, so that every worker fits some node."""
    if device not in ("auto", "cuda", "cpu"):
        raise ConfigError(
            f"with --ray, Ray gives each worker its device: use --device auto, cuda or cpu; got {device}"
        )
    nodes = [n for n in nodes if n.cpus >= 1]  # a head node kept free of work (`--num-cpus 0`) hosts none
    if not nodes:
        raise ConfigError("the Ray cluster has no node with a CPU to run a worker; add one with `ray start`")
    gpus = int(sum(n.gpus for n in nodes))
    if device == "cuda" and not gpus:
        raise ConfigError("--device cuda: the Ray cluster has no GPU; use --device cpu or auto")
    use_gpu = device != "cpu" and gpus > 0
    workers = jobs or (gpus if use_gpu else len(nodes))
    if use_gpu:  # training on a GPU needs one core to feed it; the data is on the device
        return Placement(workers=workers, cpus=1, gpus=1, nodes=len(nodes))
    share = sum(n.cpus for n in nodes) / workers
    cpus = max(1, int(min(share, min(n.cpus for n in nodes))))
    return Placement(workers=workers, cpus=cpus, gpus=0, nodes=len(nodes))


def _on_this_machine(url: str) -> bool:
    """Whether a store URL names files (SQLite, a folder) rather than a server."""
    return url.startswith(("sqlite:", "file:")) or "://" not in url


def check_stores_reach(*, storage: str, tracking_uri: str, nodes: list[Node], here: str) -> None:
    """Refuse stores in this machine's files when some node runs elsewhere: it could not see them."""
    local = [
        name
        for name, url in (("study store", storage), ("MLflow store", tracking_uri))
        if _on_this_machine(url)
    ]
    elsewhere = sorted({n.address for n in nodes} - {here})
    if local and elsewhere:
        raise ConfigError(
            f"--ray with a {local[0]} in this machine's files runs on this machine's nodes only, but the "
            f"cluster has nodes at {', '.join(elsewhere)}: use --storage postgresql://... and an MLflow "
            "server (--tracking-uri http://...), see docs/DISTRIBUTED.md"
        )


class _LoggedObserver(QueueObserver):
    """A Ray worker's events for the driver's display, and a line per trial in its Ray log."""

    def trial_started(self, **kw: Any) -> None:
        print(f"hpo worker {self.worker}: trial {kw['number']} started: {kw['params']}", flush=True)
        super().trial_started(**kw)

    def trial_finished(self, **kw: Any) -> None:
        row = kw["row"]
        print(f"hpo worker {self.worker}: trial {row.number} {row.state} value={row.value}", flush=True)
        super().trial_finished(**kw)


class StopFlag:
    """The driver's stop request (Ctrl-C, SIGTERM), as a Ray actor every worker can read."""

    def __init__(self) -> None:
        self.value = False

    def set(self) -> None:
        self.value = True

    def get(self) -> bool:
        return self.value


@contextlib.contextmanager
def _stoppable(stop: Any) -> Iterator[None]:
    """Raise KeyboardInterrupt in this worker once the driver asks it to stop, and again every
    POLL_S until one was raised: with `ray.cancel` alone, one of two workers went on to the
    target in 3 of 4 runs of tests/distributed/test_ray.py (its interrupt never surfaced)."""
    import ray

    raised, done = threading.Event(), threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        raised.set()
        raise KeyboardInterrupt

    def watch() -> None:
        while not done.wait(POLL_S) and not raised.is_set():
            with contextlib.suppress(ray.exceptions.RayError):
                if ray.get(stop.get.remote()):
                    _thread.interrupt_main()  # the SIGINT handler in force, in the main thread

    old = signal.signal(signal.SIGINT, on_sigint)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        signal.signal(signal.SIGINT, old)


def _task(
    worker: int, session: Session, events: Any, stop: Any, device_name: str, threads: int
) -> WorkerReport:
    """One worker, as a Ray task: the trial loop with Ray's CPUs and device, stopped by `stop`."""
    observer = _LoggedObserver(events, worker)
    with _stoppable(stop):
        report = work(
            worker=worker, session=session, observer=observer, device_name=device_name, threads=threads
        )
    if report.error:  # say where: the driver's user cannot see this node otherwise
        return replace(report, error=f"worker {worker} on {socket.gethostname()}: {report.error}")
    return report


class Cluster:
    """A connection to a Ray cluster and the placement of this call's workers on it."""

    def __init__(self, ray: Any, placement: Placement) -> None:
        self.ray, self.placement = ray, placement

    def run(self, *, session: Session, observer: SearchObserver) -> tuple[int, StopReason]:
        """Run the session's trials in the placed workers; returns (trials run, why stopped)."""
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray, p = self.ray, self.placement
        # The queue and the flag live on the driver's node (a client's: the head), not a worker's.
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        stop = ray.remote(num_cpus=0, scheduling_strategy=here)(StopFlag).remote()
        remote = ray.remote(
            num_cpus=p.cpus, num_gpus=p.gpus, max_retries=RETRIES, scheduling_strategy="SPREAD"
        )
        refs = [remote(_task).remote(i, session, events, stop, p.device, p.cpus) for i in range(p.workers)]
        interrupted = False
        try:
            with sigterm_as_interrupt():
                relay(events, observer, pending=lambda: self._pending(refs), reports=[])
        except KeyboardInterrupt:
            interrupted = True
            self.ray.get(stop.set.remote())
            self._wait(refs, events=events, observer=observer)
        reports = [self._report(ref) for ref in refs]
        return conclude(
            session, reports + ([WorkerReport(ran=0, stopped="interrupted")] if interrupted else [])
        )

    def _pending(self, refs: list[Any]) -> bool:
        return bool(self.ray.wait(refs, num_returns=len(refs), timeout=0)[1])

    def _wait(self, refs: list[Any], *, events: Any, observer: SearchObserver) -> None:
        """Wait up to STOP_GRACE_S for the stopped workers to record their trials; then kill the
        rest (and cancel any waiting to be run again)."""
        give_up = time.monotonic() + STOP_GRACE_S
        with contextlib.suppress(KeyboardInterrupt):  # another Ctrl-C: kill at once
            relay(
                events,
                observer,
                pending=lambda: time.monotonic() < give_up and self._pending(refs),
                reports=[],
            )
        for ref in refs:
            self.ray.cancel(ref, force=True)

    def _report(self, ref: Any) -> WorkerReport:
        try:
            return cast(WorkerReport, self.ray.get(ref, timeout=STOP_GRACE_S))
        except self.ray.exceptions.TaskCancelledError:
            return WorkerReport(ran=0, stopped="interrupted")
        except (self.ray.exceptions.RayError, TimeoutError):  # died more than RETRIES times
            return WorkerReport(ran=0, stopped="error")


def _probe(address: str) -> None:
    """Fail at once on a HOST:PORT (or ray://HOST:PORT) that does not answer: Ray itself retries
    for minutes before it gives up."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray reads its own way
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one there with "
            "`ray start --head`, or omit the address for a local Ray instance"
        ) from None


def _connect(address: str) -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray, which is not installed: pip install 'hpo[ray]'") from None
    if address != LOCAL:
        _probe(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no prompt, no report home
    try:
        ray.init(
            address=None if address == LOCAL else address,
            log_to_driver=False,  # workers' lines stay in Ray's logs; the driver has one display
            logging_level=logging.ERROR,
            include_dashboard=False if address == LOCAL else None,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = "start a local Ray instance" if address == LOCAL else f"join the Ray cluster at {address}"
        raise ConfigError(
            f"could not {where}: {str(exc).splitlines()[0]} (start one with `ray start --head`, or "
            "omit the address for a local Ray instance)"
        ) from None
    return ray


@contextlib.contextmanager
def ray_cluster(
    *, address: str, jobs: int | None, device: str, storage: str, tracking_uri: str
) -> Iterator[Cluster]:
    """Connect to Ray (`LOCAL`: start an instance for this call), check that every node can reach
    both stores, and place the workers; disconnect (or stop the local instance) on exit."""
    ray = _connect(address)
    try:
        nodes = [
            Node(
                address=n["NodeManagerAddress"],
                cpus=n["Resources"].get("CPU", 0.0),
                gpus=n["Resources"].get("GPU", 0.0),
            )
            for n in ray.nodes()
            if n["Alive"]
        ]
        here = ray.util.get_node_ip_address()
        check_stores_reach(storage=storage, tracking_uri=tracking_uri, nodes=nodes, here=here)
        yield Cluster(ray, place(nodes=nodes, jobs=jobs, device=device))
    finally:
        ray.shutdown()
