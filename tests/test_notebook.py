"""The quickstart notebook runs top to bottom (tiny random models), so it cannot rot."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "strength 0 keeps F exactly: True" in outputs
    assert "edited clip: 8 frames, 176 x 144 with audio" in outputs
    assert "'edited': 8" in outputs
    assert "clip.mp4 -> {'smile': 'clip.smile.mp4'} ok" in outputs  # the library call of the CLI
    assert "astronaut.png -> {'smile': 'astronaut.smile.png'} ok" in outputs
