"""Optimizer parameter groups from ordered (regex, group) rules on "a/b/kernel" paths.

The first rule whose regex fully matches a parameter's path names its group; a parameter
that no rule matches is an error (never a silent default).
"""

import re

import flax
import numpy as np


def label_tree(params, rules):
  """A tree shaped like `params` whose leaves are group names."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  compiled = [(re.compile(pattern), group) for pattern, group in rules]
  labels, unmatched = {}, []
  for path in flat:
    group = next((g for r, g in compiled if r.fullmatch(path)), None)
    if group is None:
      unmatched.append(path)
    labels[path] = group
  if unmatched:
    raise ValueError(f"{len(unmatched)} parameters match no rule of optim.groups "
                     f"{[p for p, _ in rules]}, e.g. {unmatched[:3]}")
  return flax.traverse_util.unflatten_dict(labels, sep="/")


def counts(params, rules) -> dict[str, int]:
  """Number of scalar parameters per group, in rule order."""
  flat_params = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  flat_labels = flax.traverse_util.flatten_dict(label_tree(params, rules), sep="/")
  out = {group: 0 for _, group in rules}
  for path, value in flat_params.items():
    out[flat_labels[path]] += int(np.prod(value.shape))
  return out


def assignment_summary(params, rules) -> str:
  """One line per top-level module: its group(s), for the start-up log."""
  flat = flax.traverse_util.flatten_dict(label_tree(params, rules), sep="/")
  by_module: dict[str, set[str]] = {}
  for path, group in flat.items():
    by_module.setdefault(path.split("/")[0], set()).add(group)
  return "\n".join(f"  {m}: {', '.join(sorted(g))}" for m, g in sorted(by_module.items()))
