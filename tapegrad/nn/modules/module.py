"""nn.Module: the base class of layers and models, with PyTorch's registration rules,
traversals, train/eval mode, dtype conversion, state dicts, hooks and repr."""
from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from ... import devices as _device
from ... import replay as _replay
from ...grad_mode import no_grad
from ...tensor import Tensor, canonical_dtype, dtype_name
from ...autograd.graph import RemovableHandle
from ..parameter import Parameter

__all__ = ["Module"]


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: the keys it did not find and the ones it did not
    use."""
    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class _HookDict(dict):
    """handle id -> (hook, with_kwargs), in call order (weakly referenced by the handles)."""
    __slots__ = ("__weakref__",)


def _typename(v):
    if isinstance(v, Parameter):
        return "tapegrad.nn.Parameter"
    if isinstance(v, Tensor):
        return "tapegrad.Tensor"
    t = type(v)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _indent(text, n):
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * n + s for s in lines[1:])


def _check_name(name, kind):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string. Got {_typename(name)}")
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain ".", got: {name}')


class Module:
    """Base class of every layer and model.

    Subclass it, call ``super().__init__()`` first in ``__init__``, assign parameters
    (:class:`Parameter`), submodules and buffers (``register_buffer``) as attributes, and
    write ``forward``. Call the module itself, not ``forward``, so that hooks run.

    >>> import tapegrad as tg
    >>> class Affine(tg.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = tg.nn.Parameter(tg.ones(3))
    ...         self.register_buffer("shift", tg.zeros(3))
    ...     def forward(self, x):
    ...         return x * self.scale + self.shift
    >>> m = Affine()
    >>> list(m.state_dict())
    ['scale', 'shift']
    >>> m(tg.ones(3)).sum().backward(); m.scale.grad
    tensor([1., 1., 1.])
    """

    training = True

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments; "
                            f"Module.__init__() takes none (pass them to your own __init__)")
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_hooks"] = _HookDict()
        d["_forward_pre_hooks"] = _HookDict()

    # ---- calling ------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required '
                                  f'"forward" function')

    def __call__(self, *args, **kwargs):
        d = self.__dict__
        pre, post = d.get("_forward_pre_hooks"), d.get("_forward_hooks")
        if not pre and not post:
            return self.forward(*args, **kwargs)
        for hook, with_kwargs in list(pre.values()):
            if with_kwargs:
                res = hook(self, args, kwargs)
                if res is not None:
                    if not (isinstance(res, tuple) and len(res) == 2):
                        raise RuntimeError(f"forward pre-hook must return None or a tuple of "
                                           f"(new_args, new_kwargs), but got {res}.")
                    args, kwargs = res
            else:
                res = hook(self, args)
                if res is not None:
                    args = res if isinstance(res, tuple) else (res,)
        out = self.forward(*args, **kwargs)
        for hook, with_kwargs in list(post.values()):
            res = hook(self, args, kwargs, out) if with_kwargs else hook(self, args, out)
            if res is not None:
                out = res
        return out

    def _add_hook(self, store, hook, prepend, with_kwargs):
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {_typename(hook)}")
        handle = RemovableHandle(store)
        store[handle.id] = (hook, with_kwargs)
        if prepend:
            items = list(store.items())
            store.clear()
            store.update([items[-1]] + items[:-1])
        return handle

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args)`` before every ``forward``; a non-None result replaces
        the positional arguments (a non-tuple is wrapped in one). ``with_kwargs=True``:
        ``hook(module, args, kwargs)`` returning None or ``(args, kwargs)``. Returns a
        handle whose ``remove()`` unregisters the hook."""
        return self._add_hook(self._forward_pre_hooks, hook, prepend, with_kwargs)

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False,
                              always_call=False):
        """Call ``hook(module, args, output)`` after every ``forward``; a non-None result
        replaces the output. ``with_kwargs=True``: ``hook(module, args, kwargs, output)``.
        ``always_call`` is accepted and ignored (hooks do not run when forward raises)."""
        return self._add_hook(self._forward_hooks, hook, prepend, with_kwargs)

    # ---- registration -------------------------------------------------------------------
    def register_buffer(self, name, tensor, persistent=True):
        """Register a tensor that is state but not a parameter (e.g. running statistics).
        Persistent buffers are part of ``state_dict()``."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _check_name(name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{_typename(tensor)}' object to buffer '{name}' "
                            f"(tapegrad.Tensor or None required)")
        self._buffers[name] = tensor
        _replay.invalidate()     # compiled functions must not replay the old tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def register_parameter(self, name, param):
        """Register ``param`` (a :class:`Parameter` or None) under ``name``."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _check_name(name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None:
            if not isinstance(param, Parameter):
                raise TypeError(f"cannot assign '{_typename(param)}' object to parameter "
                                f"'{name}' (tapegrad.nn.Parameter or None required)")
            if param.grad_fn is not None:
                raise ValueError(
                    f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters "
                    f"must be created explicitly. To express '{name}' as a function of "
                    f"another Tensor, compute the value in the forward() method.")
        self._parameters[name] = param
        _replay.invalidate()

    def add_module(self, name, module):
        """Register ``module`` (a Module or None) as a child under ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{_typename(module)} is not a Module subclass")
        if "_modules" not in self.__dict__:
            raise AttributeError("cannot assign module before Module.__init__() call")
        _check_name(name, "module")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module
        _replay.invalidate()

    register_module = add_module

    def __setattr__(self, name, value):
        d = self.__dict__
        params, buffers, modules = d.get("_parameters"), d.get("_buffers"), d.get("_modules")

        def forget():
            for store in (d, params, buffers, modules):
                if store is not None and name in store:
                    del store[name]
            if "_non_persistent_buffers_set" in d:
                d["_non_persistent_buffers_set"].discard(name)

        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            forget()
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as parameter '{name}' "
                                f"(tapegrad.nn.Parameter or None expected)")
            params[name] = None
            _replay.invalidate()
        elif isinstance(value, Module):
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            forget()
            modules[name] = value
            _replay.invalidate()
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as child module "
                                f"'{name}' (tapegrad.nn.Module or None expected)")
            modules[name] = None
            _replay.invalidate()
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{_typename(value)}' as buffer '{name}' "
                                f"(tapegrad.Tensor or None expected)")
            buffers[name] = value
            _replay.invalidate()
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # only called when normal lookup fails; guard against a half-built object (copy)
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                return s[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                del s[name]
                d["_non_persistent_buffers_set"].discard(name)
                _replay.invalidate()
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))

    # ---- traversal ----------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """``(name, module)`` for this module and every module below it, depth first
        (a module reachable twice is listed once unless ``remove_duplicate=False``)."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, prefix + ("." if prefix else "") + name,
                                       remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, store, prefix, recurse, remove_duplicate):
        seen = set()
        mods = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                if recurse else [(prefix, self)])
        for mprefix, m in mods:
            for name, v in getattr(m, store).items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield mprefix + ("." if mprefix else "") + name, v

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """``(name, parameter)`` pairs with dotted names as in ``state_dict()``; a parameter
        shared by two modules is listed once unless ``remove_duplicate=False``."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        """Every parameter of this module (and its submodules when ``recurse``)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target):
        """The submodule at dotted path ``target`` (``""`` is this module)."""
        mod = self
        if target == "":
            return mod
        for item in target.split("."):
            sub = mod._modules.get(item)
            if not isinstance(sub, Module):
                raise AttributeError(f"{mod._get_name()} has no attribute `{item}`")
            mod = sub
        return mod

    def get_parameter(self, target):
        """The parameter at dotted path ``target`` (``"0.weight"``)."""
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._parameters:
            raise AttributeError(f"{mod._get_name()} has no parameter `{name}`")
        return mod._parameters[name]

    def apply(self, fn):
        """Call ``fn(m)`` on every submodule (children first) and then on this module;
        returns self. Typical use: custom initialisation."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients ------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode (``mode=True``) or evaluation mode on this module and all
        below it; layers like Dropout and BatchNorm behave differently. Returns self."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        if self.__dict__.get("training") != mode:   # layers behave otherwise: record again
            _replay.invalidate()
        self.training = mode
        for m in self.children():      # through train(), so a subclass's override runs
            m.train(mode)
        return self

    def eval(self):
        """``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` of every parameter; returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Reset every parameter's ``.grad``: to None (default), or to zeros in place."""
        for p in self.parameters():
            g = p._grad
            if g is None:
                continue
            if set_to_none:
                p._grad = None
            elif g.grad_fn is not None:
                p._grad = Tensor(np.zeros_like(g._data))
            else:
                with no_grad():
                    g.requires_grad_(False)
                    g.zero_()

    # ---- dtype conversion ---------------------------------------------------------------
    def _apply(self, fn):
        """Replace every parameter's and buffer's value by fn(value), keeping the
        Parameter objects (their ``.data`` changes, as in PyTorch)."""
        _replay.invalidate()
        for m in self.modules():
            for p in m._parameters.values():
                if p is None:
                    continue
                with no_grad():
                    new = fn(p)
                if new is not p:
                    p.data = new
                    p._snap = None          # a cached tape record would carry the old dtype
                    p._version += 1
                g = p._grad
                if g is not None:
                    with no_grad():
                        ng = fn(g)
                    if ng is not g:
                        p._grad = ng.detach()
            for k, b in m._buffers.items():
                if b is not None:
                    with no_grad():
                        m._buffers[k] = fn(b)
        return self

    def to(self, *args, dtype=None, device=None, non_blocking=False, memory_format=None):
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(tensor)``: convert
        the floating-point parameters and buffers in place (integer buffers keep their
        dtype); returns self. Only the CPU exists."""
        dtype, device = _device.to_arguments(args, dtype, device, "Module.to")
        if dtype is None:
            return self
        d = canonical_dtype(dtype)
        if d.kind != "f":
            raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, "
                            f"but got desired dtype={dtype_name(d)}")
        return self._apply(lambda t: t.to(d) if t.dtype.kind == "f" else t)

    def double(self):
        """Cast floating-point parameters and buffers to float64; returns self."""
        return self.to(np.float64)

    def float(self):
        """Cast floating-point parameters and buffers to float32; returns self."""
        return self.to(np.float32)

    def cpu(self):
        return self

    def cuda(self, device=None):
        _device.check("cuda" if device is None else device, "Module.cuda")
        return self

    # ---- state dicts --------------------------------------------------------------------
    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        """An ordered dict of every parameter and persistent buffer under PyTorch's dotted
        names (``"0.weight"``, ``"bn.running_mean"``). Values are detached tensors sharing
        memory with the module's (``keep_vars=True``: the Parameters themselves)."""
        if args:   # the old positional form state_dict(destination, prefix, keep_vars)
            destination, prefix, keep_vars = (list(args) + [destination, prefix,
                                                            keep_vars][len(args):])[:3]
        if destination is None:
            destination = OrderedDict()
        for m_prefix, m in self.named_modules(prefix=prefix, remove_duplicate=False):
            dot = m_prefix + ("." if m_prefix else "")
            for name, p in m._parameters.items():
                if p is not None:
                    destination[dot + name] = p if keep_vars else p.detach()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent_buffers_set:
                    destination[dot + name] = b if keep_vars else b.detach()
        return destination

    def _local_state(self):
        local = {k: v for k, v in self._parameters.items() if v is not None}
        local.update((k, v) for k, v in self._buffers.items()
                     if v is not None and k not in self._non_persistent_buffers_set)
        return local

    def _load_local(self, state_dict, prefix, missing, unexpected, errors, assign):
        local = self._local_state()
        for name, cur in local.items():
            key = prefix + name
            if key not in state_dict:
                missing.append(key)
                continue
            new = state_dict[key]
            if not isinstance(new, Tensor):
                errors.append(f'While copying the parameter named "{key}", expected '
                              f'tapegrad.Tensor from checkpoint but received {type(new)}')
                continue
            if new.shape != cur.shape:
                errors.append(f"size mismatch for {key}: copying a param with shape "
                              f"{new.shape} from checkpoint, the shape in current model is "
                              f"{cur.shape}.")
                continue
            if assign:
                if name in self._parameters:
                    self._parameters[name] = (new if isinstance(new, Parameter) else
                                              Parameter(new, cur.requires_grad))
                else:
                    self._buffers[name] = new
                continue
            with no_grad():
                cur.copy_(new)
        for key in state_dict:
            if not key.startswith(prefix):
                continue
            head, dot, _ = key[len(prefix):].partition(".")
            if (dot and head not in self._modules) or (not dot and head not in local):
                unexpected.append(key)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy values from ``state_dict`` into this module's parameters and buffers.

        With ``strict`` (the default) keys this module lacks, or that it has and the dict
        lacks, raise a RuntimeError listing them, as do shape mismatches; otherwise the
        returned ``(missing_keys, unexpected_keys)`` named tuple says what did not match.
        ``assign=True`` puts the given tensors in place instead of copying into them."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        missing, unexpected, errors = [], [], []
        for m_prefix, m in self.named_modules(remove_duplicate=False):
            dot = m_prefix + ("." if m_prefix else "")
            sub = {k: v for k, v in state_dict.items() if k.startswith(dot)}
            m._load_local(sub, dot, missing, unexpected, errors, assign)
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in unexpected)))
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in missing)))
        if errors:
            raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(
                type(self).__name__, "\n\t".join(errors)))
        return _IncompatibleKeys(missing, unexpected)

    # ---- printing -----------------------------------------------------------------------
    def _get_name(self):
        return type(self).__name__

    def extra_repr(self):
        """The text inside this module's parentheses in its repr (override it)."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        children = [f"({k}): " + _indent(repr(m), 2) for k, m in self._modules.items()]
        if len(lines) == 1 and not children:
            body = lines[0]
        elif lines or children:
            body = "\n  " + "\n  ".join(lines + children) + "\n"
        else:
            body = ""
        return f"{self._get_name()}({body})"
