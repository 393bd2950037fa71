"""Clip gradients with a tensor hook while training a small linear model by SGD.

``w.register_hook(fn)`` calls ``fn(grad)`` when w's gradient is complete and uses what it
returns instead. A hook returning ``grad.clamp(-limit, limit)`` therefore clips every
entry of the gradient before it is added to ``w.grad``, on every backward, with no change
to the training loop. The returned handle's ``remove()`` turns clipping off again.

    python docs/examples/clip_hook.py
"""
import numpy as np


def make_problem(n=100, features=3, seed=2):
    """Noisy linear data; a large target scale makes the first gradients large."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    true_w = np.array([4.0, -3.0, 2.5])[:features]
    y = X @ true_w + 1.5 + 0.1 * rng.normal(size=n)
    return X, y


def main(torch, steps=100, lr=0.1, limit=0.5, clip=True, verbose=True):
    """Fit y = X w + b; returns the weights, the losses, and the largest gradient entry
    that reached .grad in each step."""
    X_np, y_np = make_problem()
    X, y = torch.tensor(X_np), torch.tensor(y_np)
    w = torch.zeros(X_np.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    handles = [p.register_hook(lambda g: g.clamp(-limit, limit)) for p in (w, b)] if clip \
        else []

    losses, largest = [], []
    for step in range(steps):
        loss = ((X @ w + b - y) ** 2).mean()
        loss.backward()
        losses.append(loss.item())
        largest.append(max(abs(w.grad).max().item(), abs(b.grad).item()))
        with torch.no_grad():
            for p in (w, b):
                p -= lr * p.grad
                p.grad.zero_()
        if verbose and (step % 20 == 0 or step == steps - 1):
            print(f"step {step:4d}  loss {losses[-1]:.5f}  largest grad entry "
                  f"{largest[-1]:.3f}")
    for h in handles:
        h.remove()
    return {"w": w.detach().tolist(), "b": b.item(), "losses": losses, "largest": largest}


if __name__ == "__main__":
    import tapegrad
    main(tapegrad)
