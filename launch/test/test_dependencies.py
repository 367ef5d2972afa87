"""Dependencies run one way, and each package.xml declares what its package imports.

Read from the sources (every import statement, also those inside functions), not from an import
run, so a lazy import that no test reaches still counts:

- description <- driver / policy / collect / teleop / viz <- launch (`dexndm`); training sits on top,
  and nothing in src/ or launch/ imports it (tests included: they run training as a subprocess).
- every other project package a module imports is an exec_depend (a test's: exec_ or test_depend);
  the project packages' exec_depends form no cycle.
- every third-party module is declared by its rosdep key; one without a key (PyPI only) or an
  optional one (imported under `except ImportError`) is named in a package.xml comment.
"""
from __future__ import annotations

import ast
import functools
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = {ET.parse(xml).getroot().findtext("name"): xml.parent
                for xml in sorted([*ROOT.glob("src/*/package.xml"), ROOT / "launch" / "package.xml"])}
TRAINING = "dexndm_training"

#: Import name -> rosdep key (ros/rosdistro rosdep/python.yaml).
ROSDEP_KEYS = {
    "numpy": "python3-numpy", "scipy": "python3-scipy", "matplotlib": "python3-matplotlib", "PIL": "python3-pil",
    "tqdm": "python3-tqdm", "torch": "python3-torch", "pytest": "python3-pytest", "serial": "python3-serial",
    "aiohttp": "python3-aiohttp", "cryptography": "python3-cryptography",
    "mujoco": "python3-mujoco-pip", "onnxruntime": "python3-onnxruntime-pip", "rosbags": "python3-rosbags-pip",
}
#: Import name -> PyPI name, for modules rosdep has no key for.
PYPI_ONLY = {"rerun": "rerun-sdk", "pyarrow": "pyarrow", "onnx": "onnx", "yarl": "yarl"}


def helper_modules() -> dict[str, str]:
    """Modules beside the tests (dynamics_fixture, lockstep_hand, ...) -> the package whose test dir holds them."""
    helpers = {}
    for name, pkg in PACKAGE_DIRS.items():
        for path in (pkg / "test").glob("*"):
            if path.suffix == ".py" or (path / "__init__.py").is_file():
                helpers[path.stem] = name
    return helpers


@functools.cache
def imports(pkg: Path, tests: bool) -> dict[str, dict[str, set[str]]]:
    """{'required' | 'optional': {top-level module: files}} of a package's runtime or test sources (parsed
    once per module: the tests below ask for the same package many times; callers must not modify it)."""
    found: dict[str, dict[str, set[str]]] = {"required": {}, "optional": {}}
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg)
        if rel.name == "setup.py" or "node_modules" in rel.parts or (rel.parts[0] == "test") != tests:
            continue
        tree = ast.parse(path.read_text(), str(path))
        optional = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
                optional.update(id(n) for stmt in node.body for n in ast.walk(stmt))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            kind = "optional" if id(node) in optional else "required"
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "__future__":
                    found[kind].setdefault(top, set()).add(str(rel))
    return found


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names)


def declared(pkg: Path) -> tuple[dict[str, set[str]], str]:
    """({'exec': keys, 'test': keys}, the text of every comment) of a package.xml."""
    root = ET.parse(pkg / "package.xml").getroot()
    deps = {"exec": set(), "test": set()}
    for tag, kinds in (("depend", ("exec", "test")), ("exec_depend", ("exec",)), ("test_depend", ("test",))):
        for element in root.iter(tag):
            for kind in kinds:
                deps[kind].add(element.text.strip())
    comments = " ".join(re.findall(r"<!--(.*?)-->", (pkg / "package.xml").read_text(), re.S))
    return deps, comments


def key_of(module: str, helpers: dict[str, str]) -> str:
    """The package.xml name for an imported top-level module (ROS packages are imported by their name)."""
    return ROSDEP_KEYS.get(module) or helpers.get(module) or module


def undeclared(name: str, tests: bool) -> list[str]:
    pkg, helpers = PACKAGE_DIRS[name], helper_modules()
    deps, comments = declared(pkg)
    allowed = deps["exec"] | (deps["test"] if tests else set()) | {name}
    found = imports(pkg, tests)
    missing = []
    for module, files in sorted(found["required"].items()):
        where = f"{module} (imported by {', '.join(sorted(files)[:3])})"
        if module in PYPI_ONLY:
            if not re.search(rf"\b{re.escape(PYPI_ONLY[module])}\b", comments):
                missing.append(f"{where}: no rosdep key; name {PYPI_ONLY[module]} in a package.xml comment")
        elif module != TRAINING and key_of(module, helpers) not in allowed:
            missing.append(f"{where}: add <{'test' if tests else 'exec'}_depend>{key_of(module, helpers)}</...>")
    for module, files in sorted(found["optional"].items()):
        if key_of(module, helpers) not in allowed and not re.search(rf"\b{re.escape(module)}\b", comments):
            missing.append(f"{module} (optional, in {', '.join(sorted(files))}): name it in a package.xml comment")
    return missing


@pytest.mark.parametrize("name", sorted(PACKAGE_DIRS))
@pytest.mark.parametrize("tests", [False, True], ids=["runtime", "tests"])
def test_package_xml_declares_every_import(name, tests):
    missing = undeclared(name, tests)
    assert not missing, f"{name}/package.xml:\n" + "\n".join(missing)


def test_the_import_scan_sees_lazy_optional_and_test_imports():
    """The scan itself: without it finding these, the tests above would pass on nothing."""
    policy = imports(PACKAGE_DIRS["dexndm_policy"], tests=False)["required"]
    assert {"onnxruntime", "rclpy", "dexndm_description", "matplotlib"} <= set(policy)  # matplotlib: lazy, in a function
    assert "franka_msgs" in imports(PACKAGE_DIRS["dexndm_teleop"], tests=False)["optional"]
    assert "dynamics_fixture" in imports(PACKAGE_DIRS["dexndm"], tests=True)["required"]
    assert helper_modules()["dynamics_fixture"] == "dexndm_policy"


def test_nothing_in_src_or_launch_imports_training():
    offenders = {f"{name}/{f}" for name, pkg in PACKAGE_DIRS.items() for tests in (False, True)
                 for f in imports(pkg, tests)["required"].get(TRAINING, set()) | imports(pkg, tests)["optional"].get(TRAINING, set())}
    assert offenders == set(), "training sits on top: move what imports it into training/"


def test_description_imports_no_other_project_package():
    project = set(PACKAGE_DIRS) - {"dexndm_description"} | {TRAINING}
    found = imports(PACKAGE_DIRS["dexndm_description"], tests=False)
    assert project & (set(found["required"]) | set(found["optional"])) == set()


def test_only_launch_imports_the_launch_package():
    users = {name for name, pkg in PACKAGE_DIRS.items() if name != "dexndm" for tests in (False, True)
             if "dexndm" in imports(pkg, tests)["required"]}
    assert users == set()


def test_project_packages_depend_on_each_other_without_a_cycle():
    graph = {name: declared(pkg)[0]["exec"] & set(PACKAGE_DIRS) - {name} for name, pkg in PACKAGE_DIRS.items()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join(path + (name,))}"
        if name not in done:
            for dep in sorted(graph[name]):
                visit(dep, path + (name,))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())
    assert "dexndm_description" in graph["dexndm_policy"] and graph["dexndm_description"] <= {"dexndm_msgs"}
