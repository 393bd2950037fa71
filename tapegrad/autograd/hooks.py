"""Backward hooks: on tensors (``register_hook``, ``register_post_accumulate_grad_hook``)
and on nodes (``grad_fn.register_prehook``, ``grad_fn.register_hook``).

Where they are kept:
- a non-leaf tensor's hooks and its node's hooks belong to its record: ``Tape.hooks`` maps
  the record's gid to a ``RecordHooks``. The engine runs the compiled sweep in segments that
  end above each hooked record, runs the hooks there in Python, and resumes; a tape with
  no hooks is swept exactly as before (one dict test per backward).
- a leaf's hooks are keyed by the tensor itself (``_LEAF``), since a leaf need not be on any
  tape when the hook is registered; they run when its gradient is read out.
- a custom Function's node keeps its own (``HookMixin``), run around its backward.

Order, as PyTorch's: tensor hooks, then node pre-hooks, then the node's VJP, then node
post-hooks; for a leaf, tensor hooks, then accumulation into ``.grad``, then the
post-accumulate hooks.
"""
import itertools
import weakref

_ids = itertools.count()


class RemovableHandle:
    """Returned by every ``register_*hook``; ``remove()`` unregisters the hook."""
    __slots__ = ("id", "_store", "__weakref__")

    def __init__(self, store):
        self.id = next(_ids)
        self._store = weakref.ref(store) if store is not None else None

    def remove(self):
        store = self._store() if self._store is not None else None
        if store is not None:
            store.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


class _Hooks(dict):
    """id -> hook, in registration order (a dict subclass so a handle can hold a weakref)."""
    __slots__ = ("__weakref__",)


def add(store, fn):
    if not callable(fn):
        raise TypeError(f"a hook must be callable, got {type(fn).__name__}")
    h = RemovableHandle(store)
    store[h.id] = fn
    return h


class RecordHooks:
    """The hooks of one record: its tensor's hooks and its node's pre- and post-hooks."""
    __slots__ = ("tensor", "pre", "post", "metadata")

    def __init__(self):
        self.tensor = _Hooks()
        self.pre = _Hooks()
        self.post = _Hooks()
        self.metadata = {}

    def __bool__(self):
        return bool(self.tensor or self.pre or self.post)


class HookMixin:
    """Node hooks kept on the node object itself (custom Function nodes)."""

    def _hook_store(self, kind):
        d = self.__dict__.get(kind)
        if d is None:
            d = self.__dict__[kind] = _Hooks()
        return d

    def register_prehook(self, fn):
        """fn(grad_outputs) runs before this node's backward; it may return new
        grad_outputs (a tuple)."""
        return add(self._hook_store("_prehooks"), fn)

    def register_hook(self, fn):
        """fn(grad_inputs, grad_outputs) runs after this node's backward; it may return new
        grad_inputs (a tuple)."""
        return add(self._hook_store("_posthooks"), fn)

    def _call_prehooks(self, gos):
        for fn in list(self.__dict__.get("_prehooks", {}).values()):
            new = fn(tuple(gos))
            if new is not None:
                gos = list(_as_tuple(new, len(gos), "pre-hook"))
        return gos

    def _call_posthooks(self, res, gos):
        for fn in list(self.__dict__.get("_posthooks", {}).values()):
            new = fn(tuple(res), tuple(gos))
            if new is not None:
                res = list(_as_tuple(new, len(res), "hook"))
        return res


def _as_tuple(new, n, what):
    if not isinstance(new, (tuple, list)):
        new = (new,)
    if len(new) != n:
        raise RuntimeError(f"{what} returned {len(new)} values but {n} were expected; a node "
                           f"hook must return a tuple of the same length as its input, or None")
    return tuple(new)


# ---- running them ------------------------------------------------------------------------
def checked(new, g, fn):
    """A gradient hook's replacement gradient, checked as PyTorch checks it."""
    from ..tensor import Tensor
    if not isinstance(new, Tensor):
        raise TypeError(f"a gradient hook must return a Tensor or None, got "
                        f"{type(new).__name__} from {getattr(fn, '__name__', fn)}")
    if tuple(new.shape) != tuple(g.shape):
        raise RuntimeError(f"hook '{getattr(fn, '__name__', 'hook')}' has changed the size of "
                           f"value: the gradient has shape {list(g.shape)} and the hook "
                           f"returned shape {list(new.shape)}")
    return new


def run_pre(hk, g):
    """A record's tensor hooks, then its node's pre-hooks, on its gradient g (a Tensor);
    returns the gradient they leave."""
    for fn in list(hk.tensor.values()):
        new = fn(g)
        if new is not None:
            g = checked(new, g, fn)
    for fn in list(hk.pre.values()):
        new = fn((g,))
        if new is not None:
            g = checked(new[0] if isinstance(new, (tuple, list)) else new, g, fn)
    return g


def run_post(hk, grad_inputs, grad_output):
    """A record's node post-hooks: fn(grad_inputs, (grad_output,)); returns the
    grad_inputs they leave."""
    for fn in list(hk.post.values()):
        new = fn(grad_inputs, (grad_output,))
        if new is not None:
            grad_inputs = tuple(new)
    return grad_inputs


# ---- leaves ---------------------------------------------------------------------------------
_LEAF = {}       # id(leaf) -> [weakref(leaf), tensor hooks, post-accumulate hooks]


def leaf_entry(t):
    e = _LEAF.get(id(t))
    if e is None or e[0]() is not t:
        key = id(t)
        # (the dict is bound, not looked up: at interpreter exit the global is None)
        e = _LEAF[key] = [weakref.ref(t, lambda _, key=key, d=_LEAF: d.pop(key, None)),
                          _Hooks(), _Hooks()]
    return e


def leaf_hooks(t):
    """(tensor hooks, post-accumulate hooks) of leaf t, or None."""
    e = _LEAF.get(id(t))
    if e is None or e[0]() is not t:
        return None
    return e[1], e[2]
