"""``engine dev MODULE [--port N]``: the workbench served on 127.0.0.1 only."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from engine.settings import Settings

LOCAL = "127.0.0.1"


@click.command()
@click.argument("module", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on.")
def dev(module: Path, port: int) -> None:
    """A workbench for MODULE in the browser: live problems, sign in, resource tree.

    Serves the module API and the author's page on 127.0.0.1 only (never another address);
    module.yaml and hooks.py are reloaded as they change on disk.
    """
    import uvicorn

    from engine import logs
    from engine.workbench.app import create_workbench

    # local use: the page calls the module API from the same origin, with no engine token
    settings = replace(Settings.from_env(), api_token=None)
    logs.configure(settings.log_level)
    app = create_workbench(module.resolve(), settings)
    click.echo(f"engine dev: {module} on http://{LOCAL}:{port}/ (listening on {LOCAL} only)")
    uvicorn.run(app, host=LOCAL, port=port, log_config=None, access_log=False)
