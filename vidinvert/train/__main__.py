"""``python -m vidinvert.train ARGS`` == ``vidinvert train ARGS`` (handy under ``torchrun -m``)."""

from __future__ import annotations

import sys


def _main() -> None:
    from vidinvert.cli import app as cli

    if not any(g.name == "train" for g in cli.app.registered_groups):
        from vidinvert.cli import train_cmd

        train_cmd.register(cli.app)
    cli.entry(["train", *sys.argv[1:]])


if __name__ == "__main__":
    _main()
