"""Independent references the tests compare against: the papers' algorithms written out by hand."""

import numpy as np


def algorithm1(gr, gf, sr, sf, a1=0.5, a2=0.75, eps=0.05, delta=0.05):
    """Zadorozhnyy et al., Algorithm 1, transcribed line by line (numpy, float64)."""
    gr, gf = np.asarray(gr, dtype=np.float64), np.asarray(gf, dtype=np.float64)
    nr, nf, dot = np.linalg.norm(gr), np.linalg.norm(gf), float(gr @ gf)
    obtuse = dot < 0  # angle > 90 degrees
    if sr < sf - delta or sr < a1:
        if obtuse:
            return 1 / nr + eps, -dot / (nf ** 2 * nr) + eps, 1
        return 1 / nr + eps, eps, 2
    elif sr > sf - delta and sr > a2:
        if obtuse:
            return -dot / (nr ** 2 * nf) + eps, 1 / nf + eps, 3
        return eps, 1 / nf + eps, 4
    return 1 / nr + eps, 1 / nf + eps, 5


def aw_hinge_gradients(d_real, d_fake, params):
    """The aw gradient per parameter, by hand: hinge parts' gradients from two ``torch.autograd.grad``
    passes through ``d_real`` / ``d_fake`` (which need their graph), weighted by :func:`algorithm1`."""
    import torch

    g_r = torch.autograd.grad(torch.relu(1 - d_real).mean(), params, retain_graph=True)
    g_f = torch.autograd.grad(torch.relu(1 + d_fake).mean(), params)
    flat = lambda gs: np.concatenate([g.reshape(-1).numpy() for g in gs])  # noqa: E731
    w_r, w_f, _ = algorithm1(flat(g_r), flat(g_f), float(torch.sigmoid(d_real).mean().detach()),
                             float(torch.sigmoid(d_fake).mean().detach()))
    return [w_r * a + w_f * b for a, b in zip(g_r, g_f)]
