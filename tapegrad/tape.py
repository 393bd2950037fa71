"""The Wengert tape: flat records, value arenas, and the lifecycle of slots.

One tape per thread. Records are packed with ``struct`` into a bytearray (about 0.1 us per
record, and the compiled sweep sees them through ``np.frombuffer`` without a copy).

Identity. Every record gets a global id (gid) from a counter that never goes back. A
tensor remembers its gid; the tape maps gids to local record indices:
``local = gid - g0 + k`` for records made since the last collection, and a binary search
in ``kept`` (the gids of the ``k`` records that survived it) below that. A gid that maps
nowhere belongs to a graph that was freed or reclaimed.

Lifecycle. ``rc[local]`` counts live tensors whose value is that record's output
(``Tensor.__del__`` decrements it). After a backward without ``retain_graph``, and
whenever the record count passes ``limit``, ``mark_live`` finds what a live, unfreed
tensor can still reach: if nothing, the tape resets in O(1); otherwise ``compact`` moves
the survivors to the front. When the last live tensor dies the tape resets at once.
"""
import struct
import threading
import warnings
from array import array

import numpy as np

from . import rules
from . import kernels as K
from .kernels import dtype_of, name_of, ndim_of, op_of, rg_of

_REC = struct.Struct(K.FORMAT)
_RECBYTES = _REC.size
assert _RECBYTES == K.RECBYTES
# one packer per ndim: the unused shape words are pad bytes, so no padding tuple is built
_PACKERS = tuple(struct.Struct(K.packer_format(nd)).pack for nd in range(K.MAXD + 1))
_VOFF_BYTE = K.VOFF * 8
_Q = struct.Struct("q")
_MIN_LIMIT = 4096
# Bytes that records may hold outside the arena (a compiled node's frame: the program's
# values for one call) before the tape collects at its next op; after a collection, twice
# what is still reachable.
_MIN_HELD = 64 << 20
_NO_GIDS = np.empty(0, np.int64)

# grad_fn names, indexed by the name id stored in each record
NAMES = ["Input", "Freed"]
_NAME_IDS = {n: i for i, n in enumerate(NAMES)}
_NAMES_LOCK = threading.Lock()


def name_id(name):
    """The id of a grad_fn name, registering it on first use (thread-safe: threads that
    register one new name at once get one id; a name is in NAMES before its id is
    published, so whoever reads an id from a record finds its name)."""
    i = _NAME_IDS.get(name)
    if i is None:
        with _NAMES_LOCK:
            i = _NAME_IDS.get(name)
            if i is None:
                NAMES.append(name)
                i = len(NAMES) - 1
                _NAME_IDS[name] = i
    return i


class NotReplayable(RuntimeError):
    """Raised while a function is traced for replay, before it does something a replay
    could not repeat (``what`` says what): compile catches it and runs that signature
    eagerly, so the thing happens once, at the eager run."""

    def __init__(self, what):
        self.what = what
        super().__init__(
            f"a function being recorded (compile, tapegrad.func) {what}, which a replay "
            f"would not repeat. tapegrad.func cannot transform such a function: do that "
            f"outside it, or call it eagerly")


def refuse_in_trace(what):
    """Raise NotReplayable if this thread is tracing a function for replay."""
    if _tls.tape.save_all:
        raise NotReplayable(what)


def dtype_code(dtype):
    return 1 if dtype == np.float64 else 0


class Tape:
    def __init__(self):
        self.buf = bytearray()
        self.n = 0
        self.k = 0
        self.g0 = 0
        self.kept = np.empty(0, np.int64)
        self.arena = [np.empty(1 << 12, np.float32), np.empty(1 << 12, np.float64)]
        self.atop = [0, 0]
        self.iar = np.empty(1 << 10, np.int64)
        self.itop = 0
        self.rc = array("q")
        self.nlive = 0
        self.freed = np.zeros(1 << 10, np.uint8)
        self.leaves = {}     # gid -> leaf Tensor that requires grad (strong: it receives .grad)
        self.retained = {}   # gid -> weakref to a non-leaf Tensor that asked for retain_grad()
        self.dirty = {}      # gid -> (record count when modified in place, version)
        self.pyrefs = {}     # gid -> arrays a Python-side VJP reads (matmul operands)
        self.pyfns = {}      # gid -> the ctx (grad_fn) of a custom Function's output record
        self.held = 0        # bytes those nodes hold outside the arena (hold_bytes)
        self.held_limit = _MIN_HELD
        self.hooks = {}      # gid -> autograd.hooks.RecordHooks of a hooked record
        self.traces = {}     # gid -> forward stack of the record (only in anomaly mode)
        self.limit = _MIN_LIMIT
        self.pinned = 0         # > 0 while local indices must not move (a recorded backward)
        self.sweeping = 0       # backward sweeps running (> 1: one inside another's Python)
        self.save_all = False   # set while tracing a function for replay: keep every value
        self.inputs_log = None  # while tracing: gid -> tensor of every INPUT record
        self.value_reads = 0    # while tracing: times the function read a tensor's value
        self.opaque = []        # while tracing: custom Functions called (not replayable)
        self.guards = None      # while tracing: [(tensor, values)] the recording baked in
        self.buffer_copies = 0  # times append found a live view of buf and had to copy it

    # ---- ids ------------------------------------------------------------------------
    def local(self, gid):
        if gid >= self.g0:
            return gid - self.g0 + self.k
        if not self.k:
            return -1
        i = int(np.searchsorted(self.kept, gid))
        return i if i < self.k and self.kept[i] == gid else -1

    def gid(self, local):
        return self.g0 + local - self.k if local >= self.k else int(self.kept[local])

    # ---- recording ------------------------------------------------------------------
    def append(self, word, a, b, c, p0, p1, value, save, f0=0.0, f1=0.0, live=1):
        """Append the record producing `value` (an array); returns its gid. The value is
        copied into the arena when `save` (its VJP reads it) or when the tape saves all."""
        shape = value.shape
        nd = len(shape)
        try:
            self.buf += _PACKERS[nd](
                word | nd << K.ND_SHIFT, a, b, c, p0, p1,
                self._store(dtype_of(word), value) if save or self.save_all else -1,
                *shape, value.size, f0, f1)
        except IndexError:
            raise RuntimeError(
                f"tapegrad records tensors of up to {K.MAXD} dimensions; got shape "
                f"{tuple(shape)}. Reshape to fewer dimensions before this operation.") from None
        except BufferError:
            self._detach_views()
            return self.append(word, a, b, c, p0, p1, value, save, f0, f1, live)
        self.rc.append(live)
        self.nlive += live
        n = self.n
        self.n = n + 1
        return self.g0 + n - self.k

    def _detach_views(self):
        """The record buffer cannot grow while a numpy view of it (records()) is alive.
        tapegrad's own code drops its views before appending, so a live one was left
        behind: by a sweep that an exception or KeyboardInterrupt stopped (its frame in a
        traceback), or by code that kept records() around. Records move to a new buffer
        (one copy); the stray view keeps the old one, and sees no later records. Counted
        and warned about, since the copy costs O(tape) and the view is now stale."""
        self.buffer_copies += 1
        if self.sweeping:       # a sweep called Python that records: its views are in use
            self.buf = bytearray(self.buf)
            return
        warnings.warn(
            f"tapegrad: a view of this thread's tape records is still alive (from an "
            f"interrupted backward, or a kept Tape.records() result), so the buffer was "
            f"copied to grow ({self.n} records); that view no longer sees new records",
            RuntimeWarning, stacklevel=4)
        self.buf = bytearray(self.buf)

    def save(self, local, arr):
        """Make sure slot `local` has its value in the arena (copying `arr` once)."""
        pos = local * _RECBYTES + _VOFF_BYTE
        if _Q.unpack_from(self.buf, pos)[0] < 0:
            word = _Q.unpack_from(self.buf, local * _RECBYTES)[0]
            _Q.pack_into(self.buf, pos, self._store(dtype_of(word), arr))

    def rename(self, local, name):
        """Give record `local` another grad_fn name id (composed losses show PyTorch's)."""
        pos = local * _RECBYTES
        word = _Q.unpack_from(self.buf, pos)[0]
        _Q.pack_into(self.buf, pos, (word & ((1 << K.NAME_SHIFT) - 1)) | name << K.NAME_SHIFT)

    def resave(self, local, arr):
        """Overwrite slot `local`'s saved value (after an in-place change), if it has one."""
        voff = _Q.unpack_from(self.buf, local * _RECBYTES + _VOFF_BYTE)[0]
        if voff >= 0:
            word = _Q.unpack_from(self.buf, local * _RECBYTES)[0]
            self.arena[dtype_of(word)][voff:voff + arr.size] = arr.reshape(-1)

    def set_requires_grad(self, local, rg):
        """Set record `local`'s requires_grad bit (a traced program's INPUT records take
        their arguments' flags)."""
        pos = local * _RECBYTES
        word = _Q.unpack_from(self.buf, pos)[0]
        _Q.pack_into(self.buf, pos, (word & ~K.RG_BIT) | int(rg) * K.RG_BIT)

    def hold(self, local):
        """One more live tensor stands for record `local`'s output."""
        self.rc[local] += 1
        self.nlive += 1

    def saved_value(self, local):
        """Record `local`'s saved value as an array of its shape (a view of the arena: copy
        it before the tape can grow or compact), or None if it saved none."""
        rec = _REC.unpack_from(self.buf, local * _RECBYTES)   # no view of buf kept
        voff = rec[K.VOFF]
        if voff < 0:
            return None
        w = rec[K.OPW]
        shape = rec[K.SH:K.SH + ndim_of(w)]
        return self.arena[dtype_of(w)][voff:voff + rec[K.SIZE]].reshape(shape)

    def append_program(self, R, vals, iar, links=()):
        """Append a recorded program's records R (local slots 0..len(R)-1, a copy this
        changes), its saved values `vals` (float32, float64) and index block `iar`;
        returns the local index of its first record. Slots, value and index offsets are
        relocated onto this tape; every new record starts with no live tensor. `links`
        are (slot, local) pairs: the program's record `slot` reads this tape's record
        `local` as its input A."""
        base, n = self.n, R.shape[0]
        tops = list(self.atop)
        for d in (0, 1):                       # values: bulk copy into the arenas
            v = vals[d]
            if v.size:
                self._store(d, v)
        ibase = self.itop
        if iar.size:
            self.store_index(iar)
        K.relocate(R, n, base, tops[0], tops[1], ibase, self.iar)
        for slot, local in links:
            R[slot, K.A] = local
        self.buf += R.tobytes()
        self.rc.extend([0] * n)
        self.n += n
        return base

    def _store(self, d, arr):
        size = arr.size
        top = self.atop[d]
        ar = self.arena[d]
        if top + size > ar.shape[0]:
            ar = self.arena[d] = _grown(ar, top, top + size)
        ar[top:top + size] = arr if arr.ndim == 1 else arr.reshape(-1)
        self.atop[d] = top + size
        return top

    def store_index(self, idx):
        """Copy an int64 index block into the index arena; returns its offset."""
        size = idx.size
        top = self.itop
        if top + size > self.iar.shape[0]:
            self.iar = _grown(self.iar, top, top + size)
        self.iar[top:top + size] = idx.reshape(-1)
        self.itop = top + size
        return top

    def grad_buffers(self, n32, n64):
        """Gradient buffers of at least these sizes, reused from one backward to the next
        (fresh pages for every backward of a large graph cost more than the sweep)."""
        bufs = getattr(self, "_gbufs", None)
        if bufs is None or bufs[0].shape[0] < n32 or bufs[1].shape[0] < n64:
            bufs = self._gbufs = (np.empty(max(n32, 1), np.float32),
                                  np.empty(max(n64, 1), np.float64))
        self.grad_need = (n32, n64)      # what this backward's graph uses of them
        return bufs

    def grad_buffers_are(self, bufs):
        return getattr(self, "_gbufs", None) is bufs

    def drop_grad_buffers(self):
        """Let go of the gradient buffers (parts of them became .grad tensors)."""
        self._gbufs = None

    # ---- views for the sweep ----------------------------------------------------------
    def records(self):
        """(int64 view, float64 view) of the records; drop them before appending again."""
        ints = np.frombuffer(self.buf, np.int64).reshape(self.n, K.NFIELDS)
        floats = np.frombuffer(self.buf, np.float64).reshape(self.n, K.NFIELDS)
        return ints, floats

    def freed_flags(self):
        if self.freed.shape[0] < self.n:
            self.freed = _grown(self.freed, self.freed.shape[0], self.n, zero=True)
        return self.freed

    # ---- lifecycle ----------------------------------------------------------------------
    def release(self, gid):
        """A tensor holding record `gid` died."""
        loc = self.local(gid)
        if loc >= 0:
            self.rc[loc] -= 1
            self.nlive -= 1
            if self.nlive <= 0 and not self.save_all:
                # Reset at the next op or backward, not here: __del__ can run inside an op
                # (cyclic GC), and that op may hold local indices into this tape. A tape
                # being traced keeps everything until the program is taken from it.
                self.limit = 0

    def reset(self):
        """Forget every record; arena capacity is kept for the next graph."""
        n = self.n
        self.g0 += n - self.k
        self.k = 0
        self.kept = _NO_GIDS
        self.n = 0
        self.buf = bytearray()
        self.rc = array("q")
        self.nlive = 0
        self.atop = [0, 0]
        self.itop = 0
        self.freed[:n] = 0
        if self.leaves:
            self.leaves.clear()
        if self.retained:
            self.retained.clear()
        if self.dirty:
            self.dirty.clear()
        if self.pyrefs:
            self.pyrefs.clear()
        for d in (self.pyfns, self.hooks, self.traces):
            if d:
                d.clear()
        self.held = 0
        self.held_limit = _MIN_HELD
        self.limit = _MIN_LIMIT

    def collect(self):
        """Reclaim every record no live, unfreed tensor can reach."""
        n = self.n
        if self.pinned:
            self.limit = max(self.limit, 2 * n)
            return
        if n == 0 or self.nlive <= 0:
            self.reset()
            return
        R, _ = self.records()
        rc = np.frombuffer(self.rc, np.int64)
        keep = np.zeros(n, np.uint8)
        freed = self.freed_flags()
        any_live = K.mark_live(R, self.iar, rc, freed, n, keep)
        if not any_live:
            del R, rc
            self.reset()
            return
        kept_local = np.flatnonzero(keep)
        if kept_local.shape[0] == n:
            del R, rc
            self.limit = max(_MIN_LIMIT, 2 * n)
            return
        gids = np.empty(kept_local.shape[0], np.int64)
        old = kept_local < self.k
        gids[old] = self.kept[kept_local[old]]
        gids[~old] = self.g0 + kept_local[~old] - self.k
        new32 = np.empty(max(self.atop[0], 1), np.float32)
        new64 = np.empty(max(self.atop[1], 1), np.float64)
        newiar = np.empty(max(self.itop, 1), np.int64)
        newidx = np.empty(n, np.int64)
        k, t32, t64, ti = K.compact(R, self.iar, keep, n, self.arena[0], self.arena[1],
                                    new32, new64, newiar, newidx)
        newrc = rc[kept_local].copy()
        newfreed = freed[:n][kept_local].copy()
        del R, rc
        self.buf = self.buf[:k * _RECBYTES]
        self.rc = array("q", newrc.tobytes())
        self.freed[:n] = 0
        self.freed[:k] = newfreed
        self.arena = [_grown(new32, t32, self.arena[0].shape[0]),
                      _grown(new64, t64, self.arena[1].shape[0])]
        self.atop = [t32, t64]
        self.iar = _grown(newiar, ti, self.iar.shape[0])
        self.itop = ti
        self.g0 += n - self.k
        self.kept = gids
        self.k = self.n = k
        self.nlive = int(newrc.sum())
        alive = set(self.kept.tolist())
        for d in (self.leaves, self.retained, self.dirty, self.pyrefs, self.pyfns, self.hooks,
                  self.traces):
            for g in [g for g in d if g not in alive]:
                del d[g]
        self.held = sum(getattr(node, "_held", 0) for node in {id(v): v for v in
                                                              self.pyfns.values()}.values())
        self.held_limit = max(_MIN_HELD, 2 * self.held)
        self.limit = max(_MIN_LIMIT, 2 * k)

    def hold_bytes(self, nbytes):
        """A record's node took `nbytes` outside the arena (negative: gave them back).
        Past held_limit, the tape collects at its next op, so memory that unreachable
        nodes hold stays bounded however few records they add."""
        self.held = max(self.held + nbytes, 0)
        if self.held > self.held_limit:
            self.limit = 0

    # ---- reading ----------------------------------------------------------------------------
    def settle(self):
        """Carry out a reset that release() deferred."""
        if self.nlive <= 0 and self.n and not self.save_all and not self.pinned:
            self.reset()

    def __len__(self):
        self.settle()
        return self.n

    def nbytes(self):
        """Bytes held for the current records: records, saved values, index blocks, and the
        matrix-product operands kept by reference (each array once)."""
        self.settle()
        kept = {id(a): a.nbytes for pair in self.pyrefs.values() for a in pair}
        return (self.n * _RECBYTES + self.atop[0] * 4 + self.atop[1] * 8 + self.itop * 8
                + sum(kept.values()))

    def listing(self):
        """The tape as text, one record a line: ``%3 = mul(%1, %2)  f32[5, 3]``."""
        if self.n == 0:
            return "(empty tape)"
        R, F = self.records()
        lines = []
        for r in range(self.n):
            w = int(R[r, K.OPW])
            op = op_of(w)
            nd = ndim_of(w)
            shape = ", ".join(str(int(x)) for x in R[r, K.SH:K.SH + nd])
            ty = ("f64" if dtype_of(w) else "f32") + f"[{shape}]"
            name = NAMES[name_of(w)]
            args = [f"%{int(s)}" for s in R[r, K.A:K.C + 1] if s >= 0]
            if op in (K.CAT, K.PYFN):
                io = int(R[r, K.P0])
                args = [f"%{int(self.iar[io + 4 + 3 * q])}" for q in range(int(self.iar[io]))]
            extra = ""
            if op in (K.ADDC, K.MULC, K.POWC, K.RPOWC, K.RDIVC) or (op == K.NEG and F[r, K.F0]):
                extra = f", {F[r, K.F0]:g}"
            elif op == K.CLAMP:
                extra = f", {F[r, K.F0]:g}, {F[r, K.F1]:g}"
            if op == K.INPUT:
                text = "input" + (" requires_grad" if rg_of(w) else "")
            else:
                opname = "scalar_sub" if op == K.NEG and extra else OPNAMES.get(op, "?")
                text = f"{opname}({', '.join(args)}{extra})"
            flags = "  freed" if self.freed.shape[0] > r and self.freed[r] else ""
            lines.append(f"%{r} = {text}  {ty}  <{name}>{flags}")
        return "\n".join(lines)


OPNAMES = {
    K.INPUT: "input", K.DEAD: "freed",
    **{getattr(K, u.opcode): u.name for u in rules.UNARY + rules.BINARY},
    K.SUM: "sum", K.TRANSPOSE: "transpose",
    K.MEAN: "mean", K.EXTREME: "extreme", K.GATHER: "gather", K.SCATTER: "scatter", K.RESHAPE: "reshape",
    K.CAT: "cat", K.SOFTMAX: "softmax", K.LOGSOFTMAX: "log_softmax",
    K.BCEWL: "bce_with_logits", K.NLL: "nll", K.BCE: "bce", K.MATMUL: "matmul", K.CAST: "cast",
    K.PYFN: "function", K.PYOUT: "function_output", K.UVJP: "unary_vjp", K.LINALG: "linalg",
}


def _grown(arr, used, need, zero=False):
    """A bigger copy of arr holding its first `used` entries (capacity at least `need`)."""
    cap = max(need, 2 * arr.shape[0], 16)
    new = np.zeros(cap, arr.dtype) if zero else np.empty(cap, arr.dtype)
    new[:used] = arr[:used]
    return new


class _PerThread(threading.local):
    def __init__(self):
        self.tape = Tape()


_tls = _PerThread()


def current():
    """This thread's tape."""
    return _tls.tape
