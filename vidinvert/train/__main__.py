"""``python -m vidinvert.train ARGS`` runs exactly ``vidinvert train ARGS`` (handy under ``torchrun -m``).

The CLI is imported only when this file runs as the program, never when ``vidinvert.train`` is
imported: the training library does not depend on the interface layer above it.
"""

if __name__ == "__main__":
    import sys

    from vidinvert.cli.app import (
        entry,  # the console script's own entry point (exit code, torchrun exit)
    )

    entry(["train", *sys.argv[1:]])
