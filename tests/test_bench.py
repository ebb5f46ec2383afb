"""The benchmark suite stays runnable: bench/run.py --quick against every server.

Figures are not asserted (they belong to docs/benchmarks.md, measured by hand);
what is asserted are counts: every request answered, every fan-out message and
every publication through Redis delivered to every subscriber, every idle socket
opened, for monument_ws, raw aiohttp and python-socketio alike; and in the fan-out
across wire formats, every message delivered to every socket of each format.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REDIS_URL, redis_available

ROOT = Path(__file__).resolve().parent.parent


def test_quick_suite_delivers_everything(tmp_path: Path) -> None:
    if shutil.which("node") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("the benchmark's load generator needs Node.js")
        pytest.skip("the benchmark's load generator needs Node.js (>= 20) on PATH")
    redis_available()
    out = tmp_path / "results.json"
    subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--reps", "1", "--json", str(out),
         "--redis", REDIS_URL],
        cwd=ROOT, check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"rpc-100", "fanout", "fanout-mixed", "idle", "redis"}
    mixed = results.pop("fanout-mixed")
    assert set(mixed) == {"monument", "monument+formats"}
    formats = {"monument", "serverless-sockets", "super-scaled-sockets", "owlmeans"}
    for server, (row,) in mixed.items():
        # 40 subscribers (10 per format in the mixed run), 10 messages each, every one counted
        assert row["incomplete"] == 0, server
        assert row["operations"] == row["expected"] == 400, server
        want = formats if server == "monument+formats" else {"monument"}
        assert set(row["per_format"]) == want, server
        assert sum(row["sockets_per_format"].values()) == 40, server
        assert all(n == 400 // len(want) for n in row["per_format"].values()), server
    for scenario, runs in results.items():
        extra = {
            "fanout": {"monument+hook"},
            "rpc-100": {"monument+demo", "monument+bare", "monument+bare-task"},
        }.get(scenario, set())
        assert set(runs) == {"monument", "aiohttp", "socketio", *extra}, scenario
        for server, (row,) in runs.items():
            where = f"{scenario} on {server}"
            if scenario == "rpc-100":
                assert row["operations"] > 0, where
                assert row["p99_ms"] >= row["p50_ms"] > 0, where
            elif scenario == "idle":
                assert row["operations"] == 50, where
                assert row["rss_growth_bytes"] > 0, where
            else:
                assert row["operations"] == row["expected"], where
            if scenario != "idle":
                assert row["server_cpu_s"] >= 0, where
