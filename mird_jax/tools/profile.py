"""`run.py --mode=profile`: where the train step's time goes, per model component.

The compiled step runs a few times under the JAX profiler; every op event of the trace
(an XLA thunk on a CPU, a kernel on a GPU) is matched to its HLO instruction, and the
instruction's op_name (the Flax module path and the step's named scopes) to a component.
Times are self times (an event's duration less the events nested in it), summed over the
threads that run ops, per step; the share is of that sum. On a CPU, XLA runs independent
ops on several threads at once, so the thread time is compared with the wall time too.
  python run.py --config=configs/mosi_paper.py --mode=profile --config.bert.pretrained=False \
    --config.bert.random.num_layers=2 --config.data.batch_size=8
"""

import collections
import glob
import re
import statistics
import tempfile
import time

import jax

from mird_jax.models import factory
from mird_jax.tools import benchmark
from mird_jax.tools import flops as flops_lib
from mird_jax.training import sharding

# (regex on the op_name, component), first match wins. Estimator updates come first, so
# that their refreshed forwards (club.refresh_latents) count as theirs; random bits next,
# so that every module's dropout masks are one line.
COMPONENTS = (
    (r"estimator_updates", "estimator updates"),
    (r"_bernoulli|threefry|random_bits|_uniform|random_wrap|random_fold", "dropout random bits"),
    (r"main_update", "optimiser update"),
    (r"/bert_l[/.]", "BERT_l (text)"),
    (r"/bert_s[/.]", "BERT_s (agnostic)"),
    (r"/fusion[/.]", "WSA fusion"),
    (r"/enc_audio[/.]", "audio encoder"),
    (r"/enc_vision[/.]", "vision encoder"),
    (r"/dec_text[/.]", "text LSTM decoder"),
    (r"/dec_audio[/.]", "audio LSTM decoder"),
    (r"/dec_vision[/.]", "vision LSTM decoder"),
    (r"/(mib|enc_|bottleneck|dec_|pred_)", "MIB modules"),
    (r"/(proj_|reg_|latent_dropout)", "projections, regressor"),
    (r"losses|log_softmax|logsumexp", "losses"),
)
RUNTIME = "XLA runtime (dispatch)"
COPIES = "copies XLA inserted (layouts)"
OTHER = "other (outside any module)"

_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = ")
_OP_NAME = re.compile(r"metadata=\{op_name=\"([^\"]*)\"")


def op_names(hlo_text: str) -> dict[str, str]:
  """{HLO instruction name: its op_name} of a compiled program's HLO text; "" for the
  instructions XLA added itself (copies for layouts, mostly), which have none."""
  names = {}
  for line in hlo_text.splitlines():
    m = _INSTRUCTION.match(line)
    if m:
      op = _OP_NAME.search(line)
      names[m.group(1)] = op.group(1) if op else ""
  return names


def classify(op_name: str) -> tuple[str, str]:
  """(component, phase) of an op_name; phase is backward inside a transpose, forward
  inside a jvp, else other."""
  if not op_name:
    return COPIES, "other"
  component = next((c for pattern, c in COMPONENTS if re.search(pattern, op_name)), OTHER)
  phase = ("backward" if "transpose(" in op_name else "forward" if "jvp(" in op_name
           else "other")
  return component, phase


def _self_times(events) -> tuple[dict[str, int], dict[str, int]]:
  """({event name: self time in ns}, {event name: how many}) of one thread's events
  (nested ones subtracted from their parent's time)."""
  times, counts = collections.Counter(), collections.Counter()
  stack = []  # (end_ns, name) of the enclosing events.
  for start, end, name in sorted(events, key=lambda e: (e[0], -e[1])):
    while stack and stack[-1][0] <= start:
      stack.pop()
    times[name] += end - start
    counts[name] += 1
    if stack:
      times[stack[-1][1]] -= end - start
    stack.append((end, name))
  return times, counts


def _op_events(profile_data):
  """Per thread (line), the (start, end, HLO op name) of its op events; CPU ops are named
  by their instruction, GPU kernels carry it in an `hlo_op` stat."""
  threads = []
  for plane in profile_data.planes:
    device = plane.name.startswith("/device:")
    if not (device or plane.name == "/host:CPU"):
      continue
    for line in plane.lines:
      # On a CPU, XLA's ops run on its thread pools' lines ("tf_XLA..."); the others are
      # Python and the client's dispatch.
      if not device and not line.name.startswith("tf_"):
        continue
      events = []
      for e in line.events:
        name = e.name
        if device:
          name = next((str(v) for k, v in e.stats if k == "hlo_op"), None)
          if name is None:
            continue
        elif "wait" in name:  # The client thread waiting on the executor: not work.
          continue
        events.append((e.start_ns, e.end_ns, name))
      if events:
        threads.append(events)
  return threads


def attribute(threads, names: dict[str, str], flops: dict[str, float], steps: int) -> dict:
  """{"ms": {(component, phase): ms per step}, "matmul_ms", "matmul_flops": {component:
  per step, of its events that run matmuls}, "unmatched": {name: ms per step of events
  that match no HLO instruction}} of the traced op events."""
  out = {k: collections.Counter() for k in ("ms", "matmul_ms", "matmul_flops", "unmatched")}
  for events in threads:
    times, counts = _self_times(events)
    for name, ns in times.items():
      ms = ns / 1e6 / steps
      if name in names:
        key = classify(names[name])
      elif name.startswith("ThunkExecutor"):
        key = (RUNTIME, "other")
      else:
        key = (OTHER, "other")
        out["unmatched"][name] += ms
      out["ms"][key] += ms
      if flops.get(name):
        out["matmul_ms"][key[0]] += ms
        out["matmul_flops"][key[0]] += flops[name] * counts[name] / steps
  return {k: dict(v) for k, v in out.items()}


def profile(compiled, state, batch, unlabeled, steps: int = 3) -> dict:
  """Times `steps` runs of `compiled` (the jitted train step, compiled) after two warm-up
  runs, then traces `steps` more under the profiler (which slows them); returns
  attribute()'s dict with "wall_ms" (the untraced median), "threads" and "state"."""
  hlo = compiled.as_text()
  names, flops = op_names(hlo), flops_lib.instruction_flops(hlo)
  times = []
  for i in range(steps + 2):
    t = time.perf_counter()
    state, metrics = compiled(state, batch, unlabeled)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t)
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir):
      for _ in range(steps):
        state, metrics = compiled(state, batch, unlabeled)
        jax.block_until_ready((state, metrics))
    files = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
    if not files:
      raise RuntimeError(f"the profiler wrote no trace under {trace_dir}")
    threads = _op_events(jax.profiler.ProfileData.from_file(files[0]))
  return {**attribute(threads, names, flops, steps),
          "wall_ms": statistics.median(times[2:]) * 1e3, "threads": len(threads),
          "state": state}


def text(result: dict, title: str) -> str:
  """The profile as a markdown table: per component its forward, backward and other ms,
  their total and share, and the time and FLOP/s of its events that run matmuls."""
  by_component = collections.defaultdict(dict)
  for (component, phase), ms in result["ms"].items():
    by_component[component][phase] = ms
  total = sum(result["ms"].values())
  flops = sum(result["matmul_flops"].values())
  lines = [title, "",
           f"wall time per step {result['wall_ms']:.1f} ms (untraced median); op time per "
           f"traced step, summed over {result['threads']} threads: {total:.1f} ms, of which "
           f"matmuls {sum(result['matmul_ms'].values()):.1f} ms ({flops:.3g} FLOPs)",
           "", "| component | forward ms | backward ms | other ms | total ms | share | "
           "matmul ms | matmul GFLOP/s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
  for component, phases in sorted(by_component.items(), key=lambda kv: -sum(kv[1].values())):
    ms, mm_ms = sum(phases.values()), result["matmul_ms"].get(component, 0.0)
    rate = (f"{result['matmul_flops'][component] / mm_ms / 1e6:.1f}" if mm_ms > 0 else "")
    lines.append(f"| {component} | {phases.get('forward', 0):.1f} | "
                 f"{phases.get('backward', 0):.1f} | {phases.get('other', 0):.1f} | "
                 f"{ms:.1f} | {100 * ms / total:.1f}% | {mm_ms:.1f} | {rate} |")
  top = sorted(result["unmatched"].items(), key=lambda kv: -kv[1])[:5]
  if top:
    lines += ["", "events matching no HLO instruction (ms per step): " +
              ", ".join(f"{name} {ms:.1f}" for name, ms in top)]
  return "\n".join(lines)


def report(config, *, mesh=None, steps: int = 3) -> str:
  """`--mode=profile`: the per-component table of the configured step on `mesh` (default:
  every device) with random inputs, as benchmark.py times it."""
  mesh = mesh if mesh is not None else sharding.mesh_for(config)
  compiled, state, batch, unlabeled, _ = benchmark.compile_step(config, mesh)
  result = profile(compiled, state, batch, unlabeled, steps=steps)
  return text(result, f"train_step ({factory.label(config)}, {config.model.dtype}) on "
                      f"{mesh.devices.size} {mesh.devices.flat[0].platform} device(s), batch "
                      f"{config.data.batch_size} labelled + {unlabeled_rows(unlabeled)} "
                      "unlabelled")


def unlabeled_rows(unlabeled) -> int:
  return 0 if unlabeled is None else int(unlabeled["audio"].shape[0])
