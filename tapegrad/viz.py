"""Pictures of a recorded graph: Graphviz DOT text, rendering with ``dot``, the tape listing.

Only the standard library is used; drawing needs the Graphviz ``dot`` program on PATH.
Build the picture before ``backward()``: a backward without ``retain_graph`` frees the
records, and a freed node has no ``next_functions`` left to walk.
"""
import shutil
import subprocess

from . import kernels as _K
from .kernels import dtype_of, ndim_of
from .tape import current as _current_tape

_LEAF = 'shape=box, style="filled,rounded", fillcolor="#dbe9f6"'
_CONST = 'shape=box, style=filled, fillcolor="#f2f2f2", fontsize=9, height=0.2'
_OP = 'shape=ellipse, style=filled, fillcolor="#fdf1d6"'
_OUT = 'shape=box, style="filled,rounded", fillcolor="#dcefd9", penwidth=2'


def _quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _type_text(shape, is64):
    """Shape and dtype the way the tape listing writes them: ``f32[5, 3]``."""
    return ("f64" if is64 else "f32") + "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _tensor_type(t):
    return _type_text(t.shape, t.dtype == "float64")


def _node_shape(node):
    """Output type of a grad_fn node, read from its tape record ('' once it is freed)."""
    tp = getattr(node, "_tape", None)
    if tp is None:
        return ""
    loc = tp.local(node._gid)
    if loc < 0 or loc >= tp.n:
        return ""
    R, _ = tp.records()
    try:
        word = int(R[loc, _K.OPW])
        return _type_text(R[loc, _K.SH:_K.SH + ndim_of(word)], dtype_of(word))
    finally:
        del R


def to_dot(tensor, names=None):
    """The graph that produced ``tensor`` as Graphviz DOT source.

    Leaves that require grad are blue boxes (name, shape, ``requires_grad``), operations
    are ellipses (grad_fn name and output shape), constants are small grey boxes, and
    ``tensor`` itself is a green box. Edges run from inputs to the operations that use
    them. ``names`` maps a label to a tensor (``{"w": w, "b": b, "loss": loss}``); it
    names leaves and, for non-leaf tensors, the operation that made them.

    >>> import tapegrad as tg
    >>> from tapegrad import viz
    >>> w = tg.ones(3, requires_grad=True)
    >>> src = viz.to_dot((w * 2).sum(), names={"w": w})
    >>> "MulBackward0" in src and "requires_grad" in src
    True
    """
    names = names or {}
    leaf_names = {id(t): n for n, t in names.items() if t.grad_fn is None}
    op_names = {t.grad_fn: n for n, t in names.items()
                if t.grad_fn is not None and t is not tensor}
    out_name = next((n for n, t in names.items() if t is tensor), "output")
    lines = ["digraph tapegrad {", '  rankdir=LR;', '  node [fontname="Helvetica", fontsize=11];']
    ids = {}

    def add(key, label, style):
        ids[key] = f"n{len(ids)}"
        lines.append(f"  {ids[key]} [label={_quote(label)}, {style}];")
        return ids[key]

    todo = []

    def node(fn):
        """The DOT id of fn, emitting the node (and queueing its inputs) on first sight."""
        if fn in ids:
            return ids[fn]
        if hasattr(fn, "variable"):        # AccumulateGrad: a leaf that requires grad
            v = fn.variable
            return add(fn, f"{leaf_names.get(id(v), 'leaf')}\n{_tensor_type(v)}\nrequires_grad",
                       _LEAF)
        named = op_names[fn] + " " if fn in op_names else ""
        todo.append(fn)
        return add(fn, f"{fn.name()}\n{named}{_node_shape(fn) or '(freed)'}", _OP)

    label = f"{out_name}\n{_tensor_type(tensor)}"
    if tensor.grad_fn is None:
        add("root", label + ("\nrequires_grad" if tensor.requires_grad else ""), _OUT)
    else:
        top = node(tensor.grad_fn)
        lines.append(f"  {top} -> {add('root', label, _OUT)};")
    while todo:                            # a loop, not recursion: graphs can be deep
        fn = todo.pop()
        for child, _ in fn.next_functions:
            src = add(("const", len(ids)), "constant", _CONST) if child is None else node(child)
            lines.append(f"  {src} -> {ids[fn]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_source, path, fmt="svg"):
    """Draw DOT source to ``path`` in ``fmt`` (``svg``, ``png``...) with Graphviz ``dot``.

    Returns the path written, or None when the ``dot`` program is not on PATH (nothing is
    written then). Raises RuntimeError with Graphviz's message if ``dot`` fails.
    """
    exe = shutil.which("dot")
    if exe is None:
        return None
    proc = subprocess.run([exe, f"-T{fmt}", "-o", str(path)], input=dot_source.encode(),
                          capture_output=True)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        raise RuntimeError(f"Graphviz dot could not render {path}: {msg}")
    return str(path)


def listing():
    """This thread's tape as text, one record a line (see ``tapegrad.tape_listing``)."""
    return _current_tape().listing()
