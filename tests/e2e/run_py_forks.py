"""run.py's entry point, once per request, each in a fresh process forked from this one.

tests/e2e/test_cli.py checks how run.py stops on bad input: its exit status and every line
it prints. A new interpreter for each case spends most of its time importing what run.py
imports (absl, ml_collections, NumPy); this process imports it once, then forks a child
per case, which runs exactly what `python run.py ARGS` runs after its imports, with its
own stdout and stderr, exit status and working directory. The child inherits nothing
else: JAX is never imported here, and no thread has been started when it forks.

Protocol: one JSON request per line on stdin, {"argv": [...], "cwd": "..."}; one JSON
answer per line on stdout, {"returncode": int, "stdout": str, "stderr": str}. The first
answer line, {"ready": ..., "import_output": ...}, says what the imports printed (nothing).
"""

import io
import json
import os
import pathlib
import sys
import tempfile
import threading

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

answers = sys.stdout  # The children write to their own files, never here.
captured = io.StringIO()
sys.stdout = sys.stderr = captured
import run  # pylint: disable=g-import-not-at-top,wrong-import-position
sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
assert "jax" not in sys.modules, "run.py's imports must stay light"
print(json.dumps({"ready": threading.active_count(), "import_output": captured.getvalue()}),
      file=answers, flush=True)

for request in sys.stdin:
  request = json.loads(request)
  outs = [tempfile.TemporaryFile() for _ in range(2)]
  sys.stdout.flush()
  sys.stderr.flush()
  pid = os.fork()
  if pid == 0:  # The child: run.py's __main__ block, as `python run.py ARGV` runs it.
    os.chdir(request["cwd"])
    os.dup2(outs[0].fileno(), 1)
    os.dup2(outs[1].fileno(), 2)
    sys.argv = ["run.py", *request["argv"]]
    run.app.run(run._main, flags_parser=run._parse_flags)  # pylint: disable=protected-access
    os._exit(0)  # Not reached: app.run always exits; never go on with this loop.
  _, status = os.waitpid(pid, 0)
  texts = []
  for f in outs:
    f.seek(0)
    texts.append(f.read().decode())
    f.close()
  print(json.dumps({"returncode": os.waitstatus_to_exitcode(status), "stdout": texts[0],
                    "stderr": texts[1]}), file=answers, flush=True)
