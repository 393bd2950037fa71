"""A cubic fitted to sin(x) with ``nn``: a Linear layer on the powers of x, summed squared
error from ``nn.MSELoss``, and parameter updates by hand.

The three powers x, x^2, x^3 are the columns of the input, so the model is one
``nn.Linear(3, 1)`` followed by ``nn.Flatten(0, 1)`` to drop the size-1 output dimension.
Each step zeroes the gradients through the model, backpropagates, and moves every
parameter against its gradient under ``no_grad()``.

    python docs/examples/nn_polynomial.py

``main`` takes the library as an argument, so the same program runs with tapegrad and
with PyTorch (the tests compare the two from the same starting weights).
"""
import math

import numpy as np


def main(torch, steps=2000, lr=1e-6, n=2000, verbose=True):
    x_np = np.linspace(-math.pi, math.pi, n)
    x = torch.tensor(x_np)
    y = torch.tensor(np.sin(x_np))
    powers = torch.tensor(np.stack([x_np, x_np ** 2, x_np ** 3], axis=1))

    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1)).double()
    rng = np.random.default_rng(0)        # the same start in every library
    model.load_state_dict({"0.weight": torch.tensor(rng.normal(scale=0.1, size=(1, 3))),
                           "0.bias": torch.tensor(rng.normal(scale=0.1, size=1))})
    loss_fn = torch.nn.MSELoss(reduction="sum")

    losses = []
    for step in range(steps):
        loss = loss_fn(model(powers), y)
        model.zero_grad()
        loss.backward()
        losses.append(loss.item())
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        if verbose and (step % 500 == 0 or step == steps - 1):
            print(f"step {step:5d}  loss {losses[-1]:.4f}")
    layer = model[0]
    coef = [layer.bias.item()] + layer.weight.detach().reshape(-1).tolist()
    if verbose:
        print(f"y = {coef[0]:.4f} {coef[1]:+.4f} x {coef[2]:+.4f} x^2 {coef[3]:+.4f} x^3")
    return {"coef": coef, "losses": losses, "x": x}


if __name__ == "__main__":
    import tapegrad
    main(tapegrad)
