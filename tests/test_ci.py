"""CI runs the suite on the oldest and the newest supported Python: scripts/test finds 3.13."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_newest_supported_python_is_found_and_used():
    found = subprocess.run(
        [ROOT / "scripts" / "newest-python"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs the suite on Python 3.13 too, and none was found")
        pytest.skip("Python 3.13 is not installed: install it to run the suite on both")
    version = subprocess.run(
        [found, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == "(3, 13)"
    script = (ROOT / "scripts" / "test").read_text()
    assert ".venv313/bin/pytest" in script
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_the_suite_gets_a_postgresql_and_the_postgres_extra():
    """The store tests need asyncpg and a PostgreSQL on 127.0.0.1:5432: scripts/test installs
    the postgres extra into both environments and runs scripts/ensure-postgres."""
    script = (ROOT / "scripts" / "test").read_text()
    assert "scripts/ensure-postgres" in script
    assert script.count("'.[dev,redis,postgres]'") == 2
    assert os.access(ROOT / "scripts" / "ensure-postgres", os.X_OK)
