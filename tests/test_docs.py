"""The documentation stays true: its Python examples run, and api.md names every public name."""
import inspect
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import tapegrad as tg
from tapegrad import viz

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [p for p in [ROOT / "README.md"] if p.exists()]
FENCE = re.compile(r"^```(?:python|py)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)

# Runs each block in one namespace; blank lines in front keep tracebacks on the .md's lines.
RUNNER = """
import json, sys
ns = {"__name__": "__main__"}
for path, line, code in json.load(sys.stdin):
    exec(compile("\\n" * (line - 1) + code, path, "exec"), ns)
"""


def python_blocks(path):
    """(first line number, code) of each ```python block in a Markdown file."""
    text = path.read_text()
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in FENCE.finditer(text)]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_python_blocks_run(path, tmp_path):
    blocks = [(str(path), line, code) for line, code in python_blocks(path)]
    p = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(blocks), cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{path.name}: an example failed\n{p.stderr}"


def test_fence_parser_finds_the_tutorial_examples():
    blocks = python_blocks(ROOT / "docs" / "tutorial.md")
    assert len(blocks) >= 8
    assert blocks[0][1].startswith("import tapegrad as torch")


def _public(module, own_only=True):
    names = set()
    for name, obj in vars(module).items():
        if name.startswith("_") or isinstance(obj, types.ModuleType):
            continue
        if own_only and getattr(obj, "__module__", None) != module.__name__:
            continue
        if own_only and not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        names.add(name)
    return names


def test_api_md_names_every_public_name():
    text = re.sub(r"^```.*?^```", "", (ROOT / "docs" / "api.md").read_text(), flags=re.S | re.M)
    mentioned = set()
    for span in re.findall(r"`([^`]+)`", text):
        mentioned.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span))
    public = (_public(tg, own_only=False) | _public(tg.autograd, own_only=False)
              | _public(tg.utils.checkpoint, own_only=True) | _public(tg.nn.functional)
              | _public(tg.nn, own_only=False) | _public(tg.nn.init)
              | _public(tg.optim, own_only=False) | _public(tg.optim.lr_scheduler)
              | _public(tg.utils.data, own_only=False)
              | _public(tg.linalg, own_only=False)
              | _public(tg.distributed, own_only=False) | _public(tg.nn.parallel, own_only=False)
              | {n for n in dir(tg.Tensor) if not n.startswith("_")} | _public(viz))
    missing = sorted(public - mentioned)
    assert not missing, f"docs/api.md does not mention: {', '.join(missing)}"


DOCTESTED = ["tapegrad", "tapegrad.tensor", "tapegrad.grad_mode", "tapegrad.creation",
             "tapegrad.autograd.engine", "tapegrad.autograd.function",
             "tapegrad.autograd.gradcheck", "tapegrad.autograd.functional", "tapegrad.replay",
             "tapegrad.func", "tapegrad.viz", "tapegrad.ops.composite",
             "tapegrad.ops.selection", "tapegrad.ops.shapes", "tapegrad.ops.predicates",
             "tapegrad.ops.arithmetic",
             "tapegrad.utils.checkpoint", "tapegrad.utils.data.distributed",
             "tapegrad.nn.parameter", "tapegrad.nn.init",
             "tapegrad.nn.modules.module", "tapegrad.nn.modules.container",
             "tapegrad.nn.modules.linear", "tapegrad.nn.modules.activation",
             "tapegrad.nn.modules.flatten", "tapegrad.nn.modules.dropout",
             "tapegrad.nn.modules.sparse", "tapegrad.nn.modules.normalization",
             "tapegrad.nn.modules.loss", "tapegrad.optim.optimizer", "tapegrad.optim.sgd",
             "tapegrad.optim.adam", "tapegrad.optim.rmsprop", "tapegrad.optim.adagrad",
             "tapegrad.optim.lr_scheduler", "tapegrad.serialization",
             "tapegrad.utils.data.dataset", "tapegrad.utils.data.sampler",
             "tapegrad.utils.data.dataloader"]


@pytest.mark.parametrize("module", DOCTESTED)
def test_docstring_examples_run(module):
    import doctest
    import importlib
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{module} lost its docstring examples"
    assert result.failed == 0, f"{result.failed} docstring example(s) in {module} failed"
