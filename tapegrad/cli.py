"""The ``tapegrad`` command: demo, train, graph, info and bench subcommands."""
import argparse
import importlib
import os
import sys
import time
from pathlib import Path

import numpy as np

import tapegrad as tg
from tapegrad import viz

F = tg.nn.functional


class _Parser(argparse.ArgumentParser):
    """An argument parser that reports a bad argument in one line, without usage text."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def _heading(text):
    print(f"\n== {text} ==")


# ---- demo ------------------------------------------------------------------------------------
def _tutorial_graph():
    """The tutorial's one-layer network; returns the tensors by name."""
    x = tg.ones(5)
    y = tg.zeros(3)
    w = tg.randn(5, 3, requires_grad=True)
    b = tg.randn(3, requires_grad=True)
    z = tg.matmul(x, w) + b
    loss = F.binary_cross_entropy_with_logits(z, y)
    return dict(x=x, y=y, w=w, b=b, z=z, loss=loss)


def _vjp_graph():
    inp = tg.eye(4, 5, requires_grad=True)
    out = (inp + 1).pow(2).t()
    return dict(inp=inp, out=out)


def cmd_demo(args):
    tg.manual_seed(args.seed)
    print(f"tapegrad {tg.__version__}: the autograd tutorial, step by step (seed {args.seed})")
    _heading("A one-layer network: z = x @ w + b, loss = BCE-with-logits(z, y)")
    g = _tutorial_graph()
    w, b, z, loss = g["w"], g["b"], g["z"], g["loss"]
    print(f"w = {w}\nb = {b}\nz = {z}\nloss = {loss}")

    _heading("Each result remembers the backward function that made it")
    print(f"z.grad_fn    = <{z.grad_fn.name()}>")
    print(f"loss.grad_fn = <{loss.grad_fn.name()}>")
    print("loss.grad_fn.next_functions:",
          ", ".join("None" if f is None else f.name() for f, _ in loss.grad_fn.next_functions))

    _heading("The tape recorded by the forward pass (one line per record)")
    print(viz.listing())

    _heading("loss.backward() fills .grad of the leaves w and b")
    loss.backward()
    print(f"w.grad =\n{w.grad}\nb.grad = {b.grad}")
    try:
        loss.backward()
    except RuntimeError as e:
        print(f"a second backward() raises: {str(e).split('. ')[0]}.")

    _heading("Turning tracking off: no_grad() and detach()")
    z = tg.matmul(g["x"], w) + b
    print(f"z.requires_grad                  -> {z.requires_grad}")
    with tg.no_grad():
        z = tg.matmul(g["x"], w) + b
    print(f"under no_grad(): z.requires_grad -> {z.requires_grad}")
    z = tg.matmul(g["x"], w) + b
    print(f"z.detach().requires_grad         -> {z.detach().requires_grad}")
    del z

    _heading("Vector-Jacobian products: out = (inp + 1).pow(2).t()")
    v = _vjp_graph()
    inp, out = v["inp"], v["out"]
    out.backward(tg.ones_like(out), retain_graph=True)
    print(f"first call, inp.grad =\n{inp.grad}")
    out.backward(tg.ones_like(out), retain_graph=True)
    print(f"second call (gradients accumulate), inp.grad =\n{inp.grad}")
    inp.grad.zero_()
    out.backward(tg.ones_like(out), retain_graph=True)
    print(f"after inp.grad.zero_(), inp.grad =\n{inp.grad}")
    return 0


# ---- train -----------------------------------------------------------------------------------
def two_spirals(points, seed, noise=0.15, turns=1.75):
    """``points`` 2-d points on two interleaved spiral arms (float64 array, int64 labels)."""
    rng = np.random.default_rng(seed)
    m = points // 2
    t = np.sqrt(rng.random(m)) * turns * 2 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    X = np.concatenate([arm, -arm]) + noise * rng.standard_normal((2 * m, 2))
    X /= np.abs(X).max()
    y = np.concatenate([np.zeros(m, np.int64), np.ones(m, np.int64)])
    return X, y


def _progress(epoch, epochs, loss, width=30):
    done = width * epoch // epochs
    bar = "#" * done + "." * (width - done)
    sys.stderr.write(f"\repoch {epoch:>{len(str(epochs))}}/{epochs} [{bar}] loss {loss:.4f}")
    sys.stderr.flush()


def _model(args, dtype):
    """The MLP as nn layers: Linear layers with weights N(0, 1/fan_in) and zero biases from
    tapegrad's generator (seeded), the activation between them."""
    act = tg.nn.Tanh if args.activation == "tanh" else tg.nn.ReLU
    sizes = [2] + [args.width] * args.layers + [2]
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = tg.nn.Linear(fan_in, fan_out, dtype=dtype)
        with tg.no_grad():
            lin.weight.copy_(tg.randn(fan_in, fan_out, dtype=dtype).t() / fan_in ** 0.5)
            lin.bias.zero_()
        layers += [lin] if i == len(sizes) - 2 else [lin, act()]
    return tg.nn.Sequential(*layers)


def _optimizer(args, model):
    if args.optimizer == "adam":
        return tg.optim.Adam(model.parameters(), lr=args.lr)
    return tg.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)


_SETTINGS = ("width", "layers", "activation", "dtype", "optimizer", "points", "seed")


def _resume(args, model, opt):
    """Load --resume's checkpoint into model and opt; returns the epochs it had done."""
    try:
        ck = tg.load(args.resume)
    except (OSError, tg.serialization.SerializationError) as e:
        raise SystemExit(f"tapegrad train: cannot resume from {args.resume}: {e}") from None
    saved = ck.get("settings", {}) if isinstance(ck, dict) else {}
    differ = [f"--{k} {saved.get(k)!r} (now {getattr(args, k)!r})" for k in _SETTINGS
              if saved.get(k) != getattr(args, k)]
    if differ:
        raise SystemExit(f"tapegrad train: {args.resume} was trained with other settings: "
                         f"{', '.join(differ)}; pass the same ones to resume")
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    return int(ck["epoch"])


def _data_parallel(model, X, y):
    """--distributed: join the MPI job, wrap the model in DistributedDataParallel and take
    this rank's share of the batch (every world_size-th point). Returns (the model to
    train, its share of X and y, the loss scale, rank, world size): each rank's mean loss
    is scaled by world_size * share / points, so that DDP's average of the ranks' gradients
    is exactly the one-process full-batch gradient for any world size."""
    dist = tg.distributed
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    if world > len(y):
        raise SystemExit(f"tapegrad train: {world} ranks for {len(y)} points; pass more "
                         f"--points or fewer ranks")
    mine = tg.tensor(np.arange(rank, len(y), world))
    scale = world * len(mine) / len(y)
    return tg.nn.parallel.DistributedDataParallel(model), X[mine], y[mine], scale, rank, world


def cmd_train(args):
    dtype = tg.float32 if args.dtype == "float32" else tg.float64
    X_np, y_np = two_spirals(args.points, args.seed)
    X, y = tg.tensor(X_np, dtype=dtype), tg.tensor(y_np)
    tg.manual_seed(args.seed)
    model = _model(args, dtype)
    loss_fn = tg.nn.CrossEntropyLoss()
    opt = _optimizer(args, model)
    done = _resume(args, model, opt) if args.resume else 0
    rank, world, net, Xs, ys, scale = 0, 1, model, X, y, 1.0
    if args.distributed:
        net, Xs, ys, scale, rank, world = _data_parallel(model, X, y)

    def objective(X, y):
        loss = loss_fn(net(X), y)
        return loss * scale if scale != 1.0 else loss

    if args.compiled:           # record the step once, replay it in compiled code after
        objective = tg.compile(objective)

    say = print if rank == 0 else (lambda *a, **k: None)
    how = (f"Adam lr={args.lr}" if args.optimizer == "adam"
           else f"SGD lr={args.lr} momentum={args.momentum}")
    say(f"two spirals: {len(y_np)} points; MLP 2-{'-'.join([str(args.width)] * args.layers)}-2 "
        f"({args.activation}, {args.dtype}); {how}; "
        f"seed {args.seed}{'; compiled' if args.compiled else ''}"
        f"{f'; data-parallel over {world} MPI ranks' if args.distributed else ''}"
        f"{f'; resumed after epoch {done}' if done else ''}")
    total = done + args.epochs
    every = max(1, args.epochs // (100 if sys.stderr.isatty() else 10))
    start = time.perf_counter()
    for epoch in range(done + 1, total + 1):
        opt.zero_grad()
        loss = objective(Xs, ys)
        loss.backward()
        opt.step()
        if rank == 0 and ((epoch - done) % every == 0 or epoch == total):
            _progress(epoch, total, loss.item() / scale)
    if rank == 0:
        sys.stderr.write(f"  ({time.perf_counter() - start:.1f} s)\n")
    with tg.no_grad():
        logits = model(X)
        final = loss_fn(logits, y).item()
        acc = (logits.argmax(dim=1) == y).float().mean().item()
    say(f"final loss {final:.4f}; training accuracy {100 * acc:.1f}% "
        f"({int(round(acc * len(y_np)))}/{len(y_np)})")
    if rank != 0:
        return 0
    if args.save:
        ck = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": total,
              "settings": {k: getattr(args, k) for k in _SETTINGS}}
        try:
            tg.save(ck, args.save)
        except OSError as e:
            sys.stderr.write(f"tapegrad train: cannot save {args.save}: {e.strerror}\n")
            return 1
        print(f"saved {args.save} (epoch {total})")
    return 0


# ---- graph -----------------------------------------------------------------------------------
def _mlp_graph():
    x = tg.randn(4, 2)
    target = tg.tensor([0, 1, 1, 0])
    w1 = tg.randn(2, 8, requires_grad=True)
    b1 = tg.zeros(8, requires_grad=True)
    w2 = tg.randn(8, 2, requires_grad=True)
    b2 = tg.zeros(2, requires_grad=True)
    h = tg.relu(x @ w1 + b1)
    loss = F.cross_entropy(h @ w2 + b2, target)
    return dict(w1=w1, b1=b1, w2=w2, b2=b2, h=h, loss=loss)


_EXAMPLES = {"tutorial": (_tutorial_graph, "loss"), "mlp": (_mlp_graph, "loss"),
             "vjp": (_vjp_graph, "out")}


def cmd_graph(args):
    tg.manual_seed(args.seed)
    build, root = _EXAMPLES[args.example]
    tensors = build()
    source = viz.to_dot(tensors[root], names=tensors)
    out = Path(args.output)
    fmt = args.format
    if out.suffix in (".svg", ".png"):     # -o names the picture: keep the DOT beside it
        fmt, out = fmt or out.suffix[1:], out.with_suffix(".dot")
    try:
        out.write_text(source)
    except OSError as e:
        sys.stderr.write(f"tapegrad graph: cannot write {out}: {e.strerror}\n")
        return 1
    print(f"wrote {out}")
    if fmt:
        image = out.with_suffix("." + fmt)
        try:
            written = viz.render(source, image, fmt)
        except RuntimeError as e:
            sys.stderr.write(f"tapegrad graph: {e}\n")
            return 1
        if written is None:
            print(f"Graphviz 'dot' is not on PATH, so no {fmt.upper()} was drawn "
                  f"(install graphviz, or run: dot -T{fmt} {out} -o {image})")
        else:
            print(f"wrote {written}")
    return 0


# ---- bench -----------------------------------------------------------------------------------
def cmd_bench(args):
    print("The benchmark report is provided by `python -m bench` (run from the repository root).",
          flush=True)
    here = os.getcwd()        # a console script's sys.path does not include the checkout
    if os.path.exists(os.path.join(here, "bench", "report.py")) and here not in sys.path:
        sys.path.insert(0, here)
    try:
        report = importlib.import_module("bench.report")
    except ImportError as e:
        if getattr(e, "name", None) in ("bench", "bench.report"):
            why = "the bench package (bench/report.py) is not available here"
        else:
            why = f"bench.report could not be imported ({e})"
        sys.stderr.write(f"tapegrad bench: {why}; run `python -m bench` from a tapegrad "
                         f"checkout\n")
        return 1
    result = report.main(args.rest)
    return result if isinstance(result, int) else 0


# ---- info ------------------------------------------------------------------------------------
def cmd_info(args):
    """Versions, the BLAS that compiled code calls, and where compiled kernels are cached."""
    import numba

    from tapegrad import kernels as K
    from tapegrad.kernels import cachekey
    print(f"tapegrad {tg.__version__} ({os.path.dirname(tg.__file__)})")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, numba {numba.__version__}")
    blas = ("numpy's bundled OpenBLAS, called from compiled code" if K.GEMM.any()
            else "numpy's matmul (no bundled OpenBLAS found, or NUMBA_DISABLE_JIT)")
    print(f"matrix products: {blas}")
    from tapegrad.kernels import reverse, tiers
    where = cachekey.cache_location(reverse.sweep)
    print(f"compiled kernels cached in: {where or 'nowhere (NUMBA_DISABLE_JIT)'}")
    if os.environ.get("NUMBA_CACHE_DIR"):
        print("  (chosen by NUMBA_CACHE_DIR)")
    if where:
        done = [s for s in tiers.STAGES if tiers.state().ready(s)]
        todo = [s for s in tiers.STAGES if s not in done]
        print(f"  warm-up stages compiled: {', '.join(done) or 'none'}"
              + (f" (to do: {', '.join(todo)}; `tapegrad warmup` compiles them now)"
                 if todo else ""))
    mpi = ("mpi4py installed (mpiexec -n 2 tapegrad train --distributed)"
           if tg.distributed.is_available()
           else "no mpi4py: pip install 'tapegrad[distributed]'")
    print(f"tapegrad.distributed: {mpi}")
    return 0


# ---- warmup ----------------------------------------------------------------------------------
def cmd_warmup(args):
    """Compile the kernels into the cache now (tapegrad.warmup), stage by stage."""
    from tapegrad import warmup
    return warmup.main(args.stages)


# ---- entry point -----------------------------------------------------------------------------
def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser():
    p = _Parser(prog="tapegrad", description="tapegrad: reverse-mode autodiff on a flat tape.")
    p.add_argument("--version", action="version", version=f"tapegrad {tg.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    d = sub.add_parser("demo", help="walk through the autograd tutorial with tapegrad",
                       description="Run the autograd tutorial (one-layer network, no_grad, "
                                   "detach, vector-Jacobian products) and print each step.")
    d.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("train", help="train a small MLP on two spirals",
                       description="Train an MLP (nn.Sequential, CrossEntropyLoss, an optim "
                                   "optimizer) on a two-spirals data set, full batch, and "
                                   "report training accuracy.")
    t.add_argument("--epochs", type=_positive, default=1500, help="full-batch steps (1500)")
    t.add_argument("--width", type=_positive, default=32, help="hidden units per layer (32)")
    t.add_argument("--layers", type=_positive, default=2, help="hidden layers (2)")
    t.add_argument("--activation", choices=("tanh", "relu"), default="tanh",
                   help="hidden activation (tanh)")
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="floating point type (float32)")
    t.add_argument("--seed", type=int, default=0, help="seed for data and weights (0)")
    t.add_argument("--lr", type=float, default=0.1, help="learning rate (0.1)")
    t.add_argument("--momentum", type=float, default=0.9, help="SGD momentum, 0 for none (0.9)")
    t.add_argument("--points", type=_positive, default=400, help="points, both arms (400)")
    t.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                   help="optim.SGD (with --momentum) or optim.Adam (sgd)")
    t.add_argument("--compiled", action="store_true",
                   help="record the loss once with tapegrad.compile and replay it each step")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: run as mpiexec -n 2 tapegrad train "
                        "--distributed (each rank takes a share of the points; needs "
                        "pip install 'tapegrad[distributed]')")
    t.add_argument("--save", metavar="PATH",
                   help="save the model, optimizer and epoch count here afterwards")
    t.add_argument("--resume", metavar="PATH",
                   help="continue from a --save checkpoint for --epochs more epochs")
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("graph", help="write a computational graph as Graphviz DOT",
                       description="Write the graph of an example computation as DOT text, "
                                   "and draw it too when --format is given and Graphviz "
                                   "'dot' is installed.")
    g.add_argument("--example", choices=sorted(_EXAMPLES), default="tutorial",
                   help="which computation to draw (tutorial)")
    g.add_argument("-o", "--output", default="graph.dot", help="DOT file to write (graph.dot)")
    g.add_argument("--format", choices=("svg", "png"), help="also draw FILE.svg or FILE.png")
    g.add_argument("--seed", type=int, default=0, help="random seed (0)")
    g.set_defaults(func=cmd_graph)

    i = sub.add_parser("info", help="versions, BLAS, and where compiled code is cached",
                       description="Print tapegrad's, numpy's and Numba's versions, the BLAS "
                                   "that compiled code calls, and the folder where the "
                                   "compiled kernels are cached.")
    i.set_defaults(func=cmd_info)

    from tapegrad.kernels.tiers import STAGES
    w = sub.add_parser("warmup", help="compile the kernels into the cache now",
                       description="Compile the kernels into Numba's cache in the foreground "
                                   "(a first backward on a cold cache otherwise starts this "
                                   "in the background and runs interpreted kernels "
                                   "meanwhile). Stages: " + ", ".join(STAGES) + " (all).")
    w.add_argument("stages", nargs="*", metavar="STAGE",
                   help="stages to compile (default: all)")
    w.set_defaults(func=cmd_warmup)

    b = sub.add_parser("bench", help="run the benchmark report (python -m bench)",
                       description="Hand over to the benchmark report in bench/report.py; "
                                   "remaining arguments are passed on to it.")
    b.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the report")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv=None):
    """Run the ``tapegrad`` command line with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit status: 0 on success, 1 when a step fails, 2 for bad arguments.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"] and argv[1:2] not in (["-h"], ["--help"]):
        args = _parser().parse_args(["bench"])
        args.rest = argv[1:]               # everything, options included, goes to the report
    else:
        args = _parser().parse_args(argv)
    if args.command == "train":
        bad = _Parser(prog="tapegrad train").error
        if args.lr <= 0:
            bad(f"--lr must be positive, got {args.lr}")
        if args.points < 4:
            bad(f"--points must be at least 4 (two per arm), got {args.points}")
        if args.distributed and args.compiled:
            bad("--compiled and --distributed do not go together yet: a compiled replay "
                "would skip DistributedDataParallel's forward; drop one of them")
        if args.distributed and not tg.distributed.is_available():
            bad("--distributed needs mpi4py and an MPI library: pip install "
                "'tapegrad[distributed]', then run mpiexec -n 2 tapegrad train --distributed")
    try:
        return args.func(args)
    except BrokenPipeError:                # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
