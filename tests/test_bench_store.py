"""bench/store.py stays runnable: a quick run delivers every publication, persisted or not.

Figures are not asserted (docs/benchmarks.md records a run by hand); counts are: every
publication delivered, and the persisted burst written in fewer transactions than
publications (the writer batches).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from .conftest import POSTGRES_URL, postgres_available

ROOT = Path(__file__).resolve().parent.parent


def test_quick_store_benchmark_delivers_everything(tmp_path: Path) -> None:
    asyncio.run(postgres_available())
    out = tmp_path / "store.json"
    subprocess.run(
        [sys.executable, "bench/store.py", "--quick", "--postgres", POSTGRES_URL, "--json", str(out)],
        cwd=ROOT, check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    results = json.loads(out.read_text())["results"]
    assert set(results) == {
        "throughput-persisted",
        "throughput-broker",
        "latency-persisted",
        "latency-broker",
    }
    assert results["throughput-persisted"]["publications"] == 200
    assert 0 < results["throughput-persisted"]["transactions"] < 200
    assert results["throughput-broker"]["publications"] == 200
    for kind in ("persisted", "broker"):
        row = results[f"latency-{kind}"]
        assert row["publications"] == 100
        assert row["p99_ms"] >= row["p50_ms"] > 0
