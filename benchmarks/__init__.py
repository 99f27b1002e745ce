"""The gan_optim benchmark (``gan-optim bench``): each component against a hand-written plain step.

Installed as ``gan_optim_benchmarks`` so that the command works from an install; it is
not part of the library (``import gan_optim`` never loads it).
"""
