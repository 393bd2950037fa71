"""The record schema (tapegrad/kernels/schema.py) is the one definition of a record's layout:
what Python packs is what the sweeps read, the word accessors agree in Python and in compiled
code, and no other file decodes a record word by hand."""
import os
import re
import struct

import numpy as np
import pytest
from numba import njit

import tapegrad as tg
from tapegrad import kernels as K
from tapegrad import tape as T


def test_field_indices_and_formats_follow_the_declared_fields():
    at = 0
    for name, words, kind in K.schema.FIELDS:
        assert getattr(K, name) == at
        at += words
    assert K.NFIELDS == at == 16 and K.MAXD == 6
    assert struct.calcsize(K.FORMAT) == K.RECBYTES == 8 * K.NFIELDS
    for nd in range(K.MAXD + 1):
        assert struct.calcsize(K.packer_format(nd)) == K.RECBYTES


def test_word_bits_do_not_overlap_and_fit_in_int64():
    used = 0
    for _, first, width in K.schema.WORD_BITS:
        bits = ((1 << width) - 1) << first
        assert used & bits == 0
        used |= bits
    assert used < 1 << 63


@njit(cache=False)
def _decode_compiled(w):
    return K.op_of(w), K.dtype_of(w), K.rg_of(w), K.ndim_of(w), K.name_of(w)


@pytest.mark.parametrize("fields", [(0, 0, 0, 0, 0), (K.TANH, 1, 1, 3, 7),
                                    (K.NOPS - 1, 0, 1, K.MAXD, 123456789), (255, 1, 0, 15, 1)])
def test_accessors_invert_word_in_python_and_in_compiled_code(fields):
    w = K.word(*fields)
    decode = (K.op_of, K.dtype_of, K.rg_of, K.ndim_of, K.name_of)
    assert tuple(f(w) for f in decode) == fields
    assert tuple(int(v) for v in _decode_compiled(np.int64(w))) == fields
    op, dt, rg, nd, name = fields
    w2 = K.with_op(w, K.RESHAPE, 1 - rg, name + 1)
    assert tuple(f(w2) for f in decode) == (K.RESHAPE, dt, 1 - rg, nd, name + 1)


def test_a_recorded_op_reads_back_through_the_schema():
    x = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = (x * 2.5).tanh()
    tp = y._tape
    R, F = tp.records()
    r = tp.local(y._gid)
    w = int(R[r, K.OPW])
    assert K.op_of(w) == K.TANH and K.dtype_of(w) == 1 and K.rg_of(w) == 1
    assert K.ndim_of(w) == 2 and tuple(R[r, K.SH:K.SH + 2]) == (2, 3) and R[r, K.SIZE] == 6
    assert T.NAMES[K.name_of(w)] == "TanhBackward0"
    m = int(R[r, K.A])
    assert K.op_of(int(R[m, K.OPW])) == K.MULC and F[m, K.F0] == 2.5
    del R, F
    np.testing.assert_array_equal(tp.saved_value(r), np.tanh(np.arange(6.0).reshape(2, 3) * 2.5))


_DECODES = re.compile(r">> ?(8|9|10|16)\b|& ?255\b|<< ?(8|9|10|16)\b|& ?15\b|\b512\b")


def test_no_file_decodes_record_words_by_hand():
    root = os.path.dirname(tg.__file__)
    offenders = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if not name.endswith(".py") or path.endswith(os.path.join("kernels", "schema.py")):
                continue
            with open(path) as f:
                for k, line in enumerate(f, 1):
                    code = line.split("#")[0]
                    if "OPW" in code or re.search(r"\bw\b|word", code):
                        if _DECODES.search(code):
                            offenders.append(f"{os.path.relpath(path, root)}:{k}: {line.strip()}")
    assert not offenders, "decode record words with the schema's accessors:\n" + "\n".join(offenders)


def _imports(path):
    """The tapegrad modules a file imports (relative imports resolved), at any depth."""
    import ast
    pkg = os.path.relpath(os.path.dirname(path), os.path.dirname(os.path.dirname(tg.__file__)))
    parts = pkg.split(os.sep)
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            base = parts[:len(parts) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            out.update(n for n in names if n.startswith("tapegrad"))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("tapegrad"))
    return out


def test_imports_follow_the_data_flow():
    # tensor -> ops -> tape -> kernels: the kernels import only each other, and neither
    # the tape nor the kernels import tensor or ops
    root = os.path.dirname(tg.__file__)
    kdir = os.path.join(root, "kernels")
    for name in os.listdir(kdir):
        if name.endswith(".py"):
            bad = {m for m in _imports(os.path.join(kdir, name))
                   if not m.startswith("tapegrad.kernels")}
            assert not bad, f"kernels/{name} imports {sorted(bad)}"
    for name in ("tape.py", "node.py", "rules.py", "codegen.py"):
        bad = {m for m in _imports(os.path.join(root, name))
               if m.startswith(("tapegrad.tensor", "tapegrad.ops"))}
        assert not bad, f"{name} imports {sorted(bad)}"
