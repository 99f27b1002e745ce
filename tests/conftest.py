import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Two cores are shared by the whole suite: keep torch single-threaded, so tests
# neither oversubscribe the machine nor depend on thread scheduling.
torch.set_num_threads(1)

settings.register_profile("ci", deadline=None, max_examples=60,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=500,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _standin_fingerprint(path, name):
    """The adapters' source fingerprint of function ``name`` in a stand-in file (read, not imported)."""
    import ast

    from gan_optim.adapters._patching import fingerprint_of_source

    source = path.read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return fingerprint_of_source("".join(source.splitlines(keepends=True)[node.lineno - 1:node.end_lineno]))
    raise LookupError(f"{name} not in {path}")


@pytest.fixture(autouse=True, scope="session")
def _trust_the_standins():
    """The stand-ins of tests/upstream/standins are our own copies of the upstream contracts: the adapters
    may replace their training functions, as they may the tested snapshots'."""
    from pathlib import Path

    from gan_optim.adapters import autogan, biggan

    standins = Path(__file__).parent / "upstream" / "standins"
    added = [
        (biggan, _standin_fingerprint(standins / "biggan" / "train_fns.py", "GAN_training_function")),
        (biggan, _standin_fingerprint(standins / "biggan" / "losses.py", "hinge_d")),  # what freeadv computes
        (autogan, _standin_fingerprint(standins / "autogan" / "functions.py", "train")),
    ]
    new = [(module, fp) for module, fp in added if fp not in module.TRUSTED_FINGERPRINTS]
    for module, fp in new:
        module.TRUSTED_FINGERPRINTS.add(fp)
    yield
    for module, fp in new:
        module.TRUSTED_FINGERPRINTS.discard(fp)
