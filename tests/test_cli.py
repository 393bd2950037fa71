"""The ``tapegrad`` command (run as ``python -m tapegrad`` in a subprocess) and tapegrad.viz."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tapegrad as tg
from tapegrad import viz

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd, path=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    if path is not None:
        env["PATH"] = str(path)
    return subprocess.run([sys.executable, "-m", "tapegrad", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args", [[], ["demo"], ["train"], ["graph"], ["bench"]])
def test_help(args, tmp_path):
    p = run(*args, "--help", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "usage: tapegrad" in p.stdout


def test_demo_walks_through_the_tutorial(tmp_path):
    p = run("demo", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for text in ("z.grad_fn    = <AddBackward0>",
                 "loss.grad_fn = <BinaryCrossEntropyWithLogitsBackward0>",
                 "= matmul(%0, %1)  f32[3]  <MatmulBackward0>",
                 "= bce_with_logits(%4, %5)  f32[]", "w.grad =", "b.grad =",
                 "under no_grad(): z.requires_grad -> False",
                 "z.detach().requires_grad         -> False",
                 "a second backward() raises: Trying to backward through the graph"):
        assert text in out
    first, second, zeroed = out.split("inp.grad =")[1:]
    assert "[4., 2., 2., 2., 2.]" in first and "[8., 4., 4., 4., 4.]" in second
    assert "[4., 2., 2., 2., 2.]" in zeroed
    assert "Traceback" not in p.stderr
    assert run("demo", cwd=tmp_path).stdout == out      # seeded: the same every run


def _accuracy(stdout):
    return float(re.search(r"training accuracy ([\d.]+)%", stdout).group(1))


def test_train_learns_and_is_reproducible(tmp_path):
    args = ["train", "--epochs", "800", "--seed", "3"]
    a, b = run(*args, cwd=tmp_path), run(*args, cwd=tmp_path)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    assert _accuracy(a.stdout) >= 90.0
    assert "epoch 800/800 [" + "#" * 30 + "]" in a.stderr     # the progress bar, finished


def test_train_compiled_matches_eager(tmp_path):
    args = ["train", "--epochs", "300", "--seed", "1", "--dtype", "float64"]
    eager, compiled = run(*args, cwd=tmp_path), run(*args, "--compiled", cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    assert "; compiled" in compiled.stdout
    # float64: replay and eager agree to the printed digits
    assert eager.stdout.splitlines()[-1] == compiled.stdout.splitlines()[-1]


def test_train_float64_relu(tmp_path):
    p = run("train", "--dtype", "float64", "--activation", "relu", "--epochs", "20",
            "--width", "8", "--layers", "1", "--points", "50", "--momentum", "0", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "MLP 2-8-2 (relu, float64)" in p.stdout
    # two balanced classes: chance is 50%; this seeded run reaches 74%
    assert _accuracy(p.stdout) >= 65.0
    losses = [float(v) for v in re.findall(r"\] loss ([\d.]+)", p.stderr)]
    assert len(losses) == 10                       # the progress bar, every other epoch
    assert all(b < a for a, b in zip(losses, losses[1:])), f"loss does not fall: {losses}"
    final = float(re.search(r"final loss ([\d.]+)", p.stdout).group(1))
    assert final < losses[0] - 0.03


@pytest.mark.parametrize("example, labels", [
    ("tutorial", ["MatmulBackward0", "AddBackward0", "BinaryCrossEntropyWithLogitsBackward0",
                  r"w\nf32[5, 3]\nrequires_grad", r"b\nf32[3]\nrequires_grad",
                  r"loss\nf32[]", "constant"]),
    ("mlp", ["MmBackward0", "ReluBackward0", "LogSoftmaxBackward0", "NllLossBackward0",
             r"w1\nf32[2, 8]\nrequires_grad"]),
    ("vjp", ["AddBackward0", "PowBackward0", "TBackward0", r"inp\nf32[4, 5]\nrequires_grad",
             r"out\nf32[5, 4]"]),
])
def test_graph_writes_dot(example, labels, tmp_path):
    p = run("graph", "--example", example, "-o", "g.dot", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    dot = (tmp_path / "g.dot").read_text()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for label in labels:
        assert label in dot
    assert "shape=box" in dot and "shape=ellipse" in dot and " -> " in dot


def test_graph_default_output_name(tmp_path):
    assert run("graph", cwd=tmp_path).returncode == 0
    assert "BinaryCrossEntropyWithLogitsBackward0" in (tmp_path / "graph.dot").read_text()


def test_graph_without_graphviz_still_writes_dot(tmp_path):
    empty = tmp_path / "no-programs-here"
    empty.mkdir()
    p = run("graph", "--format", "svg", "-o", "g.dot", cwd=tmp_path, path=empty)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "g.dot").exists() and not (tmp_path / "g.svg").exists()
    notes = [line for line in p.stdout.splitlines() if "not on PATH" in line]
    assert len(notes) == 1


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
@pytest.mark.parametrize("args, picture", [(["--format", "svg", "-o", "g.dot"], "g.svg"),
                                           (["-o", "pic.png"], "pic.png")])
def test_graph_draws_with_graphviz(args, picture, tmp_path):
    p = run("graph", *args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    data = (tmp_path / picture).read_bytes()
    assert b"<svg" in data if picture.endswith(".svg") else data.startswith(b"\x89PNG")
    assert (tmp_path / Path(picture).with_suffix(".dot")).exists()


def _fake_bench(where, report=None):
    """A bench package in `where` (first on sys.path for `python -m`), shadowing the real one."""
    (where / "bench").mkdir()
    (where / "bench" / "__init__.py").write_text("")
    if report is not None:
        (where / "bench" / "report.py").write_text(report)


def test_bench_hands_over_to_the_report(tmp_path):
    _fake_bench(tmp_path, "def main(argv):\n    print('report got', argv)\n    return 3\n")
    p = run("bench", "--quick", "w1", cwd=tmp_path)
    assert p.returncode == 3
    assert "python -m bench" in p.stdout and "report got ['--quick', 'w1']" in p.stdout


def test_bench_without_report_explains(tmp_path):
    _fake_bench(tmp_path)
    p = run("bench", cwd=tmp_path)
    assert p.returncode == 1
    assert "python -m bench" in p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "not available" in lines[0] and "Traceback" not in p.stderr


@pytest.mark.parametrize("args", [
    [], ["nonsense"], ["demo", "--extra"], ["train", "--epochs", "0"],
    ["train", "--epochs", "many"], ["train", "--dtype", "float16"], ["train", "--lr", "-1"],
    ["train", "--activation", "gelu"], ["train", "--points", "2"],
    ["graph", "--example", "resnet"], ["graph", "--format", "pdf"],
])
def test_bad_arguments_give_one_line(args, tmp_path):
    p = run(*args, cwd=tmp_path)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0]


# ---- tapegrad.viz in this process ------------------------------------------------------------
def test_to_dot_names_and_shares_nodes():
    a = tg.randn(3, requires_grad=True)
    b = a * a + a                           # `a` feeds two ops; it is drawn once
    src = viz.to_dot(b.sum(), names={"a": a, "b": b})
    assert src.count(r'"a\nf32[3]\nrequires_grad"') == 1
    assert r"AddBackward0\nb f32[3]" in src
    assert "SumBackward0" in src and r"output\nf32[]" in src


def test_to_dot_of_a_leaf_and_after_backward():
    x = tg.ones(2, 2, dtype=tg.float64, requires_grad=True)
    assert r"x\nf64[2, 2]\nrequires_grad" in viz.to_dot(x, names={"x": x})
    y = (x * 3).sum()
    y.backward()
    assert "(freed)" in viz.to_dot(y)      # the records are gone; the picture says so


def test_render_without_graphviz(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert viz.render("digraph { a -> b }", tmp_path / "x.svg", "svg") is None
    assert not (tmp_path / "x.svg").exists()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_render_reports_graphviz_errors(tmp_path):
    assert viz.render("digraph { a -> b }", tmp_path / "x.svg") == str(tmp_path / "x.svg")
    with pytest.raises(RuntimeError, match="Graphviz dot could not render"):
        viz.render("this is not dot", tmp_path / "y.svg")


def test_listing_is_the_tape():
    w = tg.ones(3, requires_grad=True)
    y = w * 2
    assert viz.listing() == tg.tape_listing()
    assert "mul_scalar(%0, 2)" in viz.listing() and "<MulBackward0>" in viz.listing()
    del y


def test_train_with_adam(tmp_path):
    p = run("train", "--optimizer", "adam", "--lr", "0.01", "--epochs", "300", "--seed", "2",
            cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Adam lr=0.01" in p.stdout
    assert _accuracy(p.stdout) >= 85.0


def _final_line(stdout):
    return [line for line in stdout.splitlines() if line.startswith("final loss")][0]


def test_train_save_and_resume_continues_the_same_run(tmp_path):
    ck = tmp_path / "ck.tg"
    base = ["train", "--dtype", "float64", "--seed", "5", "--width", "16"]
    whole = run(*base, "--epochs", "200", cwd=tmp_path)
    first = run(*base, "--epochs", "120", "--save", str(ck), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"saved {ck} (epoch 120)" in first.stdout
    rest = run(*base, "--epochs", "80", "--resume", str(ck), cwd=tmp_path)
    assert rest.returncode == 0, rest.stderr
    assert "resumed after epoch 120" in rest.stdout
    # the optimizer's momentum came back too: the split run ends where the whole one does
    assert _final_line(rest.stdout) == _final_line(whole.stdout)
    other = run(*base[:-1], "32", "--epochs", "5", "--resume", str(ck), cwd=tmp_path)
    assert other.returncode != 0 and "other settings" in other.stderr and "--width" in other.stderr
    (tmp_path / "junk.tg").write_bytes(b"not a checkpoint")
    junk = run(*base, "--epochs", "5", "--resume", str(tmp_path / "junk.tg"), cwd=tmp_path)
    assert junk.returncode != 0 and "cannot resume" in junk.stderr
    assert "Traceback" not in junk.stderr
