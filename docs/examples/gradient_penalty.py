"""A gradient-penalty (WGAN-GP) training step for a tiny critic, using create_graph.

A Wasserstein critic should be 1-Lipschitz. The gradient penalty asks for it softly: at
points x_hat on the segments between real and generated samples, the norm of the
critic's gradient with respect to its input, ||dD/dx_hat||, should be 1. The penalty
lam * mean((||dD/dx_hat|| - 1)^2) is itself a function of a gradient, so that gradient is
computed with ``autograd.grad(..., create_graph=True)``: it stays on the tape, and the
critic's loss backward differentiates through it (a second derivative) to the weights.

    python docs/examples/gradient_penalty.py

The samples, the mixing weights and the initial weights come from numpy, so tapegrad
and PyTorch see the same numbers.
"""
import numpy as np


def make_problem(n=64, hidden=16, seed=0):
    """float64 numpy arrays: real and generated samples, mixing weights, the critic's
    initial weights."""
    rng = np.random.default_rng(seed)
    real = rng.normal(loc=(2.0, -1.0), scale=0.5, size=(n, 2))
    fake = rng.normal(size=(n, 2))
    mix = rng.uniform(size=(n, 1))
    weights = {"W1": rng.normal(scale=0.7, size=(2, hidden)), "b1": np.zeros(hidden),
               "w2": rng.normal(scale=0.3, size=hidden), "b2": np.zeros(())}
    return real, fake, mix, weights


def critic(p, x):
    """D(x) = tanh(x W1 + b1) . w2 + b2, one score per row of x."""
    return (x @ p["W1"] + p["b1"]).tanh() @ p["w2"] + p["b2"]


def critic_loss(torch, p, real, fake, mix, lam):
    """The critic's loss, its gradient penalty, and the input-gradient norms at x_hat."""
    x_hat = (mix * real + (1 - mix) * fake).requires_grad_(True)
    scores = critic(p, x_hat)
    (g,) = torch.autograd.grad(scores, x_hat, grad_outputs=torch.ones_like(scores),
                               create_graph=True)
    norms = ((g ** 2).sum(dim=1) + 1e-12).sqrt()
    penalty = lam * ((norms - 1) ** 2).mean()
    loss = critic(p, fake).mean() - critic(p, real).mean() + penalty
    return loss, penalty, norms


def train_step(torch, p, real, fake, mix, lam, lr):
    """One SGD step of the critic; returns (loss, penalty, mean gradient norm at x_hat)."""
    loss, penalty, norms = critic_loss(torch, p, real, fake, mix, lam)
    loss.backward()                  # reaches the weights through g, too
    with torch.no_grad():
        for w in p.values():
            w -= lr * w.grad
            w.grad = None
    return loss.item(), penalty.item(), norms.mean().item()


def main(torch, steps=200, lam=10.0, lr=0.01, verbose=True):
    """Train the critic; returns the per-step history and the final weights."""
    real_np, fake_np, mix_np, init = make_problem()
    real, fake, mix = torch.tensor(real_np), torch.tensor(fake_np), torch.tensor(mix_np)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
    history = []
    for step in range(steps):
        history.append(train_step(torch, p, real, fake, mix, lam, lr))
        if verbose and (step % 50 == 0 or step == steps - 1):
            loss, penalty, norm = history[-1]
            print(f"step {step:4d}  loss {loss:+.4f}  penalty {penalty:.4f}  "
                  f"|grad D| {norm:.3f}")
    return {"history": history, "weights": {k: w.detach().numpy().copy()
                                             for k, w in p.items()}}


if __name__ == "__main__":
    import tapegrad
    main(tapegrad)
