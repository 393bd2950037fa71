"""Python control flow inside a model: a cubic or higher polynomial whose degree is drawn
anew at every forward pass, with the same weight reused for every power above three, and
trained with momentum SGD.

The graph is recorded as the code runs, so a loop whose length changes from call to call
needs nothing special; reusing one ``Parameter`` several times adds its gradients up.
The degrees are drawn with numpy from a fixed seed, so every library sees the same ones.

    python docs/examples/nn_dynamic.py
"""
import math

import numpy as np


def make_model(torch, start, degrees):
    class Dynamic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name, v in zip("abcde", start):
                setattr(self, name, torch.nn.Parameter(torch.tensor(float(v),
                                                                     dtype=torch.float64)))
            self.degrees = iter(degrees)

        def forward(self, x):
            y = self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3
            for p in range(4, next(self.degrees) + 1):     # 0, 1 or 2 extra terms
                y = y + self.e * x ** p
            return y
    return Dynamic()


def main(torch, steps=3000, lr=1e-8, n=2000, verbose=True):
    x_np = np.linspace(-math.pi, math.pi, n)
    x, y = torch.tensor(x_np), torch.tensor(np.sin(x_np))
    rng = np.random.default_rng(2)
    model = make_model(torch, rng.normal(scale=0.1, size=5), rng.integers(3, 6, size=steps))
    loss_fn = torch.nn.MSELoss(reduction="sum")
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for step in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if verbose and (step % 500 == 0 or step == steps - 1):
            print(f"step {step:5d}  loss {losses[-1]:.4f}")
    return {"coef": [p.item() for p in model.parameters()], "losses": losses}


if __name__ == "__main__":
    import tapegrad
    main(tapegrad)
