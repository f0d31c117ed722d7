"""The inversion benchmark (``vidinvert eval``): the paper's video table and figure, and its image table.

* :mod:`~vidinvert.evaluate.datasets`: which videos/images (RAVDESS modality rule, sampling).
* :mod:`~vidinvert.evaluate.suite`: the metrics between a source crop and its reconstruction.
* :mod:`~vidinvert.evaluate.video` / :mod:`~vidinvert.evaluate.images`: evaluate one video / images.
* :mod:`~vidinvert.evaluate.report`: CSV, summary JSON, Markdown table, box plot.
* torchrun sharding and the gather on rank 0 use :mod:`vidinvert.distributed`.
* :mod:`~vidinvert.evaluate.runner`: :func:`run_eval` ties them together (cache and ``--resume``).
"""

from __future__ import annotations

from vidinvert.evaluate.runner import EvalRun, run_eval

__all__ = ["EvalRun", "run_eval"]
