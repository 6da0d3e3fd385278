"""One JAX process of tests/test_multihost.py: a global train step on the demo smoke config,
each process feeding its own share of the batch, then an evaluation gathered from all
processes. Usage: worker.py PORT NUM_PROCESSES ID WORKDIR OUT"""

import json
import pathlib
import sys

import jax
import numpy as np


def main(port, num_processes, process_id, workdir, out):
  if num_processes > 1:
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}",
                               num_processes=num_processes, process_id=process_id)
  from configs import demo  # pylint: disable=g-import-not-at-top  # After initialize().
  from mird_jax import experiment  # pylint: disable=g-import-not-at-top
  config = demo.get_config("smoke")
  exp = experiment.build(config, workdir)
  state = exp.initial_state()
  host_batch = next(exp.streams.train.iterator(0))
  batch = exp.to_device(host_batch)
  unlabeled = exp.to_device(next(exp.streams.unlabeled.iterator(0)))
  state, step_metrics = exp.train_step(state, batch, unlabeled)
  # Params are replicated: this process's copy is the global value.
  leaves = [np.asarray(x.addressable_shards[0].data) for x in jax.tree.leaves(state.params)]
  result, (preds, _, ids) = experiment.evaluate(exp, state.params, "valid")
  record = {"devices": jax.device_count(), "ids": sorted(map(str, host_batch["id"])),
            "loss": float(step_metrics["loss"]),
            "param_sums": [float(np.abs(x).sum()) for x in leaves],
            "metrics": result, "preds": preds.tolist(), "eval_ids": ids}
  pathlib.Path(f"{out}.{process_id}").write_text(json.dumps(record))


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
