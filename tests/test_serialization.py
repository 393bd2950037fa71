"""tapegrad.save / tapegrad.load: round trips, atomic writes, and files that are not ours
(corrupt, truncated, foreign, crafted) refused with SerializationError."""
import collections
import io
import json
import os
import pathlib
import zipfile

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import serialization as S
from tapegrad.serialization import SerializationError, load, save
from helpers import torch_or_skip


def _equal(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, tg.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _equal(x, y)
    elif isinstance(a, float) and a != a:
        assert b != b
    else:
        assert a == b


def _roundtrip(obj, tmp_path):
    p = tmp_path / "ck.tg"
    save(obj, p)
    back = load(p)
    buf = io.BytesIO()
    save(obj, buf)
    buf.seek(0)
    _equal(load(buf), back)
    return back


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64, tg.float16, tg.int64, tg.int32,
                                   tg.bool_, np.uint8, np.int8])
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 0, 4), (2, 3)], ids=str)
def test_tensor_round_trip(dtype, shape, tmp_path):
    a = (np.arange(int(np.prod(shape))).reshape(shape) % 3).astype(dtype)
    t = tg.tensor(a)
    back = _roundtrip(t, tmp_path)
    _equal(back, t)
    assert back.shape == tuple(shape)
    back += back                                     # loaded tensors are writable


def test_requires_grad_views_and_graph_tensors(tmp_path):
    w = tg.randn(3, 4, requires_grad=True)
    back = _roundtrip(w, tmp_path)
    assert back.requires_grad and back.grad is None and back.grad_fn is None
    (back * 2).sum().backward()
    assert back.grad is not None
    x = tg.arange(24.0).reshape(4, 6)
    view = x.t()[::2]                                # non-contiguous
    assert not view.data.flags.c_contiguous
    back = _roundtrip(view, tmp_path)
    _equal(back, tg.tensor(view.data.copy()))
    assert back.data.flags.c_contiguous
    y = (w * 3).sum(0)                               # a graph tensor loads as a leaf
    back = _roundtrip(y, tmp_path)
    assert back.requires_grad and back.grad_fn is None
    np.testing.assert_array_equal(back.detach().numpy(), y.detach().numpy())


def test_nested_structures_and_plain_values(tmp_path):
    t = tg.ones(2)
    obj = {"model": collections.OrderedDict([("0.weight", tg.randn(3, 2)),
                                             ("0.bias", tg.zeros(3))]),
           "optimizer": {"state": {0: {"step": 5, "exp_avg": tg.zeros(3)}},
                         "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0],
                                           "nesterov": False, "foreach": None}]},
           "epoch": 7, "loss": float("nan"), "best": float("inf"), "name": "run-ü",
           "raw": b"\x00\xff", "shape": tg.Size([2, 3]), "dtype": tg.float64,
           "device": tg.device("cpu"), "shared": [t, t], "big": 2**70, "huge": -7 ** 6000, "neg": -1.5e-300,
           (1, "k"): "tuple key", None: [], "empty": ()}
    back = _roundtrip(obj, tmp_path)
    _equal(back, obj)
    assert isinstance(back["model"], collections.OrderedDict)
    assert back["shared"][0] is back["shared"][1]     # one tensor saved twice loads as one
    assert back["loss"] != back["loss"] and back["optimizer"]["param_groups"][0]["lr"] == 1e-3


def test_unsavable_objects_name_their_path(tmp_path):
    class Thing:
        pass

    cases = [({"a": [1, Thing()]}, r"Thing at obj\['a'\]\[1\]"),
             ({"fn": lambda x: x}, r"a function at obj\['fn'\]"),
             ([np.ones(2)], r"ndarray at obj\[0\]"),
             ({"k": {np.int64(3)}}, r"set at obj\['k'\]"),
             ({"s": np.float32(1)}, r"float32 at obj\['s'\]")]
    p = tmp_path / "ck.tg"
    for obj, match in cases:
        with pytest.raises(TypeError, match=match):
            save(obj, p)
    assert not os.listdir(tmp_path)                  # nothing was written
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        save(loop, p)
    with pytest.raises(TypeError, match="path"):
        save(1, 3.5)
    with pytest.raises(TypeError, match="path"):
        load(3.5)


def test_map_location_and_weights_only(tmp_path):
    p = tmp_path / "ck.tg"
    save({"w": tg.ones(2)}, str(p))
    for m in (None, "cpu", tg.device("cpu"), "cpu:0", {"cuda:0": "cpu"}):
        _equal(load(p, map_location=m), {"w": tg.ones(2)})
    _equal(load(p, weights_only=False), {"w": tg.ones(2)})
    with pytest.raises(RuntimeError, match="CPU only"):
        load(p, map_location="cuda")
    with pytest.raises(TypeError, match="map_location"):
        load(p, map_location=lambda s, loc: s)
    with pytest.raises(TypeError, match="weights_only"):
        load(p, weights_only="yes")


def test_save_is_atomic(tmp_path, monkeypatch):
    p = tmp_path / "ck.tg"
    save({"w": tg.ones(3)}, p)
    good = p.read_bytes()
    calls = []

    def crash(zf, name, a):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt("power cut")     # midway: one tensor already written
        real(zf, name, a)

    real = S._write_array
    monkeypatch.setattr(S, "_write_array", crash)
    with pytest.raises(KeyboardInterrupt):
        save({"a": tg.zeros(5), "b": tg.zeros(6), "c": tg.zeros(7)}, p)
    assert len(calls) == 2
    assert p.read_bytes() == good and os.listdir(tmp_path) == ["ck.tg"]
    _equal(load(p), {"w": tg.ones(3)})

    def replace_fails(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(S, "_write_array", real)
    monkeypatch.setattr(S.os, "replace", replace_fails)
    with pytest.raises(OSError, match="disk full"):
        save({"w": tg.zeros(3)}, p)
    assert p.read_bytes() == good and os.listdir(tmp_path) == ["ck.tg"]


def test_overwrite_keeps_permissions(tmp_path):
    p = tmp_path / "ck.tg"
    save(tg.ones(1), p)
    os.chmod(p, 0o640)
    save(tg.zeros(1), p)
    assert p.stat().st_mode & 0o777 == 0o640
    _equal(load(p), tg.zeros(1))


def _bytes(obj):
    buf = io.BytesIO()
    save(obj, buf)
    return buf.getvalue()


def _rezip(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _entries(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _refused(data, match, tmp_path):
    p = tmp_path / "bad.tg"
    p.write_bytes(data)
    with pytest.raises(SerializationError, match=match) as e:
        load(p)
    assert "not a tapegrad checkpoint or is damaged" in str(e.value)
    with pytest.raises(SerializationError, match=match):
        load(io.BytesIO(data))


def test_truncated_and_corrupt_files(tmp_path):
    good = _bytes({"w": tg.arange(100.0), "b": tg.ones(3)})
    for n in (0, 1, 10, len(good) // 2, len(good) - 1):
        _refused(good[:n], "", tmp_path)
    meta = _entries(good)[S._META]
    k = good.index(b"\x93NUMPY") + 200               # inside tensor 0's values
    flipped = good[:k] + bytes([good[k] ^ 0xFF]) + good[k + 1:]
    _refused(flipped, "CRC", tmp_path)
    _refused(b"hello world" * 10, "not a zip archive", tmp_path)
    entries = _entries(good)
    _refused(_rezip({**entries, S._META: b"{not json"}), "JSONDecodeError", tmp_path)
    _refused(_rezip({**entries, S._META: meta.replace(b'"version": 1', b'"version": 9')}),
             "version 9", tmp_path)
    _refused(_rezip({**entries, S._META: meta.replace(b'"shape": [100]', b'"shape": [10]')}),
             "metadata says", tmp_path)
    _refused(_rezip({k: v for k, v in entries.items() if not k.endswith("1.npy")}),
             "lacks", tmp_path)
    bad_root = json.loads(meta)
    bad_root["root"] = {"t": "eval", "v": "__import__('os')"}
    _refused(_rezip({**entries, S._META: json.dumps(bad_root)}), "unknown kind", tmp_path)
    bad_root["root"] = {"t": "tensor", "id": 7}
    _refused(_rezip({**entries, S._META: json.dumps(bad_root)}), "does not hold", tmp_path)


def test_no_code_runs_on_load(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    entries = _entries(_bytes({"w": tg.ones(2)}))
    payload = pickle.dumps(Boom())
    _refused(_rezip({**entries, "tapegrad/data.pkl": payload}), "refusing", tmp_path)
    # an object array (pickled inside a .npy) where a tensor belongs
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([Boom()], dtype=object), allow_pickle=True)
    meta = json.loads(entries[S._META])
    meta["tensors"][0].update(dtype="|O", shape=[1])
    _refused(_rezip({S._META: json.dumps(meta), "tapegrad/tensors/0.npy": buf.getvalue()}),
             "", tmp_path)
    meta["tensors"][0].update(dtype="<f4", shape=[2])
    _refused(_rezip({S._META: json.dumps(meta), "tapegrad/tensors/0.npy": buf.getvalue()}),
             "allow_pickle", tmp_path)
    _refused(payload, "pickle", tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_torch_save_files_are_refused(tmp_path):
    torch = torch_or_skip()
    p = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, p)
    with pytest.raises(SerializationError, match="written by torch.save"):
        load(p)
    torch.save({"w": torch.ones(2)}, p, _use_new_zipfile_serialization=False)
    with pytest.raises(SerializationError, match="pickle"):
        load(p)
    # and ours is not torch's either: torch.load refuses it too
    save({"w": tg.ones(2)}, p)
    with pytest.raises(Exception):
        torch.load(p, weights_only=True)


def test_unseekable_file_objects(tmp_path):
    class Stream(io.RawIOBase):
        def __init__(self, data):
            self.data = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self.data.readinto(b)

    obj = {"w": tg.arange(5)}
    _equal(load(Stream(_bytes(obj))), obj)
    with open(tmp_path / "f.tg", "wb") as fh:
        save(obj, fh)
    with open(tmp_path / "f.tg", "rb") as fh:
        _equal(load(fh), obj)
    _equal(load(pathlib.Path(tmp_path / "f.tg")), obj)


def test_docstring_examples_run():
    import doctest
    result = doctest.testmod(S, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_parameters_keep_their_type(tmp_path):
    Parameter = tg.nn.Parameter
    obj = {"p": Parameter(tg.ones(2, 3)), "frozen": Parameter(tg.zeros(2), requires_grad=False)}
    back = _roundtrip(obj, tmp_path)
    _equal(back, obj)
    assert type(back["p"]) is Parameter and back["p"].requires_grad
    assert not back["frozen"].requires_grad

    class Odd(tg.Tensor):
        __slots__ = ()

    with pytest.raises(TypeError, match=r"Odd \(a Tensor subclass\) at obj\[1\]"):
        save([tg.ones(1), Odd(np.ones(1))], tmp_path / "x.tg")
