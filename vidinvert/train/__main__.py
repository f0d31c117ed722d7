"""``python -m vidinvert.train ARGS`` == ``vidinvert train ARGS`` (handy under ``torchrun -m``)."""

from __future__ import annotations

import sys


def _main() -> None:
    from vidinvert.cli.app import entry

    entry(["train", *sys.argv[1:]])


if __name__ == "__main__":
    _main()
