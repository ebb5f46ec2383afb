"""The wheel as a user gets it: built from the sources, installed in a fresh virtual
environment outside the repository, it holds every module and packaged file, serves the demo,
and makes with `monument-ws new` an app that installs with pip and passes its own tests under
plain `pytest`.

Dependencies come from the package index (or pip's cache), as for any user, so the first run on
a machine needs the network.
"""

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from monument_ws.client import Client
from tests.test_cli import count_tests
from tests.test_cluster import Server

ROOT = Path(__file__).resolve().parent.parent
#: What the wheel is built from, copied out of the checkout (so no build/ or egg-info is left
#: in it, and the checkout's caches and environments stay out of the build).
SOURCES = ("pyproject.toml", "README.md", "monument_ws", "app_template")
#: Seconds one pip command may take: it may resolve and download dependencies.
PIP_TIMEOUT = 240


def shell(*args: str | Path, cwd: Path | None = None) -> str:
    """Run a command, outside this test run's environment; return its output or fail with it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTEST") and k not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from a copy of the sources, in a temporary directory."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    shell(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source)
    (built,) = dist.glob("monument_ws-*.whl")
    return built


@pytest.fixture(scope="module")
def env_bin(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a new virtual environment with the wheel installed."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=True)
    shell(env / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    return env / "bin"


def tracked(folder: str) -> list[str]:
    """The files git tracks under ``folder``: what the wheel must hold."""
    listed = shell("git", "ls-files", folder, cwd=ROOT)
    return [path for path in listed.splitlines() if (ROOT / path).is_file()]


@pytest.mark.timeout(PIP_TIMEOUT * 2)
def test_the_wheel_holds_every_module_and_the_app_template(wheel):
    """Every file of monument_ws/, and app_template/ as monument_ws/app_template/."""
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        *tracked("monument_ws"),
        *(f"monument_ws/{path}" for path in tracked("app_template")),
    }
    assert {"monument_ws/ops/admin.html", "monument_ws/app_template/plugs/hello.py"} <= expected
    assert sorted(expected - names) == []


@pytest.mark.timeout(PIP_TIMEOUT * 3)
def test_a_new_app_installs_and_passes_its_tests_with_plain_pytest(env_bin, tmp_path):
    """`monument-ws new`, `pip install -e 'myapp[test]'`, then `pytest` in the app: all pass."""
    shell(env_bin / "monument-ws", "new", "myapp", cwd=tmp_path)
    project = tmp_path / "myapp"
    shell(env_bin / "python", "-m", "pip", "install", "-q", "-e", f"{project}[test]")
    demo = shell(env_bin / "python", "-c", "import app; print(app.__file__)", cwd=tmp_path)
    assert Path(demo.strip()) == project / "app" / "__init__.py"
    tests = shell(env_bin / "pytest", cwd=project)
    assert f"{count_tests(project)} passed" in tests


@pytest.mark.timeout(PIP_TIMEOUT * 2)
async def test_run_serves_the_demo_and_its_plugs_from_the_installed_package(env_bin, tmp_path):
    """`monument-ws run` in an empty directory serves the template shipped in the wheel."""
    where = shell(
        env_bin / "python",
        "-c",
        "import monument_ws.app_template.app as a; print(a.__file__)",
        cwd=tmp_path,
    )
    assert Path(where.strip()).is_relative_to(env_bin.parent)
    server = await Server(command=[str(env_bin / "monument-ws")], cwd=tmp_path).start()
    try:
        async with Client(server.url) as client:
            assert await client.call("data:get:greeting") == {"greeting": "Hello from monument_ws!"}
            assert await client.call("hello", "wheel") == "Hello, wheel!"
    finally:
        assert await server.stop() == 0
