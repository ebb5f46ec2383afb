"""Scaffolding: ``new`` copies the app template, ``data`` and ``generate`` add a data provider
or a plug to a project, each with its test.

They never overwrite: a non-empty directory or an existing file is refused
before anything is written. The modules and tests they add are rendered from
``templates/`` beside this module, ``${name}`` placeholders filled in.
"""

from __future__ import annotations

import keyword
import re
import shutil
import string
from importlib import resources
from pathlib import Path

import click

from .options import CONTEXT, project_option

#: A data provider's name: its event keeps the dashes, its module has _ for each.
_DATA_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
#: One /-separated part of a plug name: no dots, so a name never leaves plugs/.
_PLUG_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def render(template: str, **values: str) -> str:
    """``templates/<template>`` with its ``${key}`` placeholders replaced by ``values``."""
    text = resources.files("monument_ws.cli").joinpath("templates", template).read_text("utf-8")
    return string.Template(text).substitute(values)


@click.command(context_settings=CONTEXT, short_help="Create a new app in an empty directory.")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def new(directory: Path) -> None:
    """Create a new app in DIRECTORY (created if missing; it must be empty)."""
    if directory.exists() and any(directory.iterdir()):
        raise click.ClickException(f"{directory} is not empty; choose a new or empty directory")
    template = resources.files("monument_ws.app_template")
    with resources.as_file(template) as source:
        shutil.copytree(
            source,
            directory,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"),
        )
    (directory / "__init__.py").unlink()
    click.echo(f"created {directory}")
    click.echo(f"  cd {directory} && pip install -e '.[test]'         # install it, with pytest")
    click.echo(f"  cd {directory} && monument-ws run app:create_app   # serve it")
    click.echo(f"  cd {directory} && pytest                           # its tests")


@click.command(context_settings=CONTEXT, short_help="Add a data provider with its test.")
@click.argument("name")
@click.option(
    "--collection",
    is_flag=True,
    help="A collection: data:get:NAME answers every item, data:get:NAME:ID the item ID "
    "(as data:set:NAME:ID).",
)
@project_option("The app made by `monument-ws new` (default: the current directory).")
def data(name: str, collection: bool, project: Path) -> None:
    """Add a data provider NAME (data:get:NAME → data:set:NAME) with its test, wired in.

    A dashed NAME keeps its dashes in the event (this-item: data:get:this-item) and becomes
    an underscore in the module (app/data/this_item.py).
    """
    module_name = name.replace("-", "_")
    if not _DATA_NAME.fullmatch(name) or keyword.iskeyword(module_name):
        raise click.UsageError(
            f"{name!r} is not a data provider name: use lowercase letters, digits, and - or _ "
            "between them, starting with a letter, and not a Python keyword "
            "(e.g. weather, this-item)"
        )
    package = project / "app" / "data"
    registry = package / "__init__.py"
    if not registry.is_file():
        raise click.ClickException(
            f"{project} is not an app made by `monument-ws new` (no app/data/)"
        )
    module = package / f"{module_name}.py"
    test = project / "tests" / f"test_{module_name}.py"
    for path in (module, test):
        if path.exists():
            raise click.ClickException(f"{path} already exists")
    text = registry.read_text()
    match = re.search(r"^__all__ = \[(.*)\]$", text, re.MULTILINE)
    if match is None:
        raise click.ClickException(f"cannot find the __all__ list in {registry}")
    names = [*re.findall(r'"(\w+)"', match.group(1)), module_name]
    imports = "".join(f"from . import {n}\n" for n in names)
    listed = ", ".join(f'"{n}"' for n in names)
    head = text[: text.index("from . import")]
    kind = "data_collection" if collection else "data"
    registry.write_text(f"{head}{imports}\n__all__ = [{listed}]\n")
    module.write_text(render(f"{kind}_module.py.tmpl", name=name))
    test.write_text(render(f"{kind}_test.py.tmpl", name=name, ident=module_name))
    served = f"data:get:{name} is served at GET /api/{name}"
    if collection:
        served += f", data:get:{name}:ID at GET /api/{name}/ID"
    click.echo(f"created {module} and {test}; {served}")


@click.command(context_settings=CONTEXT, short_help="Add a plug answering an event, with its test.")
@click.argument("name")
@project_option("The directory holding plugs/ and tests/ (default: the current directory).")
def generate(name: str, project: Path) -> None:
    """Write plugs/NAME.py answering the event NAME (chat/send: plugs/chat/send.py), and its test."""
    segments = name.split("/")
    if (
        len(name) > 200
        or not all(_PLUG_SEGMENT.fullmatch(segment) for segment in segments)
        or name == "INIT"
    ):
        raise click.UsageError(
            f"{name!r} is not a plug name: use letters, digits, _ and - in /-separated parts "
            "that start with a letter or digit, e.g. chat/send"
        )
    module = project / "plugs" / f"{name}.py"
    ident = re.sub(r"\W", "_", name)
    test = project / "tests" / f"test_plug_{ident}.py"
    for path in (module, test):
        if path.exists():
            raise click.ClickException(f"{path} already exists")
    module.parent.mkdir(parents=True, exist_ok=True)
    test.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(render("plug_module.py.tmpl", event=name))
    test.write_text(render("plug_test.py.tmpl", event=name, ident=ident))
    click.echo(f"created {module} (the event {name!r}) and {test}")
