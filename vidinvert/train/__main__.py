"""``python -m vidinvert.train ARGS`` == ``vidinvert train ARGS`` (handy under ``torchrun -m``)."""

from __future__ import annotations

import sys


def _main() -> int:
    from vidinvert.cli import app as cli

    if not any(g.name == "train" for g in cli.app.registered_groups):
        from vidinvert.cli import train_cmd

        train_cmd.register(cli.app)
    return cli.main(["train", *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(_main())
