"""The record schema: the one definition of a tape record's fields and bit layout.

A record is one row of NFIELDS int64 words; the last two are float64 (the tape stores them
as such, and the sweeps read them through a float64 view of the same rows, ``F``):

    OPW   the record word: op, dtype, requires_grad, ndim and grad_fn name (WORD_BITS)
    A B C input slots (local record indices) or -1
    P0 P1 integer parameters (for GATHER/CAT/NLL/SCATTER: offset and length in the index
          arena; for an eager MATMUL whose operands are off the tape: their data addresses;
          for the binary family, P0's bits say which inputs broadcast)
    VOFF  offset of this slot's saved value in the value arena of its dtype, or -1
    SH..  the output shape, MAXD words (unused ones are zero)
    SIZE  number of elements of the output
    F0 F1 float parameters

The output slot of record ``r`` is ``r`` itself, so a slot and a record are one thing.

Everything else derives from FIELDS and WORD_BITS: the field indices (module constants,
which Numba freezes into compiled code), the ``struct`` formats tape.py packs records
with, and the word accessors below. The accessors are plain Python functions that Numba
also compiles (``register_jitable``), so Python and compiled code decode a word the same
way; LLVM inlines them, so in the sweeps they cost what the shifts and masks cost.
"""
import numpy as np
from numba.extending import register_jitable

# (name, words, kind): the record's fields in order
FIELDS = (
    ("OPW", 1, "q"), ("A", 1, "q"), ("B", 1, "q"), ("C", 1, "q"), ("P0", 1, "q"),
    ("P1", 1, "q"), ("VOFF", 1, "q"), ("SH", 6, "q"), ("SIZE", 1, "q"),
    ("F0", 1, "d"), ("F1", 1, "d"),
)


def _indices():
    at, out = 0, {}
    for name, words, _ in FIELDS:
        out[name] = at
        at += words
    return out, at


_AT, NFIELDS = _indices()
OPW, A, B, C, P0, P1, VOFF, SH, SIZE, F0, F1 = (
    _AT[n] for n in ("OPW", "A", "B", "C", "P0", "P1", "VOFF", "SH", "SIZE", "F0", "F1"))
MAXD = dict((n, w) for n, w, _ in FIELDS)["SH"]   # most dimensions a record's shape holds
NINT = sum(w for _, w, k in FIELDS if k == "q")   # int64 words before the float64 ones
FORMAT = f"{NINT}q{NFIELDS - NINT}d"              # the whole record, for struct
RECBYTES = 8 * NFIELDS


def packer_format(nd):
    """A struct format packing a record of nd dimensions: the shape's unused words are pad
    bytes, so that the packer takes only the nd dimensions."""
    return f"{SH + nd}q{8 * (MAXD - nd)}x{NINT - SIZE}q{NFIELDS - NINT}d"


# (name, first bit, width): the fields of the record word OPW
WORD_BITS = (("op", 0, 8), ("dtype", 8, 1), ("rg", 9, 1), ("ndim", 10, 4), ("name", 16, 47))
_BITS = {n: (s, w) for n, s, w in WORD_BITS}
OP_MASK = (1 << _BITS["op"][1]) - 1
DT_SHIFT = _BITS["dtype"][0]
RG_SHIFT = _BITS["rg"][0]
ND_SHIFT, ND_MASK = _BITS["ndim"][0], (1 << _BITS["ndim"][1]) - 1
NAME_SHIFT = _BITS["name"][0]
DT_BIT = 1 << DT_SHIFT                 # the word with only its dtype bit (float64) set
RG_BIT = 1 << RG_SHIFT                 # ... only its requires_grad bit set
ND_BITS = ND_MASK << ND_SHIFT          # ... all of its ndim bits set


@register_jitable
def op_of(w):
    """The opcode of record word w."""
    return w & OP_MASK


@register_jitable
def dtype_of(w):
    """The dtype code of record word w: 0 float32, 1 float64."""
    return (w >> DT_SHIFT) & 1


@register_jitable
def rg_of(w):
    """1 if the record's output requires grad (its gradient is accumulated), else 0."""
    return (w >> RG_SHIFT) & 1


@register_jitable
def ndim_of(w):
    """The number of dimensions of the record's output."""
    return (w >> ND_SHIFT) & ND_MASK


@register_jitable
def name_of(w):
    """The record's grad_fn name id (an index into tape.NAMES)."""
    return w >> NAME_SHIFT


def word(op, dtype, rg, ndim, name):
    """The record word of these fields (tape.py packs ndim itself, from the value)."""
    return op | dtype << DT_SHIFT | rg << RG_SHIFT | ndim << ND_SHIFT | name << NAME_SHIFT


def with_op(w, op, rg, name):
    """Record word w with its op, requires_grad and name replaced (dtype and ndim kept)."""
    return (w & (DT_BIT | ND_BITS)) | op | rg << RG_SHIFT | name << NAME_SHIFT


_U = np.uint64   # an offset known to be >= 0, as an index Numba does not wrap around

__all__ = [n for n in dir()
           if n.isupper() or n.endswith("_of") or n in ("word", "with_op", "packer_format")]
