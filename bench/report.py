"""``python -m bench``: every comparison in one process, timed in blocks, as one table.

Method (see /work/shared/BENCHMARKING.md): each system's gradients are checked against
numpy's hand-written float64 version first; each phase is warmed up (JAX compiles)
outside the timed region. Then, for several rounds, every (workload, phase) row times
each system in its own block (a few sub-blocks of back-to-back calls; the block's value
is their median), with a pause before every block and the system order rotated each
round. W2 and W2n (W3 and W3n) are timed as pairs: each system times both in
back-to-back blocks, so the cost of subnormals is read from blocks seconds apart. A ratio
is peer time / tapegrad time of the same dtype in the same round (above 1: tapegrad is
faster); the table shows the median over rounds and its min-max.
"""
import argparse
import datetime
import os
import statistics
import sys
import time

from bench import latency, machine, memory, workloads as W

FULL = dict(rounds=7, budget=0.15, pause=0.2, sub=5, latency_runs=3)
QUICK = dict(rounds=2, budget=0.02, pause=0.05, sub=3, latency_runs=1)
PHASE = {"fb": "forward+backward", "forward": "forward alone", "backward": "backward alone"}
OPS = 3 * W.CHAIN        # recorded elementwise ops in W2/W3's chain
VARIANTS = (("W2", "W2n"), ("W3", "W3n"))   # (float32 gradient subnormal, stays normal)

EXPLAIN = {
    "W1": "PyTorch's tutorial net: `z = x @ w + b` on 5 inputs and 3 outputs, "
          "`binary_cross_entropy_with_logits`, backward. Three tiny ops: measures fixed "
          "per-call overhead (op dispatch, recording, starting backward, filling `.grad`).",
    "W2": "`v = tanh(v * 1.01 + 0.1)` 1,000 times on 16 floats (3,000 recorded ops), "
          "`sum`, backward. Per-op cost of recording and of the reverse sweep. The "
          "gradient is about 1e-207 (0.62^1000), below float32's range: in float32 the "
          "reverse sweep leaves the normal range after about 180 steps, and tapegrad, "
          "PyTorch and numpy carry subnormals to the end (rounding keeps most entries at "
          "the smallest, 1.4e-45), while JAX flushes them to zero. So the float32 check "
          "compares the loss and the gradient of the chain's first "
          f"{W.PREFIX} steps (about 1e-20, well inside float32's range).",
    "W2n": "W2 with the map `tanh(v * 0.9995 + 0.0001)`: the same 3,000 ops on the same "
           "data, but the derivatives stay near 1 (0.996 at the map's fixed point), so the "
           "gradient (4e-6 to 0.08) stays normal in float32. Beside W2 it shows what "
           "subnormal gradients cost each system.",
    "W3": "W2 on one element: the numerical work vanishes, only per-op overhead is left.",
    "W3n": "W2n on one element.",
    "W4": "MLP 64-256-256-10, batch 32, tanh, MSE to a random target; gradients of all "
          "weights and biases. Small matrix products: overhead and BLAS share the time.",
    "W5": "MLP 1024-1024-1024-1024, batch 512, relu, MSE. BLAS-bound (8 matrix products, "
          "about 8.6 GFLOP per step): does the engine add anything to the matrix products?",
    "W6": "W4 plus the loop a user writes: `p -= lr * p.grad` under `no_grad()` and "
          "`p.grad.zero_()` for every parameter (JAX: one jitted step returning new "
          "parameters; numpy and autograd: in-place update).",
}


# ---- timing ----
def _one(case, phase):
    """Seconds of one call of `phase` (backward: on a fresh graph built untimed)."""
    if phase == "backward":
        graph = case.forward()
        t = time.perf_counter()
        case.backward(graph)
        return time.perf_counter() - t
    f = case.run if phase == "fb" else case.forward
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def _block(case, phase, n, sub):
    """One block: the median of `sub` sub-blocks of `n` calls, in seconds per call
    (backward: the median of n * sub individually timed backwards)."""
    if phase == "backward":
        return statistics.median(_one(case, phase) for _ in range(n * sub))
    f = case.run if phase == "fb" else case.forward
    per = []
    for _ in range(sub):
        t = time.perf_counter()
        for _ in range(n):
            f()
        per.append((time.perf_counter() - t) / n)
    return statistics.median(per)


def _calibrate(case, phase, budget, sub):
    """Calls per sub-block so that a block lasts about `budget` seconds."""
    case.warm(phase)
    walls = []
    for _ in range(3):
        t = time.perf_counter()
        _one(case, phase)
        walls.append(time.perf_counter() - t)
    return max(1, int(budget / sub / min(walls)))


def phase_name(key, ph):
    return "training step" if W.WORKLOADS[key].train else PHASE[ph]


def reference_of(system):
    """Eager tapegrad of the same dtype; JAX is compared with the compiled system too
    (see COMPILED_TARGETS)."""
    return "tapegrad-f" + system.rsplit("-f", 1)[1]


def measure(keys, systems, cfg, log):
    """{(key, phase, system): [seconds per round]} and {(key, system): failure text}."""
    cases, failed = {}, {}
    for key in keys:
        for s in systems:
            if not W.available(s):
                continue
            try:
                cases[key, s] = W.verify(key, s)
            except Exception as e:           # report it, time the others
                failed[key, s] = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
                log(f"gradient check FAILED, not timed: {key} {s}: {failed[key, s]}")
    rows = [(k, ph) for k in keys for ph in W.WORKLOADS[k].phases]
    groups = _groups(keys)
    calls = {}
    for key, ph in rows:
        for s in systems:
            if (key, s) in cases and ph in W.SYSTEMS[s].phases:
                calls[key, ph, s] = _calibrate(cases[key, s], ph, cfg["budget"], cfg["sub"])
    times = {k: [] for k in calls}
    for r in range(cfg["rounds"]):
        log(f"round {r + 1}/{cfg['rounds']}")
        for group in groups:
            present = [s for s in systems if any((k, ph, s) in calls for k, ph in group)]
            if not present:
                continue
            j = r % len(present)
            for s in present[j:] + present[:j]:
                for key, ph in (group if r % 2 == 0 else group[::-1]):
                    if (key, ph, s) in calls:
                        time.sleep(cfg["pause"])
                        times[key, ph, s].append(_block(cases[key, s], ph,
                                                        calls[key, ph, s], cfg["sub"]))
    return times, failed


def _groups(keys):
    """[[(key, phase)...]]: the rows timed together. A workload and its normal variant
    (VARIANTS), when both are measured, form one group per phase, so that each system
    times the pair in back-to-back blocks (their order alternating by round); every other
    row is a group of its own."""
    pair = {a: b for a, b in VARIANTS if a in keys and b in keys}
    paired = set(pair.values())
    return [[(k, ph)] + ([(pair[k], ph)] if k in pair else [])
            for k in keys if k not in paired for ph in W.WORKLOADS[k].phases]


def summarize(times):
    """{(key, phase, system): dict(median, lo, hi, ratio, rlo, rhi)} (ratios may be None)."""
    out = {}
    for (key, ph, s), ts in times.items():
        ref = times.get((key, ph, reference_of(s)))
        d = dict(median=statistics.median(ts), lo=min(ts), hi=max(ts),
                 ratio=None, rlo=None, rhi=None)
        if ref and not s.startswith("tapegrad"):
            rs = [a / b for a, b in zip(ts, ref)]
            d.update(ratio=statistics.median(rs), rlo=min(rs), rhi=max(rs))
        out[key, ph, s] = d
    return out


# ---- targets ----
RATIO_TARGETS = [   # (workload, phase, peer family, at least this peer/tapegrad ratio)
    ("W1", "fb", "torch", 4.0), ("W2", "fb", "torch", 5.0), ("W3", "fb", "torch", 8.0),
    ("W2", "backward", "torch", 100.0), ("W3", "backward", "torch", 100.0),
    ("W4", "fb", "torch", 1.0), ("W6", "fb", "torch", 1.0),
    ("W5", "fb", "torch", 0.9), ("W5", "fb", "numpy", 0.95),
]
COMPILED_TARGETS = [   # (workload, at least this jax-<dtype> / replayed-<dtype> ratio)
    ("W1", 1.0), ("W2", 1.0), ("W3", 2.5), ("W4", 1.0),
]
# The replayed systems: `compiled` is value_and_grad(compile(f)), `node` the path a user
# writes, compile(f)(...).backward(); each is compared with JAX of its dtype.
REPLAYED = ("compiled", "node")
NODE_OVER_VG = 1.2     # node time / compiled time, at most, on COMPILED_TARGETS' workloads
RECORD_US = 1.0
REPLAY_NS = 10.0      # W3 replayed forward+backward, per recorded op
LATENCY_S = {"tapegrad, warm Numba cache": 0.5, "tapegrad, empty Numba cache": 5.0}
REPLAY_COLD_S = 5.0     # the first replayed W2 with an empty Numba cache, at most
REPLAY_COLD_OVER_JAX = 2.0   # ... and at most this times JAX's first W2 call


def compiled_ratios(times):
    """{(key, label, goal): (median, lo, hi)} over the rounds: jax-<dt> time / <replayed>-<dt>
    time (at least the workload's COMPILED_TARGETS goal), and node-<dt> time /
    compiled-<dt> time (at most NODE_OVER_VG; goal stored negated: lower is better)."""
    out = {}
    for key, goal in COMPILED_TARGETS:
        for dt in ("f32", "f64"):
            pairs = [(f"jax-{dt}", f"{r}-{dt}", goal) for r in REPLAYED]
            pairs.append((f"node-{dt}", f"compiled-{dt}", -NODE_OVER_VG))
            for a, b, g in pairs:
                ta, tb = times.get((key, "fb", a)), times.get((key, "fb", b))
                if ta and tb:
                    rs = [x / y for x, y in zip(ta, tb)]
                    out[key, f"{a} time / {b} time", g] = (statistics.median(rs), min(rs),
                                                           max(rs))
    return out


def targets(stats, lat, cratios=None):
    """[(target, measured, goal, met, how far)] for the targets this run measured."""
    rows = []
    for (key, label, goal), (r, lo, hi) in (cratios or {}).items():
        met = r >= goal if goal > 0 else r <= -goal
        rows.append((f"{W.WORKLOADS[key].title}, replayed: {label}",
                     f"{r:.2f} ({lo:.2f}-{hi:.2f})",
                     f">= {goal:g}" if goal > 0 else f"<= {-goal:g}", met,
                     _gap(r / goal if goal > 0 else -goal / r)))
    for key, ph, peer, goal in RATIO_TARGETS:
        for dt in ("f32", "f64"):
            name = (W.WORKLOADS[key].title + ("" if ph == "fb" else f", {PHASE[ph]}")
                    + f": {peer}-{dt} time / tapegrad-{dt} time")
            d = stats.get((key, ph, f"{peer}-{dt}"))
            if d is None or d["ratio"] is None:
                continue
            r = d["ratio"]
            rows.append((name, f"{r:.2f} ({d['rlo']:.2f}-{d['rhi']:.2f})", f">= {goal:g}",
                         r >= goal, _gap(r / goal)))
    for dt in ("f32", "f64"):
        name = f"recording one small elementwise op, tapegrad-{dt} (W3 forward / {OPS})"
        d = stats.get(("W3", "forward", f"tapegrad-{dt}"))
        if d is None:
            continue
        us = d["median"] / OPS * 1e6
        rows.append((name, f"{us:.2f} µs", f"<= {RECORD_US:g} µs", us <= RECORD_US,
                     _gap(RECORD_US / us)))
    d = stats.get(("W3", "fb", "compiled-f32"))
    if d is not None:
        ns = d["median"] / OPS * 1e9
        rows.append((f"W3 scalar chain, replayed forward+backward per op, compiled-f32 "
                     f"(/ {OPS})", f"{ns:.1f} ns", f"<= {REPLAY_NS:g} ns", ns <= REPLAY_NS,
                     _gap(REPLAY_NS / ns)))
    for label, goal in LATENCY_S.items():
        name = f"import + first backward of W1, {label.split(', ')[1]}"
        if label not in lat:
            continue
        s = statistics.median(lat[label])
        rows.append((name, f"{s:.2f} s", f"<= {goal:g} s", s <= goal, _gap(goal / s)))
    cold, jax = "tapegrad W2 replay, empty Numba cache", "jax W2 jit"
    if cold in lat:
        c = statistics.median(lat[cold])
        rows.append(("W2 recorded and compiled for replay, first call, empty Numba cache",
                     f"{c:.2f} s", f"<= {REPLAY_COLD_S:g} s", c <= REPLAY_COLD_S,
                     _gap(REPLAY_COLD_S / c)))
        if jax in lat:
            r = c / statistics.median(lat[jax])
            rows.append(("W2 first replay with an empty Numba cache / jax.jit first call",
                         f"{r:.1f}", f"<= {REPLAY_COLD_OVER_JAX:g}", r <= REPLAY_COLD_OVER_JAX,
                         _gap(REPLAY_COLD_OVER_JAX / r)))
    mine = "tapegrad W2 replay, warm Numba cache"
    if mine in lat and jax in lat:
        r = statistics.median(lat[jax]) / statistics.median(lat[mine])
        rows.append(("W2 recorded and compiled for replay, first call, warm Numba cache: "
                     "jax.jit first call / tapegrad first call", f"{r:.1f}", ">= 1", r >= 1,
                     _gap(r)))
    return rows


def _gap(f):
    """f = measured/goal, oriented so that >= 1 meets the target."""
    return f"{f:.2f}x margin" if f >= 1 else f"needs {1 / f:.2f}x"


# ---- formatting ----
def _us(s):
    us = s * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:.3g}"


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def timing_table(stats, keys, systems):
    rows = []
    for key in keys:
        for ph in W.WORKLOADS[key].phases:
            first = True
            for s in systems:
                d = stats.get((key, ph, s))
                if d is None:
                    continue
                ratio = "" if d["ratio"] is None else (
                    f"{d['ratio']:.2f} ({d['rlo']:.2f}-{d['rhi']:.2f})")
                rows.append((W.WORKLOADS[key].title if first else "",
                             phase_name(key, ph) if first else "", s, _us(d["median"]),
                             f"{_us(d['lo'])}-{_us(d['hi'])}", ratio))
                first = False
    return table(["workload", "phase", "system", "median µs", "min-max µs",
                  "peer / tapegrad, same dtype (min-max)"], rows)


def per_op_table(stats):
    rows = []
    for key in ("W2", "W2n", "W3", "W3n"):
        for s in ("tapegrad-f32", "tapegrad-f64", "torch-f32", "torch-f64"):
            f, b = stats.get((key, "forward", s)), stats.get((key, "backward", s))
            if f and b:
                rows.append((key, s, f"{f['median'] / OPS * 1e9:,.0f}",
                             f"{b['median'] / OPS * 1e9:,.0f}"))
    if not rows:
        return ""
    return table(["workload", "system", "forward ns per op", "backward ns per op"], rows)


def variant_ratios(times):
    """{(key, normal key, phase, system): (median, lo, hi)} of the system's time on `key`
    over its time on the normal variant, per round (both timed in every round)."""
    out = {}
    for key, nkey in VARIANTS:
        for (k, ph, s), ts in times.items():
            ns = times.get((nkey, ph, s))
            if k == key and ns:
                rs = [a / b for a, b in zip(ts, ns)]
                out[key, nkey, ph, s] = (statistics.median(rs), min(rs), max(rs))
    return out


def variant_table(vratios, systems):
    rows = []
    for key, nkey in VARIANTS:
        for ph in W.PHASES:
            first = True
            for s in systems:
                v = vratios.get((key, nkey, ph, s))
                if v is None:
                    continue
                rows.append((f"{key} / {nkey}" if first else "",
                             PHASE[ph] if first else "", s,
                             f"{v[0]:.2f} ({v[1]:.2f}-{v[2]:.2f})"))
                first = False
    if not rows:
        return ""
    return table(["workloads", "phase", "system", "time on W2 (W3) / time on W2n (W3n), "
                  "same round (min-max)"], rows)


def latency_table(lat):
    return table(["time to first gradient (fresh process; see notes)", "median s", "runs s"],
                 [(k, f"{statistics.median(v):.2f}", ", ".join(f"{x:.2f}" for x in v))
                  for k, v in lat.items()])


def memory_tables(tape, peaks):
    t1 = table(["graph on tapegrad's tape, before backward", "records", "bytes",
                "bytes per record"],
               [(f"{key} {s}", n, f"{b:,}", f"{b / max(n, 1):.0f}")
                for (key, s), (n, b) in tape.items()])
    t2 = table(["W5, 3 forward+backward steps", "peak above baseline MB",
                "still resident after MB"],
               [(s, f"{p['peak_mb']:.1f}", f"{p['retained_mb']:.1f}")
                for s, p in peaks.items()])
    return t1 + "\n\n" + t2


def render(info, keys, systems, stats, failed, lat, tape, peaks, cfg, cratios=None,
           times=None):
    parts = [info, "",
             f"Method: {cfg['rounds']} rounds; per row and round, each system in its own "
             f"block of about {cfg['budget']:g} s ({cfg['sub']} sub-blocks, median) after a "
             f"{cfg['pause']:g} s pause, order rotated each round. Ratio = peer time / "
             f"tapegrad time of the same dtype in the same round (>1: tapegrad faster); "
             f"median over rounds (min-max). Gradients checked against numpy float64 first.",
             "", timing_table(stats, keys, systems)]
    if failed:
        parts += ["", "Not timed (gradient check failed):"]
        parts += [f"- {k} {s}: {msg}" for (k, s), msg in failed.items()]
    per_op = per_op_table(stats)
    if per_op:
        parts += ["", "Per-op cost (median phase time / 3,000 ops):", "", per_op]
    variants = variant_table(variant_ratios(times or {}), systems)
    if variants:
        parts += ["", "What subnormal float32 gradients cost: each system's time on W2 "
                  "(W3), whose float32 gradient is subnormal, over its time on W2n (W3n), "
                  "whose gradient stays normal; same ops and data, same round. 1 means no "
                  "cost; each system timed the two in back-to-back blocks. The float64 rows are the control: both gradients are normal in "
                  "float64, so they show what the other constants alone change.", "",
                  variants]
    trows = targets(stats, lat, cratios)
    yes = {True: "yes", False: "**no**"}
    parts += ["", "Targets:", "",
              table(["what", "measured", "target", "met", "how far"],
                    [(a, b, c, yes[m], g) for a, b, c, m, g in trows])]
    if lat:
        parts += ["", latency_table(lat)]
    if tape or peaks:
        parts += ["", memory_tables(tape, peaks)]
    return "\n".join(parts), trows


def document(body, trows, cfg, keys, commit):
    met = [r for r in trows if r[3]]
    missed = [r for r in trows if not r[3]]
    lines = [
        "# Performance",
        "",
        "Generated by `python -m bench --write docs/performance.md` "
        f"({datetime.date.today().isoformat()}); rerun it to refresh this page. The "
        "machines are 2-core, shared and noisy: a time on its own means little, a ratio "
        "against a peer measured in the same run is the figure to read. "
        "`python -m pytest bench` times the same workloads with pytest-benchmark. "
        "Where the environment forces numpy's OpenBLAS onto an older kernel "
        "(`OPENBLAS_CORETYPE`, set on some of our machines as a workaround for old "
        "builds), run it with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` so that "
        "numpy, autograd and tapegrad get this CPU's own kernel; the Results section "
        "names the kernel used.",
        "",
        "## Workloads",
        "",
        "Identical in every system (`bench/workloads.py`): one loss definition, data from "
        f"seed {W.SEED}, same dtype, same threads. Systems: tapegrad and PyTorch eager "
        "(float32 and float64, the same code), tapegrad replayed two ways "
        "(forward+backward only): `compiled` is "
        "`tapegrad.func.value_and_grad(tapegrad.compile(f))`, and `node` the path a "
        "PyTorch user writes, `loss = tapegrad.compile(f)(*params); loss.backward()` with "
        "`.grad` reset each step; `jax.jit(jax.value_and_grad(f))` (float32, and float64 "
        "with `jax_enable_x64`), "
        "HIPS autograd (float64), and forward and backward written by hand in numpy (the "
        "minimal work). Forward alone means forward with recording (JAX: `jit(vjp)`, "
        "autograd: `make_vjp`, numpy: keeping what backward needs); backward alone runs on "
        "a fresh graph each time.",
        "",
    ]
    lines += [f"- **{W.WORKLOADS[k].title}**: {EXPLAIN[k]}" for k in keys]
    lines += ["", "## Summary", "",
              f"{len(met)} of {len(met) + len(missed)} measured targets met "
              f"(tapegrad at git {commit}).", ""]
    lines += [f"- {'met' if r[3] else '**missed**'}: {r[0]}: {r[1]}, target {r[2]} ({r[4]})"
              for r in met + missed]
    lines += ["", "## Why targets are missed, and what would close them", ""]
    lines += [f"- {w}" for w in WHY]
    lines += ["", "## Results", "", body, "", "## Notes", ""]
    lines += [f"- {n}" for n in NOTES]
    return "\n".join(lines) + "\n"


WHY = [
    "**Replayed through `fc(...).backward()` (the `node` systems), W1 and W3.** A compiled "
    "call is one node of the eager graph (design.md, \"The compiled node\"), so the "
    "program's records are no longer copied per call (W3 went from about 230 to 38 µs in "
    "float32). What separates it from `value_and_grad` is a fixed cost of about 17 µs a "
    "step, spread over many small pieces: the leaves' INPUT records and the node's own "
    "record on the tape (about 0.8 µs each), the node object and its output tensor, the "
    "tape's reset after each step, two Numba dispatches with 8 and 14 array arguments "
    "(forward, then the reverse sweep: 1-3 µs each), and filling `.grad`. On W1 (7 µs by "
    "`value_and_grad`) and W3 (20 µs) that fixed cost is the whole gap. What would close "
    "it: one compiled entry for the reverse sweep and the `.grad` writes with fewer "
    "arguments (a packed argument block per program), and leaves that keep their INPUT "
    "records between steps.",
    "**Eager forward (W1-W3, recording cost).** A recorded op costs about 1.9 µs: numpy's "
    "own call (0.35 µs on one element), a Tensor object and its lifetime tracking (about "
    "0.45 µs; tapegrad with nothing requiring grad costs 0.8 µs an op), and the record "
    "itself (packing 16 words, saving the values the VJP reads: about 1 µs). PyTorch "
    "records in C++ for about 0.45 µs. What would close it: moving dispatch and recording "
    "out of Python (a compiled or C entry per op), or using `tapegrad.compile`, whose "
    "replay runs W3 about 500x faster than eager PyTorch.",
    "**W5 against numpy by hand (about 0.9).** The products are the same BLAS calls, "
    "written straight into the gradient buffer. What is left: `.grad` gets a copy of each "
    "gradient region, because the buffer is reused by the next backward (three 4 MB "
    "weights: about 2 ms of a 15 ms backward), activation gradients are zeroed before "
    "they accumulate, and the large elementwise VJPs run on one thread. Handing large "
    "regions to `.grad` and threading the large loops (Numba's parallel range) would "
    "close it.",
    "**W2 backward alone against 100x PyTorch (on the edge).** The ratio moves between "
    "about 80 and 120 from run to run: the same code measured 59 µs and 77 µs in two runs"
    " here. Of tapegrad's 60 µs, the compiled sweep takes 32; the rest is Python around "
    "it: finding the seeds and gradient offsets, reading `.grad` out and freeing the "
    "graph's 3,000 records. Moving that setup and release into the compiled call would "
    "give the margin.",
]

NOTES = [
    "W3 replayed (target 2.5x JAX, a narrow margin): the chain is latency-bound, each "
    "step's tanh waiting for the one before. Of about 16 µs, the forward takes 11: the "
    "latency of 1,000 float32 tanh (a rational function evaluated in float64), within 3% "
    "of the same loop written by hand. The reverse sweep runs decoded chains (see "
    "design.md) in 2.5 µs, the latency of its 2,000 multiplies, most of them on subnormal "
    "float32 gradients (JAX flushes those to zero). Python and Numba's argument dispatch "
    "take the remaining 2.7 µs. Straight-line code generated per program would remove "
    "little more, at a compile cost per program.",
    "SVML: with `intel-cmplr-lib-rt` installed (its `libsvml.so` lands in the "
    "environment), `numba -s` still reports SVML not operational, because the llvmlite "
    "wheels on PyPI are built without Intel's SVML patch to LLVM; replayed W2 times the "
    "same with and without it, so tapegrad offers no SVML extra. Its float32 tanh is its "
    "own rational function instead, which vectorises without SVML.",
    "W2 replay latency: the first call of `func.value_and_grad(compile(f))` (recording, "
    "building the program, running it) against the first call of "
    "`jax.jit(jax.value_and_grad(f))`, timed after the imports in a fresh process. "
    "tapegrad compiles no code per program: its kernels compile once per installation "
    "(the empty-cache row) and load from Numba's cache afterwards (the warm row); JAX "
    "compiles every new function in every process.",
    "JAX's phases: forward alone is `jit(vjp)`, which hands every residual back to Python "
    "(thousands of small arrays on W2/W3), and backward alone is a second `jit` taking them "
    "in. Those two rows measure what splitting JAX costs, not its fused step: read JAX's "
    "forward+backward row.",
    "JAX runs in float32 only (float64 would need `jax_enable_x64` in a separate process); "
    "HIPS autograd in float64 only.",
    "Backward alone is timed per call on a fresh graph built untimed just before; for "
    "tapegrad it includes releasing the graph's records after the sweep.",
    "Per-op rows divide a whole phase by the 3,000 chain ops, so they include the final "
    "`sum` and, for backward, starting the sweep and filling `.grad`.",
    "Latency: a fresh process per run; the clock starts before `import` (interpreter "
    "start-up excluded). Empty cache: `NUMBA_CACHE_DIR` set to a new folder, and the "
    "warm-up process a run starts is stopped when the run ends (except in the run that "
    "waits for it); warm: a folder `python -m tapegrad.warmup` filled first.",
    "Cold start (first backward and first replay with an empty Numba cache): the "
    "targets measure the first gradient: on an empty cache the kernels' own Python code "
    "runs while a warm-up process compiles them into the cache (design.md, \"Compile "
    "latency\"), so W1's first backward and W2's first replay finish in well under a "
    "second. Compiling itself takes as long as before (the rows `until a step runs the "
    "compiled sweep` and `compiling in the process` show it: about 20-25 s here); what "
    "would shorten it is compiling the rarely used families (create_graph's UVJP, decoded "
    "chains, the fused losses) as separate kernels the sweep hands records to, and casting "
    "the elementwise rules' arguments to one type so each compiles once.",
    "Memory: tape bytes from `tapegrad.tape_size()` with W2's or W3's graph built, before "
    "backward. W5 peak: a fresh process per system; every system builds its parameters "
    "and runs one W5 step (compiled code loaded, JAX compiled, first allocations made) "
    "before the baseline RSS is read, then the kernel's high-water mark is reset and the "
    "steps run: the peak is what a step needs beyond a warmed-up process. 'Still "
    "resident' includes memory an allocator keeps for reuse (PyTorch and JAX keep theirs; "
    "tapegrad keeps its arena).",
    "float32 gradient checks: W2's and W3's float32 gradient is below float32's range, so "
    "comparing it with the float64 reference could not fail (zeros would pass); the check "
    f"also compares, in float32, the gradient of the chain's first {W.PREFIX} steps, built "
    "and run by the same system. A check that zeros would pass is refused elsewhere.",
]


# ---- main ----
def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few short rounds (smoke test)")
    ap.add_argument("--rounds", type=int, help="A/B rounds (default 7; quick 2)")
    ap.add_argument("--budget", type=float, help="seconds per block (default 0.15)")
    ap.add_argument("--only", help="workloads, comma-separated (e.g. W1,W3)")
    ap.add_argument("--systems", help="systems, comma-separated (default: all installed)")
    ap.add_argument("--no-latency", action="store_true", help="skip import latency")
    ap.add_argument("--no-memory", action="store_true", help="skip memory measurements")
    ap.add_argument("--write", metavar="PATH", help="also write the report as Markdown")
    a = ap.parse_args(argv)
    cfg = dict(QUICK if a.quick else FULL)
    cfg.update({k: v for k, v in (("rounds", a.rounds), ("budget", a.budget)) if v})
    keys = a.only.split(",") if a.only else list(W.WORKLOADS)
    systems = a.systems.split(",") if a.systems else list(W.SYSTEMS)
    for name, known in ((keys, W.WORKLOADS), (systems, W.SYSTEMS)):
        bad = [x for x in name if x not in known]
        if bad:
            ap.error(f"unknown {bad}; choose from {', '.join(known)}")
    systems = [s for s in W.SYSTEMS if s in systems and W.available(s)]

    def log(msg):
        print(f"[bench] {msg}", file=sys.stderr, flush=True)

    machine.configure_threads()
    if os.environ.get("OPENBLAS_CORETYPE"):
        log(f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} forces numpy's OpenBLAS "
            f"kernel (kernel now: {machine.openblas_kernel()}); to measure this CPU's own, "
            f"run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench ...")
    info = machine.describe().replace("\n", "  \n")
    commit = machine.tapegrad_commit()
    log(f"{len(keys)} workloads x {len(systems)} systems, {cfg['rounds']} rounds")
    times, failed = measure(keys, systems, cfg, log)
    stats = summarize(times)
    lat = {}
    if not a.no_latency:
        lat = latency.measure(cfg["latency_runs"], log)
        lat.update(latency.measure_replay(cfg["latency_runs"], log))
    tape, peaks = {}, {}
    if not a.no_memory:
        log("memory")
        for key in ("W2", "W3"):
            for s, v in memory.tape_per_record(key).items():
                tape[key, s] = v
        for s in systems:
            if not s.startswith(REPLAYED):
                peaks[s] = memory.peak("W5", s, steps=1 if a.quick else 3)
    body, trows = render(info, keys, systems, stats, failed, lat, tape, peaks, cfg,
                         compiled_ratios(times), times)
    now = machine.tapegrad_commit()
    if now != commit:   # the in-process timings ran `commit`; later subprocesses may not
        commit = f"{commit}; it changed to {now} during the run, so latency and memory " \
                 f"may have measured the later code"
        body += f"\n\nNote: tapegrad's code changed during this run ({commit})."
    print(body)
    if a.write:
        with open(a.write, "w") as f:
            f.write(document(body, trows, cfg, keys, commit))
        log(f"wrote {a.write}")
    return 0
