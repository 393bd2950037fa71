"""Fit a cubic polynomial to sin(x) on [-pi, pi] with autograd and plain gradient descent.

The model is y = a + b x + c x^2 + d x^3 with its four coefficients in one leaf tensor
that requires grad. Every step records the mean squared error, lets ``backward()`` fill
``coef.grad``, and then moves the coefficients against the gradient by hand: the update
runs under ``no_grad()`` so that it is not recorded, and ``grad.zero_()`` clears the
gradient before the next step adds into it.

    python docs/examples/polynomial_fit.py

``main`` takes the library as an argument, so the same program runs with tapegrad and
with PyTorch (the tests compare the two).
"""
import math

import numpy as np


def sine_data(n=1000):
    """n evenly spaced points on [-pi, pi] and sin of them (float64 numpy arrays)."""
    x = np.linspace(-math.pi, math.pi, n)
    return x, np.sin(x)


def main(torch, steps=3000, lr=0.005, n=1000, verbose=True):
    """Fit the cubic; returns the coefficients [a, b, c, d] and the loss of every step."""
    x_np, y_np = sine_data(n)
    x, y = torch.tensor(x_np), torch.tensor(y_np)
    start = np.random.default_rng(0).normal(scale=0.1, size=4)   # same start in every library
    coef = torch.tensor(start, requires_grad=True)

    losses = []
    for step in range(steps):
        a, b, c, d = coef[0], coef[1], coef[2], coef[3]
        y_hat = a + x * (b + x * (c + x * d))            # Horner's rule
        loss = ((y_hat - y) ** 2).mean()
        loss.backward()
        losses.append(loss.item())
        with torch.no_grad():
            coef -= lr * coef.grad
            coef.grad.zero_()
        if verbose and (step % 500 == 0 or step == steps - 1):
            print(f"step {step:5d}  loss {losses[-1]:.6f}")

    a, b, c, d = coef.detach().tolist()
    if verbose:
        print(f"y = {a:.4f} {b:+.4f} x {c:+.4f} x^2 {d:+.4f} x^3")
    return {"coef": [a, b, c, d], "losses": losses}


if __name__ == "__main__":
    import tapegrad
    main(tapegrad)
