"""The workloads of issue 5, defined once and run by every system.

Each workload is a loss written once against a small namespace of ops (``o.tanh``,
``o.sum``, ``o.mse``...) plus ``@``, ``*`` and ``+``, with its data made from a fixed seed
in float64 numpy and converted to each system's dtype. ``build(key, system)`` returns a
``Case`` with the same four methods for every system:

- ``run()``       forward + backward (W6: the whole training step),
- ``forward()``   forward with recording (returns the graph, or what backward needs),
- ``backward(g)`` backward alone on a graph from ``forward()``,
- ``result()``    (loss, {name: float64 array}) of one fresh step: the gradients, or for
                  a training workload the parameters after the step.

``verify(key, system)`` compares ``result()`` with numpy's hand-written float64 reference.
"""
import dataclasses
import functools
import os
import tempfile
from dataclasses import dataclass

import numpy as np

SEED = 0
CHAIN = 1000          # W2/W3: 1,000 x (mul, add, tanh) = 3,000 recorded ops
LR = 0.01             # W6's SGD step

# The chains' maps v -> tanh(v * mul + add), as (mul, add).
# W2/W3: the fixed point is 0.622, where the derivative is 1.01 * (1 - 0.622^2) = 0.62, so
# the gradient is about 0.62^1000 = 1e-207. Normal in float64; in float32 the reverse sweep
# leaves float32's normal range (1.2e-38) after about 180 steps and then rounds along at
# the smallest subnormals (1.4e-45 times 0.62 rounds back up to 1.4e-45) to the end.
SUBNORMAL_MAP = (1.01, 0.1)
# W2n/W3n: a contracting map whose derivative at its fixed point (0.06) is 0.996, and 1
# near 0: from the seed's data the 1,000 derivatives multiply to between 4e-6 and 0.08,
# and no partial product of the reverse sweep falls below 4e-6. Same ops, same shapes,
# same data as W2/W3; only the two constants differ. Its tanh arguments are small (0.02
# to 0.07 once the transient has passed; W2's are 0.73), which may change a tanh kernel's
# cost: the forward never sees a subnormal in either, so a forward-time difference between
# W2 and W2n is not subnormals' doing, and float64 (normal in both) is the control.
NORMAL_MAP = (0.9995, 0.0001)
# W2/W3's float32 gradient is below float32's range, so comparing it with the float64
# reference proves nothing (an all-zero gradient would pass). verify() therefore also
# checks, in float32, the gradient of the chain's first PREFIX steps, the same ops on the
# same data, where the gradient (2e-22 to 2e-19 here) is still far inside float32's range.
PREFIX = 100


# ---- losses, written once ----
def loss_tutorial(o, p, c):
    return o.bce(c["x"] @ p["w"] + p["b"], c["y"])


def chain_loss(steps, mul, add):
    """`steps` x tanh(v * mul + add), then sum."""
    def loss(o, p, c):
        v = p["v"]
        for _ in range(steps):
            v = o.tanh(v * mul + add)
        return o.sum(v)
    return loss


def _mlp_loss(act):
    def loss(o, p, c):
        h = c["x"]
        for i in range(3):
            h = h @ p[f"W{i}"] + p[f"b{i}"]
            if i < 2:
                h = getattr(o, act)(h)
        return o.mse(h, c["t"])
    return loss


# ---- data ----
def _tutorial(rng):
    return ({"w": rng.standard_normal((5, 3)), "b": rng.standard_normal(3)},
            {"x": np.ones(5), "y": np.zeros(3)})


def _chain(n):
    return lambda rng: ({"v": rng.standard_normal(n)}, {})


def _mlp(sizes, batch):
    def make(rng):
        p = {}
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            p[f"W{i}"] = rng.standard_normal((a, b)) / np.sqrt(a)
            p[f"b{i}"] = 0.1 * rng.standard_normal(b)
        return p, {"x": rng.standard_normal((batch, sizes[0])),
                   "t": rng.standard_normal((batch, sizes[-1]))}
    return make


@dataclass(frozen=True)
class Workload:
    key: str
    title: str           # the benchmark group
    what: str            # one line for the report
    kind: str            # which hand-written numpy version: tutorial, chain, mlp
    loss: object
    make: object
    act: str = ""        # mlp activation
    train: bool = False  # W6: run() is forward, backward, SGD step under no_grad, zero_()
    phases: tuple = ("fb",)
    chain: tuple = ()    # chain workloads: (steps, mul, add)
    prefix: int = 0      # float32 gradient checked on the chain's first `prefix` steps

    def data(self):
        """(params, constants) as float64 arrays; shared: systems convert (copy) them."""
        return _data(self.make)


def _chain_workload(key, title, what, n, mul_add, **kw):
    return Workload(key, title, what, "chain", chain_loss(CHAIN, *mul_add), _chain(n),
                    phases=PHASES, chain=(CHAIN, *mul_add), **kw)


MLP_SMALL, MLP_LARGE = _mlp((64, 256, 256, 10), 32), _mlp((1024, 1024, 1024, 1024), 512)
PHASES = ("fb", "forward", "backward")
WORKLOADS = {w.key: w for w in [
    Workload("W1", "W1 tutorial", "x@w+b on 5 inputs, 3 outputs, BCE with logits",
             "tutorial", loss_tutorial, _tutorial),
    _chain_workload("W2", "W2 chain",
                    "1,000 x tanh(v*1.01+0.1) on 16 floats (3,000 ops), sum",
                    16, SUBNORMAL_MAP, prefix=PREFIX),
    _chain_workload("W2n", "W2n normal chain",
                    "W2 with tanh(v*0.9995+0.0001): the float32 gradient stays normal",
                    16, NORMAL_MAP),
    _chain_workload("W3", "W3 scalar chain", "W2 on one element (shape (1,))",
                    1, SUBNORMAL_MAP, prefix=PREFIX),
    _chain_workload("W3n", "W3n normal scalar chain", "W2n on one element (shape (1,))",
                    1, NORMAL_MAP),
    Workload("W4", "W4 small MLP", "MLP 64-256-256-10, batch 32, tanh, MSE",
             "mlp", _mlp_loss("tanh"), MLP_SMALL, "tanh", phases=PHASES),
    Workload("W5", "W5 large MLP", "MLP 1024-1024-1024-1024, batch 512, relu, MSE",
             "mlp", _mlp_loss("relu"), MLP_LARGE, "relu", phases=PHASES),
    Workload("W6", "W6 training step", "W4 + SGD update under no_grad + grad.zero_()",
             "mlp", _mlp_loss("tanh"), MLP_SMALL, "tanh", train=True),
]}


@functools.lru_cache(maxsize=None)
def _data(make):
    return make(np.random.default_rng(SEED))


@functools.lru_cache(maxsize=None)
def prefix_of(key):
    """Workload `key`'s chain cut to its first `prefix` steps (same map, same data)."""
    wl = WORKLOADS[key]
    steps, mul, add = wl.chain
    n = wl.prefix
    assert 0 < n < steps, (key, n)
    return dataclasses.replace(wl, key=f"{key}[:{n}]", title=f"{wl.title}, first {n} steps",
                               loss=chain_loss(n, mul, add), chain=(n, mul, add), prefix=0)


# ---- op namespaces ----
class Ops:
    def __init__(self, **fns):
        self.__dict__.update(fns)


def _array_ops(m, relu):
    """Ops for a numpy-like module (jax.numpy, autograd.numpy)."""
    return Ops(tanh=m.tanh, sum=m.sum, relu=relu,
               mse=lambda a, b: m.mean((a - b) ** 2),
               bce=lambda z, y: m.mean(m.maximum(z, 0.0) - z * y + m.log1p(m.exp(-m.abs(z)))))


# ---- systems ----
class Case:
    def warm(self, phase):
        """Run `phase` once (JAX compiles here), outside any timed region."""
        if phase == "fb":
            self.run()
        elif phase == "forward":
            self.forward()
        else:
            self.backward(self.forward())


class TorchLike(Case):
    """tapegrad and PyTorch: the same code, since tapegrad follows torch's API."""

    def __init__(self, wl, dtype, module):
        T = self.T = __import__(module)
        dt = getattr(T, dtype)
        F = T.nn.functional
        self.o = Ops(tanh=T.tanh, sum=T.sum, relu=T.relu, mse=F.mse_loss,
                     bce=F.binary_cross_entropy_with_logits)
        p, c = wl.data()
        self.p = {k: T.tensor(v, dtype=dt, requires_grad=True) for k, v in p.items()}
        self.c = {k: T.tensor(v, dtype=dt) for k, v in c.items()}
        self.params = list(self.p.values())
        self.wl = wl

    def forward(self):
        for t in self.params:
            t.grad = None
        return self.wl.loss(self.o, self.p, self.c)

    def backward(self, loss):
        loss.backward()

    def step(self):
        loss = self.wl.loss(self.o, self.p, self.c)
        loss.backward()
        with self.T.no_grad():
            for t in self.params:
                t -= LR * t.grad
                t.grad.zero_()
        return loss

    def run(self):
        if self.wl.train:
            return self.step()
        loss = self.forward()
        loss.backward()
        return loss

    def result(self):
        loss = self.run()
        out = self.p if self.wl.train else {k: t.grad for k, t in self.p.items()}
        return float(loss.item()), {k: _f64(t.detach().numpy()) for k, t in out.items()}


class Compiled(TorchLike):
    """tapegrad replayed: ``tapegrad.func.value_and_grad(tapegrad.compile(f))`` over every
    parameter, the counterpart of ``jax.jit(jax.value_and_grad(f))``. Forward+backward
    only (the replayed step is one unit, like JAX's)."""

    def __init__(self, wl, dtype):
        super().__init__(wl, dtype, "tapegrad")
        names = list(self.p)
        self.names = names

        def f(*params):
            return wl.loss(self.o, dict(zip(names, params)), self.c)
        self.vg = self.T.func.value_and_grad(self.T.compile(f),
                                             argnums=tuple(range(len(names))))

    def run(self):
        loss, grads = self.vg(*self.params)
        if self.wl.train:
            with self.T.no_grad():
                for t, g in zip(self.params, grads):
                    t -= LR * g
        self.grads = grads
        return loss

    def forward(self):
        raise NotImplementedError("the compiled system times forward+backward only")

    def result(self):
        loss = self.run()
        out = self.p if self.wl.train else dict(zip(self.names, self.grads))
        return float(loss.item()), {k: _f64(t.detach().numpy()) for k, t in out.items()}


class Node(TorchLike):
    """tapegrad replayed on the path a PyTorch user writes: ``fc = tapegrad.compile(f)``,
    then ``loss = fc(*params); loss.backward()`` with ``.grad`` reset first (W6: the same
    SGD step as eager). The call is one node of the eager graph (tapegrad/compiled_call.py).
    Forward+backward only."""

    def __init__(self, wl, dtype):
        super().__init__(wl, dtype, "tapegrad")
        names = list(self.p)
        self.fc = self.T.compile(lambda *ps: wl.loss(self.o, dict(zip(names, ps)), self.c))

    def run(self):
        for t in self.params:
            t.grad = None
        loss = self.fc(*self.params)
        loss.backward()
        if self.wl.train:
            with self.T.no_grad():
                for t in self.params:
                    t -= LR * t.grad
        return loss

    def forward(self):
        raise NotImplementedError("the replayed systems time forward+backward only")

    def result(self):
        loss = self.run()
        out = self.p if self.wl.train else {k: t.grad for k, t in self.p.items()}
        return float(loss.item()), {k: _f64(t.detach().numpy()) for k, t in out.items()}


class Jax(Case):
    """``jax.jit(jax.value_and_grad(f))``; compiled on first use (call ``warm`` first).
    Forward alone is ``jit(vjp)`` (value and residuals), backward alone ``jit`` of
    applying the returned vjp."""

    def __init__(self, wl, dtype):
        import jax
        # float64 needs x64; switched on for the whole process, since a context around
        # each timed call would be timed too. Arrays made float32 stay float32 under it.
        jax.config.update("jax_enable_x64", True)
        self.jax = jax
        p, c = wl.data()
        self.p = {k: jax.numpy.asarray(v, dtype) for k, v in p.items()}
        self.c = {k: jax.numpy.asarray(v, dtype) for k, v in c.items()}
        self.wl = wl
        self.vg, self.fwd, self.bwd, self.step = _jax_fns(wl)
        self.seed = jax.numpy.ones((), dtype)       # d loss / d loss

    def run(self):
        if self.wl.train:
            loss, self.p = out = self.step(self.p, self.c)
        else:
            out = self.vg(self.p, self.c)
        return self.jax.block_until_ready(out)[0]

    def forward(self):
        return self.jax.block_until_ready(self.fwd(self.p, self.c))

    def backward(self, graph):
        return self.jax.block_until_ready(self.bwd(graph[1], self.seed))

    def result(self):
        if self.wl.train:
            loss = self.run()
            out = self.p
        else:
            loss, out = self.vg(self.p, self.c)
        return float(loss), {k: _f64(v) for k, v in out.items()}


@functools.lru_cache(maxsize=None)
def _jax_fns(wl):
    """Jitted functions per workload, made once per process (compiling W2 takes seconds)."""
    import jax
    import jax.numpy as jnp
    if not jax.config.jax_compilation_cache_dir:   # W2/W3 compile for ~10 s; reuse it
        jax.config.update("jax_compilation_cache_dir",
                          os.path.join(tempfile.gettempdir(), "tapegrad-bench-jax-cache"))
    o = _array_ops(jnp, jax.nn.relu)

    def f(p, c):
        return wl.loss(o, p, c)

    vg = jax.value_and_grad(f)

    def step(p, c):
        loss, g = vg(p, c)
        return loss, jax.tree_util.tree_map(lambda a, b: a - LR * b, p, g)

    fwd = jax.jit(lambda p, c: jax.vjp(lambda q: f(q, c), p))
    bwd = jax.jit(lambda vjp, g: vjp(g)[0])
    return jax.jit(vg), fwd, bwd, jax.jit(step)


class HipsAutograd(Case):
    """HIPS autograd: traces numpy calls, float64 only."""

    def __init__(self, wl, dtype):
        import autograd
        import autograd.numpy as anp
        o = _array_ops(anp, lambda h: anp.maximum(h, 0.0))
        p, c = wl.data()
        self.p = {k: v.astype(dtype) for k, v in p.items()}
        self.f = lambda q: wl.loss(o, q, c)
        self.vg = autograd.value_and_grad(self.f)
        self.make_vjp = autograd.make_vjp
        self.wl = wl

    def run(self):
        loss, g = self.vg(self.p)
        if self.wl.train:
            for k, v in self.p.items():
                v -= LR * g[k]
        return loss, g

    def forward(self):
        return self.make_vjp(self.f)(self.p)     # (vjp, loss): the traced graph

    def backward(self, graph):
        return graph[0](1.0)

    def result(self):
        loss, g = self.run()
        return float(loss), {k: _f64(v) for k, v in (self.p if self.wl.train else g).items()}


class Numpy(Case):
    """Forward and backward written by hand: the minimal work."""

    def __init__(self, wl, dtype):
        p, c = wl.data()
        self.p = {k: v.astype(dtype) for k, v in p.items()}
        self.c = {k: v.astype(dtype) for k, v in c.items()}
        self.fwd, self.bwd = _NUMPY[wl.kind]
        self.wl = wl

    def forward(self):
        return self.fwd(self.wl, self.p, self.c)

    def backward(self, graph):
        return self.bwd(self.wl, self.p, self.c, graph[1])

    def run(self):
        graph = self.forward()
        g = self.backward(graph)
        if self.wl.train:
            for k, v in self.p.items():
                v -= LR * g[k]
        return graph[0], g

    def result(self):
        loss, g = self.run()
        return float(loss), {k: _f64(v) for k, v in (self.p if self.wl.train else g).items()}


def _np_tutorial_fwd(wl, p, c):
    z = c["x"] @ p["w"] + p["b"]
    y = c["y"]
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    return loss, z


def _np_tutorial_bwd(wl, p, c, z):
    dz = (1 / (1 + np.exp(-z)) - c["y"]) / z.size
    return {"w": np.outer(c["x"], dz), "b": dz}


def _np_chain_fwd(wl, p, c):
    steps, mul, add = wl.chain
    v = p["v"]
    outs = []
    for _ in range(steps):
        v = np.tanh(v * mul + add)
        outs.append(v)
    return v.sum(), outs


def _np_chain_bwd(wl, p, c, outs):
    mul = wl.chain[1]
    g = np.ones_like(outs[-1])
    for v in reversed(outs):
        g = g * (1 - v * v) * mul
    return {"v": g}


def _np_mlp_fwd(wl, p, c):
    hs = [c["x"]]
    for i in range(3):
        h = hs[-1] @ p[f"W{i}"] + p[f"b{i}"]
        if i < 2:
            h = np.tanh(h) if wl.act == "tanh" else np.maximum(h, 0)
        hs.append(h)
    d = hs[-1] - c["t"]
    return np.mean(d * d), (hs, d)


def _np_mlp_bwd(wl, p, c, cache):
    hs, d = cache
    g = d * (2 / d.size)
    grads = {}
    for i in (2, 1, 0):
        grads[f"W{i}"] = hs[i].T @ g
        grads[f"b{i}"] = g.sum(0)
        if i:
            g = g @ p[f"W{i}"].T
            g *= (1 - hs[i] * hs[i]) if wl.act == "tanh" else (hs[i] > 0)
    return grads


_NUMPY = {"tutorial": (_np_tutorial_fwd, _np_tutorial_bwd),
          "chain": (_np_chain_fwd, _np_chain_bwd), "mlp": (_np_mlp_fwd, _np_mlp_bwd)}


@dataclass(frozen=True)
class System:
    name: str
    module: str        # what pytest.importorskip needs
    dtype: str
    make: object
    phases: tuple = PHASES   # the phases it can time

    @property
    def family(self):
        return self.name.split("-")[0]


SYSTEMS = {s.name: s for s in [
    System("tapegrad-f32", "tapegrad", "float32", lambda w: TorchLike(w, "float32", "tapegrad")),
    System("tapegrad-f64", "tapegrad", "float64", lambda w: TorchLike(w, "float64", "tapegrad")),
    System("compiled-f32", "tapegrad", "float32", lambda w: Compiled(w, "float32"), ("fb",)),
    System("compiled-f64", "tapegrad", "float64", lambda w: Compiled(w, "float64"), ("fb",)),
    System("node-f32", "tapegrad", "float32", lambda w: Node(w, "float32"), ("fb",)),
    System("node-f64", "tapegrad", "float64", lambda w: Node(w, "float64"), ("fb",)),
    System("torch-f32", "torch", "float32", lambda w: TorchLike(w, "float32", "torch")),
    System("torch-f64", "torch", "float64", lambda w: TorchLike(w, "float64", "torch")),
    System("jax-f32", "jax", "float32", lambda w: Jax(w, np.float32)),
    System("jax-f64", "jax", "float64", lambda w: Jax(w, np.float64)),
    System("autograd-f64", "autograd", "float64", lambda w: HipsAutograd(w, np.float64)),
    System("numpy-f32", "numpy", "float32", lambda w: Numpy(w, np.float32)),
    System("numpy-f64", "numpy", "float64", lambda w: Numpy(w, np.float64)),
]}


def available(name):
    try:
        __import__(SYSTEMS[name].module)
    except ImportError:
        return False
    return True


def build(key, system):
    return SYSTEMS[system].make(WORKLOADS[key])


def timed(key):
    """[(system, phase)] that the benchmarks time for workload `key`: every phase of the
    workload that the system can time (the compiled systems: forward+backward only)."""
    return [(s, ph) for s in SYSTEMS for ph in WORKLOADS[key].phases
            if ph in SYSTEMS[s].phases]


# ---- checking ----
def _f64(a):
    return np.array(a, dtype=np.float64)


# rtol, and atol as a fraction of the largest reference entry
TOLERANCE = {"float32": (2e-3, 1e-4), "float64": (1e-7, 1e-10)}


@functools.lru_cache(maxsize=None)
def _reference(wl):
    return Numpy(wl, np.float64).result()


def reference(key):
    return _reference(WORKLOADS[key])


def _check(wl, system, below_range=False):
    """Assert that `system`'s loss and gradients on `wl` match the float64 reference.
    Refuses a check that an all-zero result would pass, unless `below_range` says that
    this is known (W2/W3 in float32) and checked another way."""
    ref_loss, ref = _reference(wl)
    case = SYSTEMS[system].make(wl)
    loss, got = case.result()
    dtype = SYSTEMS[system].dtype
    rtol, arel = TOLERANCE[dtype]
    tiny = float(np.finfo(dtype).tiny)     # smallest normal number
    np.testing.assert_allclose(loss, ref_loss, rtol=rtol, atol=tiny,
                               err_msg=f"{system} {wl.key} loss")
    assert set(got) == set(ref), (system, wl.key, sorted(got), sorted(ref))
    for k, r in ref.items():
        atol = max(arel * float(np.max(np.abs(r))), tiny)
        hollow = bool(np.all(np.abs(r) <= atol + rtol * np.abs(r)))   # zeros would pass
        assert below_range or not hollow, (
            f"{system} {wl.key} {k}: the reference (largest entry "
            f"{np.max(np.abs(r)):.1e}) is below {dtype}'s range, so this check cannot fail")
        np.testing.assert_allclose(got[k], r, rtol=rtol, atol=atol,
                                   err_msg=f"{system} {wl.key} {k}")
    return case


def verify(key, system):
    """Assert that `system` computes workload `key`'s loss and gradients (or, for a
    training workload, updated parameters) as numpy's hand-written float64 version does.
    Returns the case it checked (already run once, so warm for ``run``).

    W2/W3 in float32: their gradient (about 1e-207) is below float32's range, so the
    whole chain's gradient check could not fail (zeros pass); it still runs, and the
    gradient of the chain's first PREFIX steps (see PREFIX) is checked as well, built and
    run by the same system in the same dtype."""
    wl = WORKLOADS[key]
    below = SYSTEMS[system].dtype == "float32" and wl.prefix > 0
    case = _check(wl, system, below_range=below)
    if below:
        _check(prefix_of(key), system)
    return case
