"""The repository itself: one-way imports between the package's folders, a test file for
every module, self-contained docs, and docs, docstrings and comments that name only paths
that exist."""

import ast
import io
import pathlib
import re
import subprocess
import tokenize

REPO = pathlib.Path(__file__).resolve().parents[2]
TOP_DIRS = ("mird_jax/", "configs/", "data_pipelines/", "tests/", "notebooks/", "docs/")


def _tracked() -> list[pathlib.Path]:
  """The repository's files: tracked, and new ones not ignored."""
  out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                       cwd=REPO, capture_output=True, text=True)
  if out.returncode == 0 and out.stdout.strip():
    return [REPO / line for line in out.stdout.splitlines()]
  return [p for p in REPO.rglob("*") if p.is_file() and ".venv" not in p.parts
          and ".git" not in p.parts]


def _modules(folder: str) -> list[pathlib.Path]:
  return sorted(p for p in (REPO / folder).rglob("*.py") if p.name != "__init__.py")


def _dotted(path: pathlib.Path) -> str:
  return ".".join(path.relative_to(REPO).with_suffix("").parts)


def _imported(path: pathlib.Path) -> set[str]:
  """What `path` imports, as dotted names: `import a.b` gives a.b, `from a import b` a.b
  (a module or a name in one)."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      names |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      names |= {f"{node.module}.{a.name}" for a in node.names}
  return names


def _within(name: str, package: str) -> bool:
  return name == package or name.startswith(package + ".")


def test_no_source_file_is_ignored_by_git():
  """A pattern in .gitignore that catches a source file leaves it out of every clone."""
  out = subprocess.run(["git", "ls-files", "--others", "--ignored", "--exclude-standard",
                        *(d.rstrip("/") for d in TOP_DIRS), "run.py"],
                       cwd=REPO, capture_output=True, text=True)
  if out.returncode:  # Not a git checkout (an exported tree): nothing can be ignored.
    return
  ignored = [line for line in out.stdout.splitlines()
             if "__pycache__" not in line and not line.endswith(".pyc")]
  assert not ignored, f"ignored by .gitignore: {ignored}"


def test_data_pipelines_never_import_mird_jax():
  for path in _modules("data_pipelines"):
    bad = {m for m in _imported(path) if _within(m, "mird_jax")}
    assert not bad, f"{path.name} imports {sorted(bad)}: data flows one way"


# The package's floors, bottom first: a module imports only from floors below its own, or
# from its own folder. research/ and tools/ share a floor and never import each other.
FLOORS = {"mird_jax.evaluation": 0, "mird_jax.huge_pages": 0, "mird_jax.config_check": 1,
          "mird_jax.models": 2, "mird_jax.training": 3, "mird_jax.runs": 4,
          "mird_jax.research": 5, "mird_jax.tools": 5, "mird_jax.main": 6}


def _unit(module: str) -> str | None:
  """The floor unit (a folder or a top-level module) of a mird_jax module."""
  parts = module.split(".")
  for n in (2, 1):
    if ".".join(parts[:n]) in FLOORS:
      return ".".join(parts[:n])
  return None


def test_imports_go_one_way_between_the_folders_of_mird_jax():
  bad = []
  for path in _modules("mird_jax"):
    here = _unit(_dotted(path))
    assert here is not None, f"{path.relative_to(REPO)} is in no floor of FLOORS"
    for module in filter(lambda m: _within(m, "mird_jax"), _imported(path)):
      there = _unit(module)
      assert there is not None, f"{path.relative_to(REPO)} imports {module}, in no floor"
      if there != here and FLOORS[there] >= FLOORS[here]:
        bad.append(f"{path.relative_to(REPO)} ({here}) imports {module} ({there})")
  assert not bad, "\n".join(bad)


def test_only_the_factory_reads_configs_in_models_and_training_never_reads_files():
  bad = []
  for path in _modules("mird_jax/models"):
    config_readers = {m for m in _imported(path)
                      if _within(m, "ml_collections") or _within(m, "mird_jax.config_check")}
    if config_readers and path.name != "factory.py":
      bad.append(f"{path.relative_to(REPO)} imports {sorted(config_readers)}")
  for path in [*_modules("mird_jax/training"), *_modules("mird_jax/models")]:
    # The canonical example's keys and dims, and which installed encoder a bert.path names
    # (its vocabulary made the token ids; its weights read them).
    data = {m for m in _imported(path) if _within(m, "data_pipelines") and not any(
        _within(m, f"data_pipelines.{ok}") for ok in ("example", "encoders"))}
    if data:
      bad.append(f"{path.relative_to(REPO)} imports {sorted(data)}: only the canonical "
                 "example's keys and dims, and the installed encoders")
  for path in _modules("mird_jax/evaluation"):
    data = {m for m in _imported(path) if _within(m, "data_pipelines")}
    if data:
      bad.append(f"{path.relative_to(REPO)} imports {sorted(data)}")
  assert not bad, "\n".join(bad)


def test_only_main_imports_research_and_tools():
  bad = []
  for path in _modules("mird_jax"):
    here = _unit(_dotted(path))
    for module in filter(lambda m: _within(m, "mird_jax"), _imported(path)):
      there = _unit(module)
      if there in ("mird_jax.research", "mird_jax.tools") and here not in (
          there, "mird_jax.main"):
        bad.append(f"{path.relative_to(REPO)} imports {module}")
  assert not bad, "\n".join(bad)


def test_every_module_has_a_test_file_that_imports_it():
  imported = set().union(*map(_imported, (REPO / "tests").rglob("*.py")))
  modules = [_dotted(p) for p in [*_modules("mird_jax"), *_modules("data_pipelines")]]
  untested = [m for m in modules if not any(_within(i, m) for i in imported)]
  assert not untested, f"no test file imports {untested}"


def test_tests_mirror_the_package():
  folders = {p.name for p in (REPO / "mird_jax").iterdir() if (p / "__init__.py").is_file()}
  for folder in folders | {"data_pipelines", "e2e"}:
    assert list((REPO / "tests" / folder).glob("test_*.py")), f"tests/{folder}/ has no tests"
  names = [p.name for p in (REPO / "tests").rglob("test_*.py")]
  assert len(names) == len(set(names)), "test file names must be unique (pytest's imports)"


def test_nothing_points_outside_the_repository():
  # Built from parts, so this file does not itself name the folders it forbids.
  outside = ("/".join(("..", "shared")), "/".join(("shared", "spec", "")))
  pattern = re.compile("|".join(map(re.escape, outside)) +
                       r"|(?<![\w/])(mird_reference|mird_details|mib_reference|data_formats|"
                       r"club|environment)\.md")
  hits = []
  for path in _tracked():
    if path.suffix in (".py", ".md", ".txt", ".toml", ".cfg", "") and path.is_file():
      for i, line in enumerate(path.read_text(errors="ignore").splitlines(), 1):
        if pattern.search(line):
          hits.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
  assert not hits, "\n".join(hits)


def test_readme_and_docs_name_only_paths_that_exist():
  missing = []
  for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
    for token in re.findall(r"`([^`\s]+)`", doc.read_text()):
      path = token.split(":")[0].rstrip(".,")
      if path.startswith(TOP_DIRS) and not (REPO / path).exists():
        missing.append(f"{doc.name}: `{token}`")
  assert not missing, missing


_PATH = re.compile(r"(?<![\w./-])((?:%s)[\w./-]*\w)" % "|".join(map(re.escape, TOP_DIRS)))
_FILE_NAME = re.compile(r"(?<![\w./-])([a-z_][a-z0-9_]*\.py)\b")
_MODULE = re.compile(r"(?<![\w.])((?:mird_jax|data_pipelines)(?:\.[a-z_][a-z0-9_]*)+)")
# Files of the authors' code (and the CMU-SDK's fold lists) that the docs name; they are
# not in this repository.
_PUBLIC_FILES = {"run_training_recon_mim_sl.py", "cmib.py", "emib.py", "lmib.py",
                 "global_configs.py", "cmu_mosi_std_folds.py", "cmu_mosei_std_folds.py"}


def _prose(path: pathlib.Path):
  """(line, text) of a Markdown file's lines, or of a Python file's comments and
  docstrings."""
  text = path.read_text()
  if path.suffix == ".md":
    yield from enumerate(text.splitlines(), 1)
    return
  for tok in tokenize.generate_tokens(io.StringIO(text).readline):
    if tok.type == tokenize.COMMENT:
      yield tok.start[0], tok.string
  for node in ast.walk(ast.parse(text)):
    if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
      doc = ast.get_docstring(node, clean=False)
      if doc:
        first = node.body[0].lineno
        yield from ((first + i, line) for i, line in enumerate(doc.splitlines()))


def _module_exists(dotted: str) -> bool:
  """A dotted name names a module (what follows it may be an attribute); inside a package,
  each part must be a module or a package."""
  path = REPO
  for part in dotted.split("."):
    if (path / part / "__init__.py").is_file():
      path = path / part
    else:
      return (path / f"{part}.py").is_file()
  return True


def test_docs_docstrings_and_comments_name_only_files_and_modules_that_exist():
  """Every repository path, file name and module named in the docs, in a docstring or in
  a comment exists: a move that forgets one fails here."""
  files = _tracked()
  names = {p.name for p in files} | _PUBLIC_FILES
  missing = []
  for path in files:
    if path.suffix not in (".py", ".md") or not path.is_file():
      continue
    where = path.relative_to(REPO)
    for line_no, line in _prose(path):
      missing += [f"{where}:{line_no}: {p}" for p in _PATH.findall(line)
                  if not (REPO / p.rstrip(".")).exists()]
      missing += [f"{where}:{line_no}: {n}" for n in _FILE_NAME.findall(line)
                  if n not in names]
      missing += [f"{where}:{line_no}: {m}" for m in _MODULE.findall(line)
                  if not _module_exists(m)]
  assert not missing, "\n".join(missing)


def test_docs_exist_and_the_readme_links_them():
  readme = (REPO / "README.md").read_text()
  for name in ("design.md", "metrics.md", "data.md", "differences.md", "results.md"):
    assert (REPO / "docs" / name).is_file(), name
    assert f"docs/{name}" in readme, name


def test_ci_runs_the_readmes_test_command_verbatim():
  """.ci/run installs as README's (b) does and runs its pytest command unchanged (the
  slowest tests are added from the environment)."""
  readme = (REPO / "README.md").read_text()
  (line,) = [l for l in readme.splitlines() if "-m pytest" in l and l.startswith(".venv/")]
  pytest_command = ".venv/bin/python -m pytest" + line.split("/bin/python -m pytest", 1)[1]
  ci = (REPO / ".ci" / "run").read_text()
  assert pytest_command in ci.splitlines(), pytest_command
  assert 'PYTEST_ADDOPTS="--durations=15"' in ci
  for requirements in ("requirements.txt", "requirements-dev.txt", "requirements-nodeps.txt"):
    assert requirements in line and requirements in ci, requirements
