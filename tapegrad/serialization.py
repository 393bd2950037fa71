"""tapegrad.save / tapegrad.load: checkpoints that hold data, never code.

A checkpoint is a zip archive (stored, not compressed) of
- ``tapegrad/meta.json``: the format name and version, the saved object's structure as
  JSON (every value tagged with its kind: ``{"t": "odict", "v": [[key, value], ...]}``) and,
  for each tensor, its dtype, shape and ``requires_grad``;
- ``tapegrad/tensors/<k>.npy``: tensor ``k``'s values, C-contiguous, in numpy's ``.npy``
  format, read back with ``allow_pickle=False``.

Loading reads JSON and raw arrays only, so a file cannot make ``load`` run code (the
spirit of PyTorch's ``weights_only=True``, without pickle). Anything unexpected (not a zip,
a failed CRC, a missing or extra entry, a value that disagrees with the metadata) raises
``SerializationError``. Saving to a path writes a temporary file in the same directory,
flushes it to disk and renames it over the target, so a crash mid-save leaves the old file.
"""
import base64
import collections
import io
import json
import os
import tempfile
import zipfile

import numpy as np

from . import devices as _device
from .ops.record import _plain
from .tensor import Size, Tensor, canonical_dtype

FORMAT = "tapegrad-checkpoint"
VERSION = 1
_META = "tapegrad/meta.json"
_TENSOR = "tapegrad/tensors/{}.npy"
_MAX_META = 256 * 2**20          # a metadata entry larger than this is not one we wrote


class SerializationError(RuntimeError):
    """A file ``tapegrad.load`` cannot read: not a tapegrad checkpoint, or damaged."""


_CAN_SAVE = ("tensors, Python numbers, strings, bytes, None, dtypes, devices, and lists, "
             "tuples, dicts and OrderedDicts of them")


def _parameter_class():
    from . import nn
    return getattr(nn, "Parameter", None)


# ---- the object as JSON ---------------------------------------------------------------------
class _Encoder:
    def __init__(self):
        self.tensors = []        # (array, meta) in id order
        self.ids = {}            # id(tensor) -> k, so a tensor saved twice loads as one
        self.keep = []           # the tensors themselves, so their ids stay unique
        self.active = set()      # ids of the containers being encoded (cycle check)

    def tensor(self, t, path):
        k = self.ids.get(id(t))
        if k is not None:
            return {"t": "tensor", "id": k}
        if type(t) is Tensor:
            kind = "tensor"
        elif type(t) is _parameter_class():
            kind = "parameter"
        else:
            raise TypeError(f"tapegrad.save: cannot save the {type(t).__name__} (a Tensor "
                            f"subclass) at {path}; save a plain tensor (t.detach()) instead")
        a = t._data if t._data.flags.c_contiguous else t._data.copy(order="C")
        k = len(self.tensors)
        self.ids[id(t)] = k
        self.keep.append(t)
        self.tensors.append((a, {"dtype": a.dtype.str, "shape": list(a.shape),
                                 "requires_grad": bool(t.requires_grad), "kind": kind}))
        return {"t": "tensor", "id": k}

    def encode(self, obj, path):
        if obj is None:
            return {"t": "none"}
        if isinstance(obj, Tensor):
            return self.tensor(obj, path)
        kind = type(obj)
        if kind is bool:
            return {"t": "bool", "v": obj}
        if kind is int:          # big ints as hex: JSON readers cap decimal digits
            return {"t": "int", "v": obj} if -2**63 <= obj < 2**64 else \
                {"t": "bigint", "v": hex(obj)}
        if kind is float:
            return {"t": "float", "v": obj.hex()}
        if kind is str:
            return {"t": "str", "v": obj}
        if kind is bytes:
            return {"t": "bytes", "v": base64.b64encode(obj).decode("ascii")}
        if isinstance(obj, np.dtype):
            return {"t": "dtype", "v": canonical_dtype(obj).str}
        if kind is _device.device:
            return {"t": "device", "v": str(obj)}
        if kind is Size:
            return {"t": "size", "v": [int(n) for n in obj]}
        tag = {list: "list", tuple: "tuple", dict: "dict",
               collections.OrderedDict: "odict"}.get(kind)
        if tag is None:
            what = "a function" if callable(obj) else f"an object of type {kind.__name__}"
            raise TypeError(f"tapegrad.save: cannot save {what} at {path}; a checkpoint holds "
                            f"{_CAN_SAVE} (never code), so convert it first")
        if id(obj) in self.active:
            raise ValueError(f"tapegrad.save: the {kind.__name__} at {path} contains itself; "
                             f"a checkpoint cannot hold a cycle")
        self.active.add(id(obj))
        try:
            if tag in ("list", "tuple"):
                v = [self.encode(x, f"{path}[{i}]") for i, x in enumerate(obj)]
            else:
                v = [[self.encode(key, f"{path} (a key)"), self.encode(x, f"{path}[{key!r}]")]
                     for key, x in obj.items()]
        finally:
            self.active.discard(id(obj))
        return {"t": tag, "v": v}


def _archive(obj):
    """(metadata bytes, arrays) for obj; raises TypeError before anything is written."""
    enc = _Encoder()
    root = enc.encode(obj, "obj")
    meta = {"format": FORMAT, "version": VERSION, "root": root,
            "tensors": [m for _, m in enc.tensors]}
    return json.dumps(meta, allow_nan=False).encode("utf-8"), [a for a, _ in enc.tensors]


def _write_array(zf, name, a):
    with zf.open(name, "w", force_zip64=True) as out:
        np.lib.format.write_array(out, a, allow_pickle=False)


def _write(fileobj, meta, arrays):
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_STORED) as zf:
        for k, a in enumerate(arrays):
            _write_array(zf, _TENSOR.format(k), a)
        zf.writestr(_META, meta)


def _file_mode(path):
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mask = os.umask(0o022)
        os.umask(mask)
        return 0o666 & ~mask


def save(obj, f):
    """Write ``obj`` (a tensor, a state dict, nested lists/tuples/dicts of tensors and plain
    values) to ``f``, a path or a binary file object open for writing.

    Tensors keep their dtype, shape and ``requires_grad`` (not ``.grad``, nor their graph);
    views are saved as contiguous copies of their values, and a tensor that appears twice
    in ``obj`` loads as one tensor. Saving to a path is atomic: a temporary file in the same
    directory is written, flushed to disk and renamed over ``f``, so an interrupted save
    leaves what was there before. Values other than tensors, numbers, strings, bytes, None,
    dtypes, devices and those containers raise TypeError naming where in ``obj`` they are.

    >>> import io, tapegrad as tg
    >>> from tapegrad.serialization import load, save
    >>> buf = io.BytesIO()
    >>> save({"w": tg.ones(2, requires_grad=True), "step": 3}, buf)
    >>> _ = buf.seek(0); load(buf)
    {'w': tensor([1., 1.], requires_grad=True), 'step': 3}
    """
    meta, arrays = _archive(obj)
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                _write(out, meta, arrays)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, _file_mode(path))
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        try:                     # make the rename itself durable (best effort)
            dfd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)
    elif hasattr(f, "write"):
        _write(f, meta, arrays)
    else:
        raise TypeError(f"tapegrad.save: f must be a path (str or os.PathLike) or a binary "
                        f"file object, not {type(f).__name__}")


# ---- reading --------------------------------------------------------------------------------
def _check_map_location(m):
    if m is None:
        return
    if isinstance(m, (str, _device.device)):
        _device.check(m, "tapegrad.load")
    elif isinstance(m, dict):
        for v in m.values():
            _device.check(v, "tapegrad.load")
    elif callable(m):
        raise TypeError("tapegrad.load: map_location as a function is not supported; "
                        "tapegrad tensors live on the CPU, so pass None or 'cpu'")
    else:
        raise TypeError(f"tapegrad.load: map_location must be None, 'cpu' or "
                        f"tapegrad.device('cpu'), not {type(m).__name__}")


def _not_ours(name, why):
    return SerializationError(f"{name} is not a tapegrad checkpoint or is damaged: {why}")


class _Decoder:
    def __init__(self, tensors, name):
        self.tensors, self.name = tensors, name

    def bad(self, why):
        return _not_ours(self.name, f"its metadata {why}")

    def decode(self, node):
        if not isinstance(node, dict) or not isinstance(node.get("t"), str):
            raise self.bad("holds a value that is not a tagged node")
        t, v = node["t"], node.get("v")
        if t == "none":
            return None
        if t == "tensor":
            k = node.get("id")
            if type(k) is not int or not 0 <= k < len(self.tensors):
                raise self.bad(f"names a tensor {k!r} the archive does not hold")
            return self.tensors[k]
        checks = {"bool": bool, "int": int, "bigint": str, "float": str, "str": str, "bytes": str,
                  "dtype": str, "device": str, "size": list, "list": list, "tuple": list,
                  "dict": list, "odict": list}
        want = checks.get(t)
        if want is None:
            raise self.bad(f"has a value of unknown kind {t!r}")
        if type(v) is not want:
            raise self.bad(f"has a {t} whose value is a {type(v).__name__}")
        try:
            if t in ("bool", "int", "str"):
                return v
            if t == "float":
                return float.fromhex(v)
            if t == "bigint":
                return int(v, 16)
            if t == "bytes":
                return base64.b64decode(v.encode("ascii"), validate=True)
            if t == "dtype":
                return canonical_dtype(np.dtype(v))
            if t == "device":
                return _device.device(v)
            if t == "size":
                return Size(int(n) for n in v)
            if t == "list":
                return [self.decode(x) for x in v]
            if t == "tuple":
                return tuple(self.decode(x) for x in v)
            items = [self.pair(p) for p in v]
            return dict(items) if t == "dict" else collections.OrderedDict(items)
        except SerializationError:
            raise
        except (TypeError, ValueError) as e:
            raise self.bad(f"has a {t} that cannot be read ({e})") from None

    def pair(self, p):
        if type(p) is not list or len(p) != 2:
            raise self.bad("has a dict item that is not a [key, value] pair")
        return self.decode(p[0]), self.decode(p[1])


def _read_tensor(zf, k, meta, name, parameter):
    if not isinstance(meta, dict):
        raise _not_ours(name, f"tensor {k}'s metadata is not an object")
    try:
        dtype = canonical_dtype(np.dtype(meta["dtype"]))
        shape = tuple(int(n) for n in meta["shape"])
        rg = meta["requires_grad"]
        kind = meta.get("kind", "tensor")
        if type(rg) is not bool or kind not in ("tensor", "parameter"):
            raise ValueError("bad requires_grad or kind")
    except (KeyError, TypeError, ValueError) as e:
        raise _not_ours(name, f"tensor {k}'s metadata cannot be read ({e})") from None
    raw = io.BytesIO(zf.read(_TENSOR.format(k)))
    try:
        a = np.lib.format.read_array(raw, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise _not_ours(name, f"tensor {k}'s data cannot be read ({e})") from None
    if raw.read(1):
        raise _not_ours(name, f"tensor {k}'s entry has bytes after its data")
    if a.dtype != dtype or a.shape != shape:
        raise _not_ours(name, f"tensor {k} holds {a.dtype}{list(a.shape)} where the "
                              f"metadata says {dtype}{list(shape)}")
    if not a.flags.c_contiguous or not a.flags.writeable:
        a = a.copy(order="C")
    t = _plain(a.astype(dtype, copy=False))
    if kind == "parameter" and parameter is not None:
        return parameter(t, requires_grad=rg)
    if rg:
        t.requires_grad = True
    return t


def _load_archive(fh, name):
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        head = b""
        try:
            fh.seek(0)
            head = fh.read(2)
        except OSError:
            pass
        why = "it is a pickle (a legacy torch.save file?)" if head[:1] == b"\x80" else \
            f"it is not a zip archive, or it is truncated ({e})"
        raise _not_ours(name, why) from None
    with zf:
        names = zf.namelist()
        if _META not in names:
            if any(n.endswith("data.pkl") for n in names):
                raise _not_ours(name, "it was written by torch.save (its tensors are "
                                      "pickled); load it with torch.load and save what you "
                                      "need with tapegrad.save")
            raise _not_ours(name, f"the zip archive has no {_META} entry")
        if len(set(names)) != len(names):
            raise _not_ours(name, "the zip archive names an entry twice")
        try:
            if zf.getinfo(_META).file_size > _MAX_META:
                raise _not_ours(name, "its metadata entry is implausibly large")
            meta = json.loads(zf.read(_META).decode("utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise _not_ours(name, f"its metadata does not name the {FORMAT} format")
            if meta.get("version") != VERSION:
                raise _not_ours(name, f"it is format version {meta.get('version')!r}; this "
                                      f"tapegrad reads version {VERSION}")
            entries = meta.get("tensors")
            if not isinstance(entries, list):
                raise _not_ours(name, "its metadata has no tensor list")
            expected = {_META} | {_TENSOR.format(k) for k in range(len(entries))}
            extra = sorted(set(names) - expected)
            if extra:
                raise _not_ours(name, f"the archive holds entries a tapegrad checkpoint does "
                                      f"not ({', '.join(map(repr, extra[:3]))}); refusing "
                                      f"to read it")
            missing = sorted(expected - set(names))
            if missing:
                raise _not_ours(name, f"the archive lacks {missing[0]!r}")
            parameter = _parameter_class() if any(
                isinstance(m, dict) and m.get("kind") == "parameter" for m in entries) \
                else None
            tensors = [_read_tensor(zf, k, m, name, parameter) for k, m in enumerate(entries)]
            return _Decoder(tensors, name).decode(meta.get("root"))
        except SerializationError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError,
                UnicodeDecodeError, json.JSONDecodeError, RecursionError,
                NotImplementedError, RuntimeError, ValueError) as e:
            raise _not_ours(name, f"{type(e).__name__}: {e}") from None


def load(f, map_location=None, weights_only=True):
    """Read what ``tapegrad.save`` wrote to ``f`` (a path or a binary file object).

    Only tensors, plain values and containers can come back: the file holds JSON and raw
    arrays, never pickled objects, so loading a file cannot run code whatever
    ``weights_only`` says (True, PyTorch's default, and False behave the same).
    ``map_location`` may be None, ``"cpu"`` or ``tapegrad.device("cpu")`` (tapegrad has no
    other device). A file that is not a tapegrad checkpoint (a ``torch.save`` file, say),
    or is truncated or damaged, raises ``SerializationError`` (a RuntimeError).
    """
    _check_map_location(map_location)
    if weights_only is not None and not isinstance(weights_only, bool):
        raise TypeError(f"tapegrad.load: weights_only must be a bool, not "
                        f"{type(weights_only).__name__}")
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            return _load_archive(fh, f"'{os.fspath(f)}'")
    if not hasattr(f, "read"):
        raise TypeError(f"tapegrad.load: f must be a path (str or os.PathLike) or a binary "
                        f"file object, not {type(f).__name__}")
    fh = f
    if not (hasattr(f, "seekable") and f.seekable()):
        fh = io.BytesIO(f.read())
    return _load_archive(fh, "the file")
