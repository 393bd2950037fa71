"""The optimizer base class, and the driver that runs a compiled update over all parameters.

``Optimizer`` keeps PyTorch's data model: ``param_groups`` (a list of dicts, each with its
``params`` and options), ``defaults``, and ``state`` (a dict from parameter to its state
dict). ``_Fused`` is what the built-in optimizers share: their ``step()`` collects every
parameter that has a gradient into an address table per dtype and makes one call into
their kernel in ``_kernels``; the parameters' arrays are updated in place, outside the
graph.
"""
import warnings
from collections import defaultdict
from copy import deepcopy
from itertools import chain

import numpy as np

from ..grad_mode import enable_grad
from ..ops.inplace import _mark_modified
from ..tensor import Tensor
from . import _kernels


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()


def _typename(x):
    if isinstance(x, Tensor):
        return "tapegrad.Tensor"
    mod = type(x).__module__
    return type(x).__qualname__ if mod == "builtins" else mod + "." + type(x).__qualname__


class Optimizer:
    """Base class of all optimizers.

    ``params`` is an iterable of tensors, or of dicts that define parameter groups (each
    with a ``"params"`` entry and any options that override ``defaults`` for that group).
    Subclasses implement ``step()``.

    >>> import tapegrad as tg
    >>> w = tg.zeros(3, requires_grad=True)
    >>> opt = tg.optim.SGD([w], lr=0.5)
    >>> w.grad = tg.ones(3)
    >>> opt.step()
    >>> w
    tensor([-0.5000, -0.5000, -0.5000], requires_grad=True)
    """

    def __init__(self, params, defaults):
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got " + _typename(params))
        self.state = defaultdict(dict)
        self.param_groups = []
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state,
                "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __repr__(self):
        text = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            for key in sorted(group):
                if key != "params":
                    text += f"    {key}: {group[key]}\n"
        return text + ")"

    def add_param_group(self, param_group):
        """Add a group of parameters with its own options (missing options take the
        optimizer's defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        else:
            param_group["params"] = list(params)
        tensors, names = [], []
        for p in param_group["params"]:
            if isinstance(p, tuple):
                names.append(p[0])
                tensors.append(p[1])
            else:
                tensors.append(p)
        param_group["params"] = tensors
        if names:
            if len(names) != len(tensors):
                raise ValueError("all optimizer params should be with/without names. Some "
                                 "param names are missing")
            param_group["param_names"] = names
        for p in tensors:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params "
                                "is " + _typename(p))
            if not (p.is_leaf or p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            param_group.setdefault(name, default)
        if len(tensors) != len(set(map(id, tensors))):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; "
                          "in future, this will cause an error", stacklevel=3)
        seen = set()
        for group in self.param_groups:
            seen.update(map(id, group["params"]))
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError(f"all optimizer param groups should be with/without names. "
                                 f"cannot add param group {which} to the optimizer")
        if not seen.isdisjoint(map(id, tensors)):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all parameters: to None (the default), or to zeros in
        place when ``set_to_none=False``."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                if set_to_none:
                    p._grad = None
                    continue
                if g._tape is not None:      # a create_graph gradient: keep its value only
                    g = g.detach()
                    p._grad = g
                else:
                    g._rg = False
                g._data[...] = 0
                _mark_modified(g)

    def step(self, closure=None):
        """Update the parameters once. ``closure``, if given, re-evaluates the model and
        returns the loss (it runs with grad mode on); step returns that loss."""
        raise NotImplementedError

    # ---- state_dict ----------------------------------------------------------------------
    def state_dict(self):
        """The optimizer's state as a dict in PyTorch's layout: ``"state"`` maps each
        parameter's index (counted across groups, in order) to its state, and
        ``"param_groups"`` lists each group's options with ``"params"`` as index lists.
        The state's tensors are the optimizer's own (not copies)."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                if id(p) not in index:
                    index[id(p)] = len(index)
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: v for p, v in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a state made by ``state_dict()`` (of an optimizer over parameters of the
        same shapes, in the same groups). Tensors are copied, floating state is cast to its
        parameter's dtype."""
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict \
                or "state" not in state_dict:
            raise ValueError("load_state_dict expects a dict with 'state' and 'param_groups' "
                             "entries, as returned by Optimizer.state_dict()")
        groups = self.param_groups
        saved = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved)):
            raise ValueError("loaded state dict contains a parameter group that doesn't "
                             "match the size of optimizer's group")
        id_map = dict(zip(chain.from_iterable(s["params"] for s in saved),
                          chain.from_iterable(g["params"] for g in groups)))
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                p = id_map[k]
                state[p] = {name: self._cast_state(p, name, value)
                            for name, value in v.items()}
            else:
                state[k] = v
        new_groups = []
        for group, s in zip(groups, saved):
            s["params"] = group["params"]
            if "param_names" in group and "param_names" not in s:
                s["param_names"] = group["param_names"]
            for name, default in self.defaults.items():
                s.setdefault(name, default)
            new_groups.append(s)
        self.state = state
        self.param_groups = new_groups

    @staticmethod
    def _cast_state(p, name, value):
        if isinstance(value, Tensor):
            value = value._data
        elif hasattr(value, "detach") and hasattr(value, "numpy"):   # a torch tensor
            value = value.detach().cpu().numpy()
        if not isinstance(value, np.ndarray):
            return deepcopy(value)
        if name == "step":
            return Tensor(np.array(value, dtype=np.float32).reshape(()))
        if value.dtype.kind == "f":
            if value.shape != p._data.shape:
                raise ValueError(f"loaded state '{name}' has shape {list(value.shape)}, but "
                                 f"its parameter has shape {list(p._data.shape)}")
            value = value.astype(p._data.dtype)
        return Tensor(np.array(value, order="C", copy=True))


class _Fused(Optimizer):
    """An optimizer whose step is one compiled kernel call per parameter dtype.

    Subclasses name their kernel (``_kernel``, a function of ``_kernels``), the state
    entries it reads after the parameter and its gradient (``_slots``), whether it keeps a
    ``step`` counter, and ``_prepare(p, group, state)``: it creates the parameter's state
    if absent and returns the parameter's row of hyperparameters."""
    _kernel = None
    _slots = ()
    _has_step = True

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._update()
        return loss

    def _update(self):
        by_dtype = {}
        state = self.state
        self._fresh = []
        for group in self.param_groups:
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                st = state.get(p)
                if st is None:       # enter a state only once there is one (as PyTorch)
                    st = {}
                    row = self._prepare(p, group, st)
                    if st:
                        state[p] = st
                else:
                    row = self._prepare(p, group, st)
                by_dtype.setdefault(p._data.dtype, []).append((p, g, st, row))
        # every table is built (and checked) before any kernel runs, so a bad parameter
        # leaves all of them untouched
        old, new = getattr(self, "_addresses", {}), {}
        try:
            calls = [self._table(dtype, items, old, new) for dtype, items in by_dtype.items()]
        except BaseException:
            for p, st, name in self._fresh:   # state made for this step only
                del st[name]
                if not st:
                    self.state.pop(p, None)
            raise
        finally:
            self._fresh = []
        self._addresses = new
        kernel = getattr(_kernels, self._kernel)
        for args, copies in calls:
            kernel(*args)
            for a, tmp in copies:
                if a is not None:
                    a[...] = tmp
        for items in by_dtype.values():
            for p, _, _, _ in items:
                _mark_modified(p)

    def _table(self, dtype, items, old, new):
        """The kernel's arguments for the parameters of one dtype, and the copies to write
        back. Addresses are cached by array identity across steps; a row with an array not
        seen last step is checked (C-contiguous, dtype, size) before its addresses are
        used."""
        slots, has_step = self._slots, self._has_step
        addrs, sizes, rows, copies = [], [], [], []
        for p, g, st, row in items:
            a = p._data
            if not a.flags.c_contiguous or not a.flags.writeable:
                if not a.flags.writeable:
                    raise RuntimeError("the optimizer can't update a parameter whose memory is "
                                       "read-only (from_numpy of a read-only array); give it "
                                       "a writable copy first: p.data = p.data.copy()")
                tmp = np.ascontiguousarray(a)
                copies.append((a, tmp))
                a = tmp
            arrays = [a, g._data]
            arrays += [None if st.get(name) is None else st[name]._data for name in slots]
            if has_step:
                arrays.append(st["step"]._data)
            seen = True
            for x in arrays:
                if x is not None:
                    e = old.get(id(x))
                    if e is None or e[0] is not x:
                        seen = False
                        e = (x, x.ctypes.data)
                    if x.flags.c_contiguous:     # only contiguous arrays are ever hits
                        new[id(x)] = e
                    addrs.append(e[1])
                else:
                    addrs.append(0)
            if not seen:
                arrays[1] = self._check_row(p, arrays, has_step)
                if arrays[1] is not g._data:      # a non-contiguous gradient, copied
                    addrs[-len(arrays) + 1] = arrays[1].ctypes.data
                    copies.append((None, arrays[1]))
            sizes.append(a.size)
            rows.append(row)
        width = 2 + len(slots) + has_step
        args = (np.array(addrs, dtype=np.int64).reshape(len(items), width),
                np.array(sizes, dtype=np.int64), np.array(rows, dtype=np.float64),
                np.empty(0, dtype))
        if has_step:
            args += (np.empty(0, np.float32),)
        return args, copies

    def _check_row(self, p, arrays, has_step):
        """Check one parameter's gradient and state arrays against it before the kernel
        reads them by address; returns the gradient as a C-contiguous array."""
        a, g = arrays[0], arrays[1]
        if g.shape != a.shape or g.dtype != a.dtype:
            raise RuntimeError(f"a parameter of shape {list(a.shape)} and dtype {a.dtype} has a "
                               f"gradient of shape {list(g.shape)} and dtype {g.dtype}; "
                               f"assign a gradient that matches its parameter")
        names = list(self._slots) + (["step"] if has_step else [])
        for name, x in zip(names, arrays[2:]):
            if x is None:
                continue
            want = (np.float32, 1) if name == "step" else (a.dtype, a.size)
            if x.dtype != want[0] or x.size != want[1] or not x.flags.c_contiguous \
                    or not x.flags.writeable:
                raise RuntimeError(
                    f"optimizer state '{name}' of a parameter of shape {list(a.shape)} has "
                    f"shape {list(x.shape)} and dtype {x.dtype}; it must match its parameter "
                    f"(was the parameter's data replaced after the optimizer stepped? then "
                    f"build a new optimizer or load a matching state_dict)")
        return g if g.flags.c_contiguous else np.ascontiguousarray(g)

    @staticmethod
    def _zeros(p, fill=0.0):
        return Tensor(np.full(p._data.shape, fill, dtype=p._data.dtype))

    @staticmethod
    def _step0():
        return Tensor(np.zeros((), dtype=np.float32))
