"""``python -m vidinvert.train ARGS`` runs exactly ``vidinvert train ARGS`` (handy under ``torchrun -m``).

The CLI is imported only when this file runs as the program, never when ``vidinvert.train`` is
imported: the training library does not depend on the interface layer above it.
"""

if __name__ == "__main__":
    import sys

    # the console script's own entry point (exit code, clean exit of a torchrun rank)
    from vidinvert.cli.app import entry

    entry(["train", *sys.argv[1:]])
