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
