"""The same fit with a hand-written autograd Function: the Legendre polynomial P3.

The model is y = a + b P3(c + d x), where P3(t) = (5 t^3 - 3 t) / 2. ``LegendreP3``
supplies the forward value and, for backward, the derivative P3'(t) = 1.5 (5 t^2 - 1)
times the incoming gradient; autograd chains it with the recorded ops around it. Its
output's ``grad_fn`` is ``<LegendrePolynomial3Backward>``.

    python docs/examples/legendre_function.py
"""
import math

import numpy as np


def legendre_p3(torch):
    """The Function class, defined against the given library."""

    class LegendrePolynomial3(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t)               # backward needs t itself
            return 0.5 * (5 * t ** 3 - 3 * t)

        @staticmethod
        def backward(ctx, grad_output):
            (t,) = ctx.saved_tensors
            return grad_output * 1.5 * (5 * t ** 2 - 1)

    return LegendrePolynomial3


def main(torch, steps=2000, lr=0.015, n=1000, verbose=True):
    """Fit a, b, c, d; returns them, the loss of every step and the output's grad_fn name."""
    P3 = legendre_p3(torch)
    x_np = np.linspace(-math.pi, math.pi, n)
    y_np = np.sin(x_np)
    x, y = torch.tensor(x_np), torch.tensor(y_np)
    # P3 on [-0.9, 0.9] already has sin's shape, upside down: start there
    a, b, c, d = (torch.tensor(np.float64(v), requires_grad=True)
                  for v in (0.0, -1.0, 0.0, 0.3))
    params = [a, b, c, d]

    losses = []
    for step in range(steps):
        p3 = P3.apply(c + d * x)
        y_hat = a + b * p3
        loss = ((y_hat - y) ** 2).mean()
        loss.backward()
        losses.append(loss.item())
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad.zero_()
        if verbose and (step % 500 == 0 or step == steps - 1):
            print(f"step {step:5d}  loss {losses[-1]:.6f}")

    coef = [p.item() for p in params]
    if verbose:
        print("y = {:.4f} {:+.4f} P3({:.4f} {:+.4f} x)".format(*coef))
    return {"coef": coef, "losses": losses, "grad_fn": p3.grad_fn.name()}


if __name__ == "__main__":
    import tapegrad
    main(tapegrad)
