"""Benchmark rounds in fresh processes, for the runners of bench/test_higher_order.py and
bench/test_training.py (``python -m bench.test_<name> --runs N --export --quiet 0.05``).

Each round is one pytest-benchmark process writing JSON; ``--export`` measures
``git archive HEAD`` in a temporary folder (other engineers' uncommitted edits stay out);
``--quiet F`` waits for a moment when other processes use less than that share of the
cores, and drops and redoes a round they disturbed (the share is read from /proc/stat).
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time


def cpu_seconds():
    """(seconds of CPU every process on the machine has used, seconds this process's
    finished children have used), from /proc/stat and getrusage."""
    with open("/proc/stat") as f:
        t = [int(x) for x in f.readline().split()[1:]]
    busy = sum(t[:8]) - t[3] - t[4]                     # all but idle and iowait
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy / os.sysconf("SC_CLK_TCK"), ru.ru_utime + ru.ru_stime


def others(seconds):
    """Fraction of the machine's cores other processes kept busy over `seconds`."""
    (a, ca), t = cpu_seconds(), time.perf_counter()
    time.sleep(seconds)
    (b, cb), wall = cpu_seconds(), time.perf_counter() - t
    return max(0.0, (b - a) - (cb - ca)) / (wall * (os.cpu_count() or 1))


def parser(prog, description):
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("--runs", type=int, default=5, help="rounds (fresh processes)")
    ap.add_argument("--export", action="store_true",
                    help="measure `git archive HEAD` in a temporary folder, not the "
                    "working tree (other engineers' uncommitted edits stay out)")
    ap.add_argument("--quiet", type=float, metavar="FRACTION",
                    help="keep only runs during which other processes used less than "
                    "this fraction of the cores (e.g. 0.05); wait for such a moment before "
                    "each run and redo a run that was disturbed")
    ap.add_argument("--tries", type=int, default=40, help="with --quiet: runs at most")
    ap.add_argument("--keep", metavar="DIR", help="also keep the JSON files here")
    return ap


def measure(a, name, run_once):
    """Run the rounds: run_once(root, out_json_or_None, reverse, extra_args) runs one
    pytest process in `root`. Returns (runs as loaded JSON, others' share per kept run,
    others' share per dropped run, the commit measured)."""
    from bench import machine
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def log(msg):
        print(f"[{name}] {msg}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix=f"tapegrad-{name}-") as tmp:
        commit = machine.tapegrad_commit()
        if a.export:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                                    capture_output=True, text=True, check=True).stdout.strip()
            tree = os.path.join(tmp, "tree")
            os.mkdir(tree)
            archive = subprocess.run(["git", "archive", commit], cwd=root,
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
            root = tree
            where = subprocess.run([sys.executable, "-c", "import tapegrad; "
                                    "print(tapegrad.__file__)"], cwd=root,
                                   capture_output=True, text=True, check=True).stdout
            if not where.startswith(tree):
                sys.exit(f"the export's tapegrad is not the one imported ({where.strip()})")
        log(f"tapegrad at {commit}; warm-up pass (compiles, checks)")
        run_once(root, None, False, ["--benchmark-disable"])
        runs, kept, dropped, tries = [], [], [], 0
        while len(runs) < a.runs and tries < (a.tries if a.quiet else a.runs):
            tries += 1
            if a.quiet:
                while others(2.0) >= a.quiet:
                    time.sleep(5)
            out = os.path.join(a.keep or tmp, f"{name}-{tries}.json")
            log(f"run {len(runs) + 1}/{a.runs} (try {tries})")
            (c0, k0), t0 = cpu_seconds(), time.perf_counter()
            run_once(root, out, len(runs) % 2 == 1, ())
            (c1, k1), wall = cpu_seconds(), time.perf_counter() - t0
            busy = max(0.0, (c1 - c0) - (k1 - k0)) / (wall * (os.cpu_count() or 1))
            if a.quiet and busy >= a.quiet:
                dropped.append(busy)
                log(f"dropped: other processes used {busy:.0%} of the cores")
                continue
            kept.append(busy)
            with open(out) as f:
                runs.append(json.load(f))
    if not runs:
        sys.exit("no run was quiet enough")
    return runs, kept, dropped, commit


def header(a, module, runs, kept, dropped, commit):
    """The lines that say what was measured, how, and on what machine."""
    from bench import machine
    after = machine.tapegrad_commit() if not a.export else commit
    print(f"tapegrad at git {commit}" + (" (exported committed tree)" if a.export else "")
          + ("" if after == commit else f"; it changed to {after} during the run"))
    cmd = f"python -m {module} --runs {a.runs}" + " --export" * a.export + (
        f" --quiet {a.quiet:g}" if a.quiet else "")
    print(f"measured {time.strftime('%Y-%m-%d %H:%M %Z')}, {len(runs)} runs, command: {cmd}")
    print("share of the cores other processes used during each kept run: "
          + ", ".join(f"{x:.0%}" for x in kept)
          + (f"; {len(dropped)} runs dropped as disturbed" + (
              " (" + ", ".join(f"{x:.0%}" for x in dropped) + ")" if dropped else "")
             if a.quiet else ""))


def machine_line(a, commit):
    from bench import machine
    info = machine.describe()
    if a.export:       # describe() reads the working tree's commit, not the export's
        info = re.sub(r"tapegrad (\S+) \(git [^)]*\)", rf"tapegrad \1 (git {commit})", info)
    print(info.replace("\n", "  \n"))


def main(a, name, module, run_once, render, notes=None):
    """A runner's whole command: the rounds, then what was measured and how (``notes()``
    may print more lines there), the machine, and ``render(runs)``'s Markdown."""
    runs, kept, dropped, commit = measure(a, name, run_once)
    header(a, module, runs, kept, dropped, commit)
    if notes is not None:
        notes()
    machine_line(a, commit)
    print(render(runs))
    return 0
