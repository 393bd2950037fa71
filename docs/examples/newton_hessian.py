"""Newton's method on a smooth convex function, with the Hessian from create_graph.

f(v) = log(sum(exp(A v - c))) + mu/2 |v|^2 is smooth and strictly convex, so Newton's
iteration v <- v - H(v)^-1 g(v) converges to its minimum quadratically: the number of
correct digits roughly doubles each step. g comes from ``autograd.grad(f, v,
create_graph=True)``, which keeps it on the tape; differentiating each of its entries
again gives a row of the Hessian H. The linear solve runs in numpy.

    python docs/examples/newton_hessian.py
"""
import numpy as np


def make_problem(m=6, n=3, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, n)), rng.normal(size=m), 0.1


def objective(torch, A, c, mu, v):
    return torch.log(torch.exp(A @ v - c).sum()) + 0.5 * mu * (v * v).sum()


def gradient_and_hessian(torch, A, c, mu, v):
    """g (a numpy vector) and H (a numpy matrix) of the objective at v."""
    f = objective(torch, A, c, mu, v)
    (g,) = torch.autograd.grad(f, v, create_graph=True)
    rows = [torch.autograd.grad(g[i], v, retain_graph=True)[0] for i in range(v.shape[0])]
    return g.detach().numpy().copy(), np.stack([r.detach().numpy() for r in rows])


def main(torch, steps=8, verbose=True):
    """Run Newton's iteration from v = 0; returns the iterates and the gradient norms."""
    A_np, c_np, mu = make_problem()
    A, c = torch.tensor(A_np), torch.tensor(c_np)
    v = torch.zeros(A_np.shape[1], dtype=torch.float64, requires_grad=True)
    iterates, norms = [], []
    for step in range(steps):
        g, H = gradient_and_hessian(torch, A, c, mu, v)
        norms.append(float(np.linalg.norm(g)))
        if verbose:
            print(f"step {step}  |g| = {norms[-1]:.3e}")
        with torch.no_grad():
            v -= torch.tensor(np.linalg.solve(H, g))
        iterates.append(v.detach().numpy().copy())
    return {"v": iterates[-1], "iterates": iterates, "grad_norms": norms}


if __name__ == "__main__":
    import tapegrad
    main(tapegrad)
