"""A model of one's own: an ``nn.Module`` whose four scalar ``Parameter``s are the
coefficients of a cubic, trained on sin(x) with ``optim.SGD``.

The module registers its parameters by assigning them as attributes in ``__init__``;
``parameters()`` then hands them to the optimizer, and ``forward`` writes the
polynomial with them.

    python docs/examples/nn_custom_module.py
"""
import math

import numpy as np


def make_model(torch, start):
    class Cubic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            a, b, c, d = (torch.nn.Parameter(torch.tensor(float(v), dtype=torch.float64))
                          for v in start)
            self.a, self.b, self.c, self.d = a, b, c, d

        def forward(self, x):
            return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3

        def string(self):
            return (f"y = {self.a.item():.4f} {self.b.item():+.4f} x {self.c.item():+.4f} "
                    f"x^2 {self.d.item():+.4f} x^3")
    return Cubic()


def main(torch, steps=2000, lr=1e-6, n=2000, verbose=True):
    x_np = np.linspace(-math.pi, math.pi, n)
    x, y = torch.tensor(x_np), torch.tensor(np.sin(x_np))
    model = make_model(torch, np.random.default_rng(1).normal(scale=0.1, size=4))
    loss_fn = torch.nn.MSELoss(reduction="sum")
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if verbose and (step % 500 == 0 or step == steps - 1):
            print(f"step {step:5d}  loss {losses[-1]:.4f}")
    if verbose:
        print(model.string())
    return {"coef": [p.item() for p in model.parameters()], "losses": losses,
            "names": [name for name, _ in model.named_parameters()]}


if __name__ == "__main__":
    import tapegrad
    main(tapegrad)
