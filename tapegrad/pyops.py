"""Records whose every pass runs in Python: the one table the engine, replay, the recorded
backward and symbolic look an opcode up in.

``RULES`` maps an opcode (in kernels.opcodes' FIRST_PY range, so that every compiled pass
hands its records back) to an object with

- ``forward(R, r, ins, out)``: write record r's value into the array ``out`` from its
  inputs' values ``ins`` (replay's forward pass);
- ``vjp(R, r, arrays, g)``: [(input slot, gradient array)] for the inputs that require
  grad, given the output gradient g; ``arrays`` are the inputs' values then the output's
  (the eager and replayed reverse sweeps);
- ``tangent(R, r, ins, out, tans)``: the output's tangent from the inputs' (replay's and
  forward mode's tangent sweep);
- ``recorded(R, r, g, h)``: [(slot, Tensor)], the VJP written with tapegrad ops, so that it
  is recorded (create_graph, func.hessian); h(slot) is a tensor standing for a slot.

tapegrad.linalg registers its LINALG opcode here when it is imported.
"""
RULES = {}


def operands(R, r, value):
    """The arrays record r's Python VJP reads, inputs then output, from value(slot)."""
    from . import kernels as K
    return tuple(value(s) for s in (int(R[r, K.A]), int(R[r, K.B]), int(R[r, K.C]))
                 if s >= 0) + (value(r),)
