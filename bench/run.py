"""The benchmark suite: monument_ws beside raw aiohttp and python-socketio, in one run.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/run.py

Each server (bench/servers.py) runs in its own process pinned to CPU 0; the load
generator (bench/loadgen.mjs, Node's ``ws``) runs pinned to CPU 1. Throughput is
divided by the CPU time the server process spent in the measured window (utime +
stime from /proc/PID/stat), so a noisy machine changes the wall time more than the
figures. Each scenario runs every server ``--reps`` times, interleaved (m, a, s,
m, a, s, ...) so that drifting background load hits all of them alike, and every
table shows medians. Servers start fresh for every repetition.

Scenarios:

* ``rpc``: N sockets each keep one acked echo request in flight (100 and 1,000 sockets);
* ``fanout``: 1,000 subscribers, the server sends 200 messages of 64 bytes to all;
* ``fanout-mixed``: the same with the subscribers spread over the four wire formats
  (native, serverless-sockets, super-scaled-sockets, @owlmeans/socket: 250 each), against
  1,000 native subscribers in the same run;
* ``idle``: 10,000 open sockets; server RSS growth per socket;
* ``redis``: two server processes through Redis, 100 subscribers on one, a
  publisher on the other at 100 messages/s (10,000 deliveries/s): publish->deliver
  latency.

Results go to bench/results.json; with ``--write`` the tables replace the generated
part of docs/benchmarks.md and a chart is drawn into docs/benchmarks.png
(matplotlib, from the ``bench`` extra). Every run is bounded: fixed counts and
durations, a timeout per step, traffic only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVERS = ("monument", "aiohttp", "socketio")
LABELS = {
    "monument": "monument_ws",
    "monument+demo": "monument_ws demo app (monument-ws run)",
    "monument+hook": "monument_ws + outgoing hook",
    "monument+formats": "monument_ws, a quarter of the subscribers per wire format",
    "monument+bare": "floor: bare protocol path, handler inline",
    "monument+bare-task": "floor: bare protocol path, a task per request",
    "aiohttp": "raw aiohttp",
    "socketio": "python-socketio",
}
TICK = os.sysconf("SC_CLK_TCK")
#: The interpreter the servers run on (--python): this one unless told otherwise.
PYTHON = sys.executable


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    unit: str  # what one operation is
    spec: dict[str, Any]
    redis: bool = False
    #: more server kinds this scenario runs, e.g. monument_ws with an outgoing frame hook
    extra: tuple[str, ...] = ()
    #: which of the compared servers (--servers) it runs; None: all of them
    servers: tuple[str, ...] | None = None
    #: the server kind every figure is divided by in the tables
    base: str = "aiohttp"
    #: names of server kinds in this scenario's table, where LABELS's would not say enough
    labels: tuple[tuple[str, str], ...] = ()


def scenarios(quick: bool) -> list[Scenario]:
    """The full suite, or (``quick``) the same scenarios shrunk for the smoke test."""
    if quick:
        return [
            Scenario(
                "rpc-100", "acked echo, 100 sockets", "requests", rpc(10, 0.2, 0.5), extra=RPC
            ),
            Scenario(
                "fanout", "fan-out, 1,000 subscribers", "deliveries", fanout(20, 10), extra=HOOK
            ),
            Scenario(
                "fanout-mixed", "fan-out across wire formats", "deliveries", fanout(40, 10), **MIXED
            ),
            Scenario("idle", "10,000 idle sockets", "sockets", idle(50)),
            Scenario("redis", "two processes through Redis", "deliveries", redis_(5, 20, 1), True),
        ]
    return [
        Scenario("rpc-100", "acked echo, 100 sockets", "requests", rpc(100, 1, 4), extra=RPC),
        Scenario("rpc-1000", "acked echo, 1,000 sockets", "requests", rpc(1000, 1, 4),
                 extra=RPC),
        Scenario("fanout", "fan-out of 200 messages to 1,000 subscribers", "deliveries",
                 fanout(1000, 200), extra=HOOK),
        Scenario("fanout-mixed", "fan-out of 200 messages to 1,000 subscribers of four wire "
                 "formats", "deliveries", fanout(1000, 200), **MIXED),
        Scenario("idle", "10,000 idle sockets", "sockets", idle(10_000)),
        Scenario("redis", "two processes through Redis at 10,000 deliveries/s", "deliveries",
                 redis_(100, 100, 5), True),
    ]  # fmt: skip


#: Fan-out also runs monument_ws with an outgoing hook stamping sender/dt on every frame:
#: what frame middleware costs when frames are encoded once for all subscribers.
HOOK = ("monument+hook",)
#: Fan-out across wire formats: monument_ws with endpoints on (bench/servers.py, ENDPOINTS), its
#: subscribers speaking FORMATS in turn, beside plain monument_ws with native subscribers only.
MIXED: dict[str, Any] = {
    "servers": ("monument",),
    "extra": ("monument+formats",),
    "base": "monument",
    "labels": (
        ("monument", "monument_ws, native subscribers only"),
        ("monument+formats", "monument_ws, a quarter of the subscribers per wire format"),
    ),
}
#: The wire formats of monument+formats's subscribers, as bench/loadgen.mjs names its adapters.
FORMATS = ("monument", "serverless-sockets", "super-scaled-sockets", "owlmeans")
#: Request/response also runs the floor: this protocol's request path with nothing else,
#: handlers inline and with a task per request (bench/servers.py, bare_app).
BARE = ("monument+bare", "monument+bare-task")
#: ... and the demo app as `monument-ws run` serves it (its echo is a plain function, run inline),
#: beside the bench app's ``async def`` echo (``monument``: an eager task per request).
RPC = ("monument+demo", *BARE)


def rpc(sockets: int, warmup: float, duration: float) -> dict[str, Any]:
    return {"scenario": "rpc", "sockets": sockets, "warmup": warmup, "duration": duration}


def fanout(sockets: int, count: int) -> dict[str, Any]:
    return {"scenario": "fanout", "sockets": sockets, "count": count, "timeout": 120}


def idle(sockets: int) -> dict[str, Any]:
    return {"scenario": "idle", "sockets": sockets}


def redis_(sockets: int, rate: float, duration: float) -> dict[str, Any]:
    return {
        "scenario": "redis",
        "sockets": sockets,
        "rate": rate,
        "duration": duration,
        "timeout": 30,
    }


# -- processes -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of ``pid`` in seconds: in the process, and in the kernel on its behalf."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def pin(pid: int, cpu: int) -> None:
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(pid, {cpu})


@contextlib.contextmanager
def server(
    kind: str, redis: str | None = None, prefix: str = "bench:"
) -> Iterator[tuple[int, int]]:
    """Start one server pinned to CPU 0; yields (pid, port) once the port accepts connections."""
    port = free_port()
    args = [PYTHON, str(HERE / "servers.py"), kind, str(port), "--prefix", prefix]
    if redis:
        args += ["--redis", redis]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        pin(proc.pid, 0)
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{kind} server exited: {proc.stderr.read() if proc.stderr else ''}"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} server did not listen within 30 s")
            time.sleep(0.05)
        yield proc.pid, port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def loadgen(spec: dict[str, Any]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        ["node", str(HERE / "loadgen.mjs"), json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pin(proc.pid, 1)
    return proc


def expect(proc: subprocess.Popen[str], line: str, timeout: float) -> str:
    """Read stdout lines until ``line``; the load generator's own timeouts bound the wait."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = proc.stdout.readline()
        if not got:
            raise RuntimeError(f"load generator exited (code {proc.wait()}) before {line!r}")
        if got.strip() == line:
            return got
    raise RuntimeError(f"no {line!r} from the load generator within {timeout} s")


def finish(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    expect(proc, "stop", timeout)
    assert proc.stdout is not None
    result: dict[str, Any] = json.loads(proc.stdout.readline())
    proc.wait(30)
    return result


# -- one measurement -----------------------------------------------------------


def measure(scenario: Scenario, kind: str, redis_url: str | None) -> dict[str, Any]:
    spec = dict(scenario.spec, server=kind.split("+")[0])  # the wire format to speak
    if "monument+formats" in scenario.extra:
        # Every socket's deliveries are counted, the native-only run's too.
        spec["mix"] = FORMATS if kind == "monument+formats" else (spec["server"],)
    if scenario.redis:
        assert redis_url, "the redis scenario needs --redis"
        prefix = f"bench{os.getpid()}{time.monotonic_ns()}:"
        try:
            with (
                server(kind, redis_url, prefix) as (pub_pid, pub_port),
                server(kind, redis_url, prefix) as (sub_pid, sub_port),
            ):
                spec.update(host=f"127.0.0.1:{pub_port}", host2=f"127.0.0.1:{sub_port}")
                return run_load(spec, [pub_pid, sub_pid])
        finally:
            forget(redis_url, prefix)
    with server(kind) as (pid, port):
        spec["host"] = f"127.0.0.1:{port}"
        if scenario.spec["scenario"] == "idle":
            return run_idle(spec, pid)
        result = run_load(spec, [pid])
    if "mix" in spec and (result["incomplete"] or result["operations"] != result["expected"]):
        raise RuntimeError(
            f"{scenario.name} on {kind}: {result['incomplete']} sockets missed deliveries "
            f"({result['operations']} of {result['expected']}; per format: {result['per_format']})"
        )
    return result


def forget(redis_url: str, prefix: str) -> None:
    """Delete what a run left in Redis (monument_ws's history streams and registry)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def run_load(spec: dict[str, Any], pids: list[int]) -> dict[str, Any]:
    proc = loadgen(spec)
    try:
        expect(proc, "go", 300)
        before = [cpu_split(p) for p in pids]
        result = finish(proc, 300)
        after = [cpu_split(p) for p in pids]
        user = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
        kernel = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
        cpu = user + kernel
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result["server_cpu_s"] = cpu
    result["server_kernel_share"] = kernel / cpu if cpu > 0 else None
    result["per_cpu_s"] = result["operations"] / cpu if cpu > 0 else None
    result["per_s"] = result["operations"] / result["wall_s"]
    return result


def run_idle(spec: dict[str, Any], pid: int) -> dict[str, Any]:
    # One socket opened and closed first, so lazily imported code is not counted per socket.
    warm = loadgen(dict(spec, sockets=1))
    expect(warm, "go", 60)
    assert warm.stdin is not None
    warm.stdin.close()
    finish(warm, 60)
    time.sleep(0.5)
    before = rss_bytes(pid)
    proc = loadgen(spec)
    try:
        expect(proc, "go", 600)
        time.sleep(1)  # let the last welcomes and handshakes settle
        after = rss_bytes(pid)
        assert proc.stdin is not None
        proc.stdin.close()
        result = finish(proc, 120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result["rss_growth_bytes"] = after - before
    result["bytes_per_socket"] = (after - before) / spec["sockets"]
    return result


# -- report --------------------------------------------------------------------


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def tables(results: dict[str, dict[str, list[dict[str, Any]]]], chosen: list[Scenario]) -> str:
    out = []
    for scenario in chosen:
        runs = results.get(scenario.name)
        if not runs:
            continue
        reps = min(len(r) for r in runs.values())
        out.append(f"### {scenario.title}\n")
        if scenario.spec["scenario"] == "idle":
            out.append(
                f"Median of {reps} runs; RSS growth of the server process per open socket.\n"
            )
            out.append("| server | KiB per socket | x raw aiohttp |")
            out.append("|---|---:|---:|")
            base = median(runs.get("aiohttp", []), "bytes_per_socket")
            for kind, rows in runs.items():
                value = median(rows, "bytes_per_socket") or 0
                ratio = f"{value / base:.2f}x" if base and value and kind != "aiohttp" else "-"
                out.append(f"| {LABELS[kind]} | {value / 1024:.1f} | {ratio} |")
            out.append("")
            continue
        out.append(
            f"Median of {reps} runs. {scenario.unit.capitalize()} per server CPU-second (and "
            f"relative to {'raw aiohttp' if scenario.base == 'aiohttp' else 'the first row'}'s), "
            "per wall second, and latency (ms).\n"
        )
        out.append(
            f"| server | {scenario.unit}/CPU-s | x {LABELS[scenario.base]} | {scenario.unit}/s "
            "| p50 | p99 |"
        )
        out.append("|---|---:|---:|---:|---:|---:|")
        labels = {**LABELS, **dict(scenario.labels)}
        base = median(runs.get(scenario.base, []), "per_cpu_s")
        for kind, rows in runs.items():
            value = median(rows, "per_cpu_s") or 0
            ratio = f"{value / base:.2f}x" if base and value and kind != scenario.base else "-"
            p50, p99 = median(rows, "p50_ms"), median(rows, "p99_ms")
            out.append(
                f"| {labels[kind]} | {value:,.0f} | {ratio} | {median(rows, 'per_s') or 0:,.0f} | "
                f"{p50:.2f} | {p99:.2f} |"
                if p50 is not None and p99 is not None
                else f"| {labels[kind]} | {value:,.0f} | {ratio} | - | - | - |"
            )
        out.append("")
        for kind, rows in runs.items():
            if rows and "per_format" in rows[0]:
                row = rows[0]  # the same in every run: a run where a socket missed any fails
                out.append(f"Deliveries per format in each run of {labels[kind]}: " + ", ".join(
                    f"{name} {n:,} to {row['sockets_per_format'][name]:,} sockets"
                    for name, n in sorted(row["per_format"].items())
                ) + "; every socket got every message.\n")  # fmt: skip
    return "\n".join(out)


def environment() -> str:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "absent"

    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    ws = json.loads((HERE / "node_modules" / "ws" / "package.json").read_text())["version"]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"{datetime.date.today().isoformat()}, {os.cpu_count()} x {cpu}, Python "
        f"{platform.python_version()}, aiohttp {version('aiohttp')}, monument-ws "
        f"{version('monument-ws')}, python-socketio {version('python-socketio')}, redis-py "
        f"{version('redis')}, Node {node} with ws {ws}"
    )


def write_docs(section: str, text: str) -> None:
    """Replace the text between ``<!-- bench:SECTION:begin -->`` and its end marker."""
    path = ROOT / "docs" / "benchmarks.md"
    begin, end = f"<!-- bench:{section}:begin -->", f"<!-- bench:{section}:end -->"
    doc = path.read_text()
    if begin not in doc or end not in doc:
        raise SystemExit(f"docs/benchmarks.md has no {begin} ... {end} markers")
    head, _, rest = doc.partition(begin)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def chart(
    results: dict[str, dict[str, list[dict[str, Any]]]], chosen: list[Scenario], path: Path
) -> None:
    """Grouped bars: each server's figure relative to raw aiohttp's (higher is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []
    # The three servers, and the floor where it was measured (a server absent from every
    # scenario, e.g. python-socketio in a run without it, gets no bars).
    kinds = [k for k in (*SERVERS, *RPC) if any(results.get(c.name, {}).get(k) for c in chosen)]
    series: dict[str, list[float]] = {kind: [] for kind in kinds}
    for scenario in chosen:
        runs = results.get(scenario.name, {})
        key = "bytes_per_socket" if scenario.spec["scenario"] == "idle" else "per_cpu_s"
        base = median(runs.get("aiohttp", []), key)
        if not base or scenario.base != "aiohttp":
            continue
        names.append(textwrap.fill(scenario.title, 24))
        for kind in kinds:
            value = median(runs.get(kind, []), key) or 0
            # Memory: fewer bytes is better, so plot aiohttp's bytes over the server's.
            series[kind].append(
                (base / value if value else 0) if key == "bytes_per_socket" else value / base
            )
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    width = 0.8 / len(kinds)
    colors = {
        "monument": "#2f6fde",
        "monument+demo": "#173f8a",
        "aiohttp": "#9aa3ad",
        "socketio": "#e0803c",
        "monument+bare": "#5aa469",
        "monument+bare-task": "#a8d5a2",
    }
    for i, kind in enumerate(kinds):
        xs = [x + (i - (len(kinds) - 1) / 2) * width for x in range(len(names))]
        bars = ax.bar(xs, series[kind], width, label=LABELS[kind], color=colors[kind])
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.axhline(1, color="#555", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel("relative to raw aiohttp (higher is better)")
    ax.set_title("Per server CPU-second (memory: per socket), medians", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def ensure_loadgen() -> None:
    """Install the load generator's packages once. Runs may start together (CI runs the suite
    on two Pythons at once, each with a bench test), so the install holds a lock, and a tree
    counts as installed only once npm wrote its lockfile copy, the last thing ``npm ci`` does."""
    if shutil.which("node") is None:
        raise SystemExit("the load generator needs Node.js (>= 20) on PATH")
    with (HERE / ".npm-ci.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (HERE / "node_modules" / ".package-lock.json").exists():
            subprocess.run(
                ["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=HERE, check=True
            )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per server (median)")
    parser.add_argument("--only", help="comma-separated scenario names, e.g. rpc-100,fanout")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument(
        "--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the suite runs")
    parser.add_argument(
        "--write", action="store_true", help="update docs/benchmarks.md and the chart"
    )
    parser.add_argument(
        "--section", default="main", help="which generated part of docs/benchmarks.md to replace"
    )
    parser.add_argument("--json", type=Path, default=HERE / "results.json")
    parser.add_argument("--python", default=sys.executable, help="interpreter the servers run on")
    parser.add_argument(
        "--render", type=Path, help="measure nothing: write the tables and chart of a results file"
    )
    args = parser.parse_args(argv)
    global PYTHON
    PYTHON = args.python
    ensure_loadgen()
    chosen = scenarios(args.quick)
    if args.only:
        wanted = set(args.only.split(","))
        chosen = [s for s in chosen if s.name in wanted]
    kinds = args.servers.split(",")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    if args.render:
        saved: dict[str, Any] = json.loads(args.render.read_text())
        chosen = [s for s in scenarios(saved["quick"]) if s.name in saved["results"]]
        results = saved["results"]
        text = tables(results, chosen)
        print(text)
        if args.write:
            publish(args.section, saved["environment"], text, results, chosen)
        return saved
    for scenario in chosen:
        own = [k for k in kinds if scenario.servers is None or k in scenario.servers]
        order = [*own, *(k for k in scenario.extra if "monument" in kinds)]
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in order}
        for rep in range(args.reps):
            for kind in order:
                row = measure(scenario, kind, args.redis)
                runs[kind].append(row)
                print(f"{scenario.name:9} {kind:9} rep {rep + 1}: {summarise(row)}", flush=True)
        results[scenario.name] = runs
    text = tables(results, chosen)
    print("\n" + text)
    report = {"environment": environment(), "quick": args.quick, "results": results}
    args.json.write_text(json.dumps(report, indent=1))
    if args.write:
        publish(args.section, report["environment"], text, results, chosen)
    return report


def publish(
    section: str,
    environment: str,
    text: str,
    results: dict[str, dict[str, list[dict[str, Any]]]],
    chosen: list[Scenario],
) -> None:
    image = "benchmarks.png" if section == "main" else f"benchmarks-{section}.png"
    if not any(s.base == "aiohttp" and results.get(s.name, {}).get("aiohttp") for s in chosen):
        # Nothing the chart draws (it shows figures relative to raw aiohttp's): tables only.
        write_docs(section, f"Run on {environment}.\n\n{text}")
        return
    write_docs(section, f"Run on {environment}.\n\n{text}\n![chart]({image})\n")
    chart(results, chosen, ROOT / "docs" / image)


def summarise(row: dict[str, Any]) -> str:
    if "bytes_per_socket" in row:
        return f"{row['operations']} sockets, {row['bytes_per_socket'] / 1024:.1f} KiB each"
    parts = [
        f"{row['operations']} ops",
        f"{row['per_cpu_s'] or 0:,.0f}/CPU-s",
        f"{row['per_s']:,.0f}/s",
    ]
    if row.get("server_kernel_share") is not None:
        parts.append(f"kernel {row['server_kernel_share']:.0%}")
    if row.get("p99_ms") is not None:
        parts.append(f"p50 {row['p50_ms']:.2f} ms p99 {row['p99_ms']:.2f} ms")
    return ", ".join(parts)


if __name__ == "__main__":
    main()
