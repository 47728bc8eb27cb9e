"""environment.yml (conda) and pyproject.toml must name the same packages."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# conda-forge spells a few PyPI names differently; the left side is the PyPI name.
CONDA_ALIASES = {"torch": "pytorch"}
# Tools that belong to the conda environment itself, not to the Python package.
CONDA_ONLY = {"python", "pip"}


def _name(requirement: str) -> str:
    name = re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0]
    return name.lower().replace("_", "-")


def _pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    return {_name(r) for r in reqs}


def _environment_names() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names.update(_name(r) for r in dep.get("pip", []) if not r.startswith("-"))
        else:
            names.add(_name(dep))
    inverse = {v: k for k, v in CONDA_ALIASES.items()}
    return {inverse.get(n, n) for n in names} - CONDA_ONLY


def test_environment_yml_names_the_same_packages_as_pyproject():
    py, env = _pyproject_names(), _environment_names()
    assert py == env, f"only in pyproject: {sorted(py - env)}; only in environment.yml: {sorted(env - py)}"


def test_environment_yml_pins_python_311_and_torch():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip_reqs = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "torch==2.14.1" in pip_reqs and "torchvision==0.29.1" in pip_reqs


def test_ci_calls_make_test():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*make test\b", ci, re.M), ".ci/run must call `make test`"
