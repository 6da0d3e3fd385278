"""Huge pages for run.py: the environment it sets, and the re-execution that applies it."""

import os
import subprocess
import sys

import pytest

from mird_jax import huge_pages


def test_huge_pages_environment():
  env = huge_pages.environment({"PATH": "/bin"})
  assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
  kept = huge_pages.environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
  assert kept["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
  # A user's own choice, =0 included, is left alone: no re-execution.
  assert huge_pages.environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="re-executes on Linux only")
def test_reexec_sets_the_tunable_once():
  code = ("import os; from mird_jax import huge_pages; huge_pages.reexec_with_huge_pages(); "
          "print(os.environ['GLIBC_TUNABLES'])")
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       check=True, timeout=60)
  assert out.stdout.strip() == "glibc.malloc.hugetlb=1"
