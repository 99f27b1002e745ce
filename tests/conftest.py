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
