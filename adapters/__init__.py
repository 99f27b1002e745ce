"""Adapters that apply gan_optim's techniques to existing GAN code bases without editing them.

- :mod:`gan_optim.adapters.biggan`: BigGAN-PyTorch (``biggan.patch("aw")``).
- :mod:`gan_optim.adapters.autogan`: AutoGAN (``autogan.patch("aw")``).
- :mod:`gan_optim.adapters.launch`: ``gan-optim biggan|autogan --repo PATH --technique T -- <args>``.

The adapter modules are imported on demand (each looks for the upstream
modules on ``sys.path`` only when ``patch`` is called).
"""

from ._patching import TAG, Patch, is_patched
from ._techniques import OPTIONS, TECHNIQUES

__all__ = ["OPTIONS", "TAG", "TECHNIQUES", "Patch", "is_patched"]
