"""The Colab notebook runs headless, end to end, in its SMOKE mode (the synthetic smoke
config on CPU): every cell, a rerun of the training cell (what a user does after a
disconnect), and the device check refusing a CPU when a TPU was asked for."""

import json
import pathlib
import sys

import nbclient
import nbformat
import pytest

NOTEBOOK = pathlib.Path(__file__).parents[2] / "notebooks" / "mird_colab_tpu.ipynb"


def _code(source: str):
  return nbformat.v4.new_code_cell(source)


def _text(cell) -> str:
  return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _cell(nb, startswith: str) -> int:
  (index,) = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
              and any(line.startswith(startswith) for line in c.source.splitlines())]
  return index


def test_the_committed_notebook_has_no_outputs():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  for cell in nb.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
  assert [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]


def _kernel(tmp_path, monkeypatch) -> str:
  """A kernel spec for this interpreter, found first: a "python3" spec elsewhere on the
  machine could start another Python without the project's packages."""
  spec = tmp_path / "jupyter" / "kernels" / "mird_jax_test"
  spec.mkdir(parents=True)
  (spec / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "mird-jax tests", "language": "python"}))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  return spec.name


def test_notebook_runs_headless_in_smoke_mode(tmp_path, monkeypatch):
  nb = nbformat.read(NOTEBOOK, as_version=4)
  (params,) = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
  workdir = tmp_path / "work"
  # What papermill does with -p: a cell of new values right after the parameter cell.
  nb.cells.insert(params + 1, _code(f"SMOKE = True\nWORKDIR = {str(workdir)!r}"))
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name=_kernel(tmp_path, monkeypatch),
                                   resources={"metadata": {"path": str(NOTEBOOK.parent)}})
  with client.setup_kernel():
    for index, cell in enumerate(nb.cells):
      client.execute_cell(cell, index)
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["seeds"] == [0]
    lines = (workdir / "seed_0" / "metrics.jsonl").read_text()
    # The restore cell printed the best checkpoints' test MAE beside the recorded one.
    restore = nb.cells[_cell(nb, "restored = {}")]
    recorded = json.loads((workdir / "seed_0" / "results.json").read_text())["test"]
    assert f"seed 0: test MAE {recorded['MAE']:.4f} (run recorded {recorded['MAE']:.4f})" \
        in _text(restore)
    plot = nb.cells[_cell(nb, "fig, ax = plt.subplots")]
    assert sum(o.output_type == "display_data" and "image/png" in o.data
               for o in plot.outputs) == 1  # The MAE plot (SMOKE draws no curves.png).
    # Rerunning the training cell trains nothing again and rewrites the same summary.
    train_cell = _cell(nb, 'mird_main.run(config, WORKDIR, "multiseed")')
    client.execute_cell(nb.cells[train_cell], train_cell)
    assert json.loads((workdir / "summary.json").read_text()) == summary
    assert (workdir / "seed_0" / "metrics.jsonl").read_text() == lines
    # A TPU asked for on a CPU-only runtime stops at the device check, with the fix.
    check = _cell(nb, "devices = jax.devices()")
    nb.cells.append(_code('ACCELERATOR = "tpu"'))
    client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
    with pytest.raises(nbclient.exceptions.CellExecutionError,
                       match=r"ACCELERATOR = 'tpu' was asked for, but JAX runs on 'cpu'"):
      client.execute_cell(nb.cells[check], check)
