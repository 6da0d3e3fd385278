"""Test setup, before anything imports jax: 8 faked CPU devices, strict rank promotion,
cheap compiles, and one compilation cache for the whole session.

Compiling dominates the suite's time on a CPU, so: LLVM's optimisation is lowered, and
XLA's CPU fusion emitters are off (its older loop emitters compile the suite's programs in
about two thirds of the time; the golden values of tests/training/test_step.py hold to 1e-4
either way), and every compiled program is kept in a
per-session cache directory that subprocesses inherit (JAX_COMPILATION_CACHE_DIR), so a
program built twice, in two tests or two processes with the same devices, compiles once.
The session's first process makes the directory and removes it at the end; set
MIRD_JAX_TEST_XLA_CACHE to a directory of your own to keep the programs between sessions
(the cache keys hold the JAX version and the XLA flags). The summary line at the end says
how many of the pytest processes' compiles the cache served.
README's command runs the files in two pytest-xdist processes (`-n 2 --dist loadfile
--no-loadscope-reorder`), in the order of COSTLY_FIRST below: XLA compiles on one thread,
so two cores compile two programs at once. Each process builds its own session fixtures;
both share the cache directory.
"""

import collections
import json
import os
import pathlib
import shutil
import tempfile

from mird_jax import huge_pages  # Light: os and sys only.

FAST_COMPILE_XLA_FLAGS = ("--xla_backend_optimization_level=0 "
                          "--xla_llvm_disable_expensive_passes=true "
                          "--xla_cpu_use_fusion_emitters=false")
os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), FAST_COMPILE_XLA_FLAGS,
     "--xla_force_host_platform_device_count=8"]).strip()
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["HF_HUB_OFFLINE"] = "1"  # Nothing in the tests may reach the hub.
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# One cache for the session: pytest-xdist's workers inherit the first process's directory.
_MADE_CACHE = "MIRD_JAX_TEST_XLA_CACHE" not in os.environ
if _MADE_CACHE:
  os.environ["MIRD_JAX_TEST_XLA_CACHE"] = tempfile.mkdtemp(prefix="mird_jax_xla_cache_")
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["MIRD_JAX_TEST_XLA_CACHE"]
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
# Huge pages for the processes started from here (pytest-xdist's workers, run.py in
# subprocesses, which then need not re-execute themselves): mird_jax/huge_pages.py.
os.environ["GLIBC_TUNABLES"] = (huge_pages.environment(dict(os.environ)) or
                                os.environ)["GLIBC_TUNABLES"]

import jax  # noqa: E402  (must come after the environment above)

jax.config.update("jax_numpy_rank_promotion", "raise")

# What the compilation cache did in this process, written at its end for the summary line.
_COMPILES = collections.Counter()
# The session's first process makes the folder the others write their counts into.
_MADE_STATS = "MIRD_JAX_TEST_XLA_STATS" not in os.environ
if _MADE_STATS:
  os.environ["MIRD_JAX_TEST_XLA_STATS"] = tempfile.mkdtemp(prefix="mird_jax_xla_stats_")
_STATS_DIR = pathlib.Path(os.environ["MIRD_JAX_TEST_XLA_STATS"])


def _count_event(event, **kwargs):
  del kwargs
  if event.startswith("/jax/compilation_cache/"):
    _COMPILES[event.rsplit("/", 1)[1]] += 1


def _count_seconds(event, seconds, **kwargs):
  del kwargs
  if event in ("/jax/core/compile/backend_compile_duration",
               "/jax/compilation_cache/compile_time_saved_sec"):
    _COMPILES[event.rsplit("/", 1)[1]] += seconds


jax.monitoring.register_event_listener(_count_event)
jax.monitoring.register_event_duration_secs_listener(_count_seconds)

import pytest  # noqa: E402

from data_pipelines import synthetic  # noqa: E402
from smoke import smoke_config  # noqa: E402  pylint: disable=unused-import

# Small shapes shared by the data tests (MOSI-like dims, short sequences).
SMALL = dict(text_len=16, audio_len=24, audio_dim=5, vision_len=20, vision_dim=20,
             vocab_size=512)


@pytest.fixture(scope="session")
def small_spec():
  return synthetic.SyntheticSpec(n_train=40, n_valid=13, n_test=11, n_unlabeled=24, seed=3,
                                 neg_inf_frac=0.01, **SMALL)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory, small_spec):
  """Small MMSA-format synthetic files, written once per session (read-only for tests)."""
  out = tmp_path_factory.mktemp("synthetic")
  synthetic.write(small_spec, out)
  return out


@pytest.fixture(scope="session")
def tokenizer_dir(synthetic_dir, tmp_path_factory):
  """A WordPiece tokenizer over the synthetic vocabulary, saved like a pretrained one."""
  import transformers  # pylint: disable=g-import-not-at-top
  out = tmp_path_factory.mktemp("tokenizer")
  tok = transformers.BertTokenizerFast(vocab=str(synthetic_dir / "vocab.txt"),
                                       do_lower_case=True)
  tok.save_pretrained(str(out))
  return out


@pytest.fixture(scope="session")
def smoke_exp(tmp_path_factory):
  """An Experiment (data, model, jitted steps) for smoke_config() on one device, shared by
  every test that needs the default train step: it compiles once per session. One device
  because 8 faked ones on 2 cores run a step 4x slower; training/test_step.py checks that 8
  devices give the same step."""
  from mird_jax.runs import experiment  # pylint: disable=g-import-not-at-top
  from mird_jax.training import sharding  # pylint: disable=g-import-not-at-top
  return experiment.build(smoke_config(), tmp_path_factory.mktemp("smoke_exp"),
                          mesh=sharding.make_mesh(jax.devices()[:1]))


@pytest.fixture(scope="session")
def smoke_start(smoke_exp):
  """(initial state on the host, first train batch, first unlabelled batch), host arrays.

  The train step donates its state: tests put a fresh copy on the devices each time.
  """
  state = jax.device_get(smoke_exp.initial_state())
  batch = next(smoke_exp.streams.train.iterator(0))
  unlabeled = next(smoke_exp.streams.unlabeled.iterator(0))
  return state, batch, unlabeled


# The order in which pytest-xdist hands files to its two processes (README's command runs
# it with --no-loadscope-reorder, so this is the order): the costly files first, so that
# the processes finish together, the first two compiling different programs (the MIRD
# smoke step, the MIB variants) rather than the same one twice at once. (Longest first,
# with test_train_and_resume.py leading, measured 200 s against 176 s for this order:
# with both processes compiling at once, more of the programs are compiled twice.)
# Files not listed follow, in collection order. Seconds of CPU on the reference machine.
# test_sweep_workers.py follows the two first files: by then smoke_exp has put the
# programs its run.py processes compile into the session's cache.
COSTLY_FIRST = ("research/test_multiseed.py",  # 40
                "models/test_mib.py",  # 42
                "research/test_sweep_workers.py",  # 80, five run.py processes
                "runs/test_train_and_resume.py",  # 71, two run.py processes
                "research/test_sweep.py",  # 30
                "runs/test_multihost.py",  # 34, two processes
                "e2e/test_cli.py",  # 12
                "tools/test_benchmark.py",  # 6
                "tools/test_profile.py",  # 4
                "training/test_accumulate.py",  # 31
                "runs/test_length_buckets.py",  # 30
                "training/test_precision.py",  # 16
                "e2e/test_notebook.py",  # 17, a kernel
                "models/test_mird.py",  # 14
                "training/test_step.py")  # 8


def pytest_collection_modifyitems(items):
  here = os.path.dirname(os.path.abspath(__file__))
  gone = [name for name in COSTLY_FIRST if not os.path.isfile(os.path.join(here, name))]
  assert not gone, f"tests/conftest.py COSTLY_FIRST names files that do not exist: {gone}"
  rank = {name: i for i, name in enumerate(COSTLY_FIRST)}
  items.sort(key=lambda item: rank.get(
      os.path.relpath(item.path, here).replace(os.sep, "/"), len(rank)))


def pytest_sessionfinish(session):
  del session
  if not _MADE_STATS:  # A pytest-xdist worker: the first process reads them at its end.
    (_STATS_DIR / f"{os.getpid()}.json").write_text(json.dumps(_COMPILES))


def pytest_terminal_summary(terminalreporter):
  counts = [_COMPILES] + [json.loads(f.read_text()) for f in sorted(_STATS_DIR.glob("*.json"))]
  totals = collections.Counter()
  for c in counts:
    totals.update(c)
  asked, hits = totals["compile_requests_use_cache"], totals["cache_hits"]
  processes = sum(1 for c in counts if c.get("compile_requests_use_cache"))
  terminalreporter.write_line(
      f"XLA compilation cache: {hits} of the {asked} programs compiled in the {processes} "
      f"pytest processes came from it ({100 * hits / max(asked, 1):.0f}%, saving "
      f"{max(totals['compile_time_saved_sec'], 0):.0f} s; "
      f"{totals['backend_compile_duration']:.0f} s spent compiling or loading programs)")


def pytest_unconfigure(config):
  del config
  if _MADE_STATS:
    shutil.rmtree(_STATS_DIR, ignore_errors=True)
  if _MADE_CACHE:
    shutil.rmtree(os.environ["MIRD_JAX_TEST_XLA_CACHE"], ignore_errors=True)
