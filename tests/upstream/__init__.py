"""Shims and stand-ins for the adapter tests (BigGAN-PyTorch, AutoGAN); see _shims.py."""
