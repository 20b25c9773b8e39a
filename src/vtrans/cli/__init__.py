"""The ``vtrans`` command line (needs ``pip install 'vtrans[cli]'``, or ``[server]`` to serve)."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from vtrans.cli.commands import cli
    except ImportError as exc:  # the client-only install has no click/rich
        sys.exit(f"vtrans: the command line needs: pip install 'vtrans[cli]' ({exc.name} is missing)")
    cli()
