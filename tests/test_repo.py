"""The repository itself: one-way imports, self-contained docs, a README that claims only
what exists."""

import ast
import pathlib
import re
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[1]
TOP_DIRS = ("mird_jax/", "configs/", "data_pipelines/", "tests/", "notebooks/", "docs/")


def _tracked() -> list[pathlib.Path]:
  out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
  if out.returncode == 0 and out.stdout.strip():
    return [REPO / line for line in out.stdout.splitlines()]
  return [p for p in REPO.rglob("*") if p.is_file() and ".venv" not in p.parts
          and ".git" not in p.parts]


def _imports(path: pathlib.Path) -> set[str]:
  tree = ast.parse(path.read_text(), str(path))
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
  return names


def test_data_pipelines_never_import_mird_jax():
  for path in sorted((REPO / "data_pipelines").glob("*.py")):
    bad = {m for m in _imports(path) if m == "mird_jax" or m.startswith("mird_jax.")}
    assert not bad, f"{path.name} imports {sorted(bad)}: data flows one way"


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


def test_docs_exist_and_the_readme_links_them():
  readme = (REPO / "README.md").read_text()
  for name in ("design.md", "metrics.md", "data.md", "differences.md"):
    assert (REPO / "docs" / name).is_file(), name
    assert f"docs/{name}" in readme, name
