"""Stand-in for the parts of BigGAN-PyTorch's utils that its training function touches."""
import torch


class Sampler(torch.Tensor):
    """A tensor that resamples itself in place (BigGAN's z_ / y_ contract).

    Like BigGAN's ``Distribution``, ``.to()`` is overridden and needs the
    sampling attributes: on any tensor *computed from* a sampler (which is
    still of this class, but without them) it raises.
    """

    def configure(self, kind, **params):
        self.kind = kind
        self.params = params
        return self

    def sample_(self):
        if self.kind == "normal":
            self.normal_(0.0, self.params["std"])
        else:
            self.random_(0, self.params["classes"])

    def to(self, *args, **kwargs):
        moved = Sampler(torch.Tensor.to(self.as_subclass(torch.Tensor), *args, **kwargs))
        return moved.configure(self.kind, **self.params)


def make_z_y(batch, dim_z, classes, device="cpu"):
    z = Sampler(torch.randn(batch, dim_z)).configure("normal", std=1.0).to(device, torch.float32)
    y = Sampler(torch.zeros(batch)).configure("categorical", classes=classes).to(device, torch.int64)
    return z, y


def toggle_grad(net, on):
    for p in net.parameters():
        p.requires_grad = on


def ortho(net, strength, blacklist=()):
    # A small orthogonality penalty's gradient, added to .grad (the contract: acts on gradients).
    skip = {id(p) for p in blacklist}
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim < 2 or id(p) in skip or p.grad is None:
                continue
            w = p.reshape(p.shape[0], -1)
            gram = w @ w.t()
            off = gram * (1.0 - torch.eye(w.shape[0]))
            p.grad += strength * 2.0 * (off @ w).reshape(p.shape)


class ema:
    """Exponential moving average of G's state into G_ema."""

    def __init__(self, source, target, decay=0.999, start_itr=0):
        self.source, self.target, self.decay, self.start_itr = source, target, decay, start_itr
        with torch.no_grad():
            for k, v in target.state_dict().items():
                v.copy_(source.state_dict()[k])

    def update(self, itr=None):
        d = 0.0 if (itr and itr < self.start_itr) else self.decay
        src, dst = self.source.state_dict(), self.target.state_dict()
        with torch.no_grad():
            for k in src:
                dst[k].copy_(dst[k] * d + src[k] * (1 - d))


def name_from_config(config):
    return "standin_" + str(config.get("seed", 0))
