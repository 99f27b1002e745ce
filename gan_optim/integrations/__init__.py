"""Integrations with training frameworks (imported on demand; none is a dependency of gan_optim)."""
