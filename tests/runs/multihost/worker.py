"""One JAX process of tests/runs/test_multihost.py: one global train step of the suite's smoke
config, each process feeding its own share of the batch, then an evaluation gathered from
all processes. The initial train state comes from a file the test wrote (the suite's own
initial state), so the processes start where the one-device reference starts.
Usage: worker.py PORT NUM_PROCESSES ID WORKDIR STATE_PICKLE OUT MANUAL_DIR,DATA_DIR"""

import json
import pathlib
import pickle
import sys

import jax
import numpy as np


def main(port, num_processes, process_id, workdir, state_file, out, data_dirs):
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}",
                             num_processes=num_processes, process_id=process_id)
  # pylint: disable=g-import-not-at-top  # After initialize().
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
  from mird_jax.runs import experiment
  from smoke import smoke_config
  # pylint: enable=g-import-not-at-top
  config = smoke_config()
  # The dataset the test's own process built (read-only here): no generation, no build.
  config.data.manual_dir, config.data.data_dir = data_dirs.split(",")
  exp = experiment.build(config, workdir)
  with open(state_file, "rb") as f:  # Written by the test itself.
    host_state = pickle.load(f)
  # Every process holds the whole state: each places it on its own devices (device_put
  # would also compare every leaf across the processes, ~3 s of collectives here).
  state = jax.tree.map(lambda x: jax.make_array_from_callback(
      np.shape(x), exp.replicated, lambda index: np.asarray(x)[index]), host_state)
  host_batch = next(exp.streams.train.iterator(0))
  unlabeled = next(exp.streams.unlabeled.iterator(0))
  state, step_metrics = exp.train_step(state, exp.to_device(host_batch),
                                       exp.to_device(unlabeled))
  # Params are replicated: this process's copy is the global value.
  leaves = [np.asarray(x.addressable_shards[0].data) for x in jax.tree.leaves(state.params)]
  result, (preds, _, ids) = experiment.evaluate(exp, state.params, "valid")
  record = {"devices": exp.mesh.devices.size, "ids": sorted(map(str, host_batch["id"])),
            "loss": float(step_metrics["loss"]),
            "param_sums": [float(np.abs(x).sum()) for x in leaves],
            "metrics": result, "preds": preds.tolist(), "eval_ids": ids}
  pathlib.Path(f"{out}.{process_id}").write_text(json.dumps(record))


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:8])
