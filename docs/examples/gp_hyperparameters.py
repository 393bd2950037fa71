"""A Gaussian process's kernel hyper-parameters, fitted by maximising the log marginal
likelihood with SciPy's L-BFGS-B and gradients from ``tapegrad.func.value_and_grad``.

The model: y = f(x) + noise, f ~ GP(0, k) with the RBF kernel
k(x, x') = s2 exp(-|x - x'|^2 / (2 l^2)) and Gaussian noise of variance n2. With
K = k(X, X) + n2 I = L L^T (Cholesky) and alpha = L^-1 y, the negative log marginal
likelihood is

    0.5 |alpha|^2 + sum(log diag L) + (n / 2) log(2 pi)

(sum(log diag L) is half of logdet(K)). The three hyper-parameters are optimised as
logarithms, so they stay positive. SciPy asks for the value and the gradient together
(``jac=True``); ``func.value_and_grad`` of the compiled function gives both in one replay.
The fitted model then predicts at new points through ``cholesky_solve``.

    python docs/examples/gp_hyperparameters.py
"""
import math

import numpy as np


def make_data(n=40, seed=0):
    """Noisy samples of sin(2x) + x / 2 on [0, 5]."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0.0, 5.0, n))
    y = np.sin(2.0 * x) + 0.5 * x + 0.2 * rng.standard_normal(n)
    return x, y - y.mean()


def kernel(torch, d2, log_l, log_s2):
    """The RBF kernel matrix from squared distances d2."""
    return torch.exp(log_s2) * torch.exp(-0.5 * d2 * torch.exp(-2.0 * log_l))


def neg_log_marginal_likelihood(torch, theta, d2, y):
    """theta = (log lengthscale, log signal variance, log noise variance)."""
    n = y.shape[0]
    K = kernel(torch, d2, theta[0], theta[1]) + torch.exp(theta[2]) * torch.eye(
        n, dtype=torch.float64)
    L = torch.linalg.cholesky(K)
    alpha = torch.linalg.solve_triangular(L, y.unsqueeze(-1), upper=False)
    return 0.5 * (alpha * alpha).sum() + torch.log(torch.diagonal(L)).sum() + \
        0.5 * n * math.log(2.0 * math.pi)


def value_and_grad(torch, fn):
    """fn's value and gradient in one call: tapegrad records fn once and replays it;
    PyTorch runs torch.func.grad_and_value."""
    if hasattr(torch.func, "value_and_grad"):
        return torch.func.value_and_grad(torch.compile(fn))
    grad_and_value = torch.func.grad_and_value(fn)
    return lambda *args: grad_and_value(*args)[::-1]


def predict(torch, theta, x, y, x_new):
    """The posterior mean at x_new: k(x_new, X) K^-1 y, K^-1 y through cholesky_solve."""
    d2 = torch.tensor((x[:, None] - x[None, :]) ** 2)
    cross = torch.tensor((x_new[:, None] - x[None, :]) ** 2)
    th = torch.tensor(theta)
    K = kernel(torch, d2, th[0], th[1]) + torch.exp(th[2]) * torch.eye(len(x),
                                                                       dtype=torch.float64)
    L = torch.linalg.cholesky(K)
    w = torch.cholesky_solve(torch.tensor(y).unsqueeze(-1), L)
    return (kernel(torch, cross, th[0], th[1]) @ w).squeeze(-1).detach().numpy()


def main(torch, theta0=(0.0, 0.0, 0.0), verbose=True):
    """Fit from theta0; returns the optimum, its negative log likelihood, the start's, and
    SciPy's result."""
    from scipy.optimize import minimize

    x, y = make_data()
    d2 = torch.tensor((x[:, None] - x[None, :]) ** 2)
    yt = torch.tensor(y)
    vg = value_and_grad(torch, lambda th: neg_log_marginal_likelihood(torch, th, d2, yt))
    history = []

    def fun(theta):
        v, g = vg(torch.tensor(theta))
        history.append(float(v))
        return float(v), g.detach().numpy().astype(np.float64)

    start = fun(np.array(theta0, float))[0]
    res = minimize(fun, np.array(theta0, float), jac=True, method="L-BFGS-B")
    lengthscale, signal, noise = np.exp(res.x)
    if verbose:
        print(f"-log p(y) from {start:.4f} to {res.fun:.4f} in {res.nit} iterations "
              f"({res.message})")
        print(f"lengthscale {lengthscale:.4f}, signal variance {signal:.4f}, noise variance "
              f"{noise:.5f} (noise sd {math.sqrt(noise):.4f}; the data's is 0.2)")
    x_new = np.linspace(0.0, 5.0, 6)
    mean = predict(torch, res.x, x, y, x_new)
    if verbose:
        print("posterior mean at", np.round(x_new, 2), ":", np.round(mean, 3))
    return {"theta": res.x, "nlml": res.fun, "start": start, "result": res,
            "history": history, "mean": mean, "x_new": x_new}


if __name__ == "__main__":
    import tapegrad
    main(tapegrad)
