"""Smoke tests of the report, latency and memory tools (behaviour only, no times asserted)."""
import pytest

from bench import latency, memory, report


def test_report_quick_runs(tmp_path, capsys):
    out = tmp_path / "perf.md"
    assert report.main(["--quick", "--rounds", "1", "--only", "W1", "--systems",
                        "tapegrad-f32,numpy-f32", "--no-latency", "--no-memory",
                        "--write", str(out)]) == 0
    text = out.read_text()
    assert "W1 tutorial" in text and "numpy-f32" in text and "Targets" in text
    assert "| W1 tutorial |" in capsys.readouterr().out


def test_tape_per_record_counts_the_chain():
    pytest.importorskip("tapegrad")
    sizes = memory.tape_per_record("W3")
    for records, nbytes in sizes.values():
        assert records >= 3000 and nbytes > 0


def test_peak_memory_runs_in_a_subprocess():
    p = memory.peak("W1", "numpy-f64", steps=1)
    assert set(p) == {"peak_mb", "retained_mb", "baseline_mb"}


def test_first_backward_latency_runs():
    assert latency.first_backward("tapegrad") > 0


def test_first_replay_latency_runs():
    assert latency.first_replay(False) > 0


def test_variant_ratios_pair_each_system_round_by_round():
    times = {("W2", "fb", "torch-f32"): [4.0, 6.0, 9.0],
             ("W2n", "fb", "torch-f32"): [2.0, 2.0, 3.0],
             ("W2", "fb", "numpy-f32"): [1.0],              # no W2n: no ratio
             ("W3", "backward", "jax-f32"): [1.0, 1.0]}
    v = report.variant_ratios(times)
    assert v == {("W2", "W2n", "fb", "torch-f32"): (3.0, 2.0, 3.0)}
    text = report.variant_table(v, ["numpy-f32", "torch-f32"])
    assert "| W2 / W2n | forward+backward | torch-f32 | 3.00 (2.00-3.00) |" in text


def test_a_workload_and_its_normal_variant_are_timed_as_pairs():
    groups = report._groups(["W1", "W2", "W2n", "W3"])
    assert [("W2", "backward"), ("W2n", "backward")] in groups
    assert [("W1", "fb")] in groups and [("W3", "fb")] in groups
    assert sum(len(g) for g in groups) == 1 + 3 + 3 + 3
