"""Fuzz of the public API: random corruptions of every state dict, random arguments to the formulas.

A corrupt state must be refused with a typed error (TypeError / ValueError / FloatingPointError)
and nothing changed (a full before/after fingerprint is compared); only the replacements listed
in VALID are values a field may take, and they are accepted.
"""

import math
import os

import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings, strategies as st

import gan_optim.functional as F
from gan_optim import AdaptiveScheduler, AWDiscriminatorLoss, FreeAdvDiscriminator, TwoTimescale, WeightedGeneratorLoss

from _fingerprint import fingerprint, same

TYPED = (TypeError, ValueError, FloatingPointError)
FUZZ = settings(deadline=None, max_examples=int(os.environ.get("GAN_OPTIM_FUZZ_EXAMPLES", "60")), suppress_health_check=[HealthCheck.too_slow])


def setup():
    torch.manual_seed(0)
    G = nn.Linear(2, 2)
    D = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3)
    comps = {
        "aw": AWDiscriminatorLoss(D),
        "wegan": WeightedGeneratorLoss(0.1),
        "sched": AdaptiveScheduler(),
        "ttur": TwoTimescale(G, D, g_schedule=0.75, d_schedule=0.6),
        "freeadv": FreeAdvDiscriminator(D, opt_d, data_range=None),
    }
    x = torch.randn(8, 2)
    comps["aw"](x + 1, x - 1).backward()
    opt_d.step()
    comps["wegan"](D(G(x)))
    comps["sched"].next_update()
    comps["sched"].observe(loss_g=1.0, loss_d=2.0)
    comps["ttur"].step_d()
    comps["freeadv"].step(x + 1, x - 1)
    return G, D, opt_d, comps, x


def use(name, comps, G, D, x):
    """One ordinary call of the component (after a load, it must work or fail with a typed error)."""
    if name == "aw":
        comps["aw"](x + 1, x - 1)
    elif name == "wegan":
        comps["wegan"](D(G(x)))
    elif name == "sched":
        comps["sched"].next_update()
        comps["sched"].observe(loss_g=1.5, loss_d=2.5)
    elif name == "ttur":
        comps["ttur"].step_d()
    else:
        comps["freeadv"].step(x + 1, x - 1)


BAD = ["garbage", math.nan, math.inf, -3, -0.5, 1e300, True, [1], {"x": 1}, None, "D", "raise", 2.0,
       torch.full((2, 2), math.nan), torch.ones(3)]
BAD_VALUES = st.sampled_from(BAD)

#: The replacements from BAD that are valid values of a field; every other replacement must be refused.
VALID = {
    "aw": {"delta": [1e300, 2.0], "eps": [1e300, 2.0], "last": [None], "nonfinite": ["raise"]},
    "wegan": {"last_weights": [None], "nonfinite": ["raise"]},
    "sched": {"eps": [1e300, 2.0], "lam": [1e300, 2.0], "last": [None], "last_choice": [None, "D"],
              "max_consecutive": [None], "pending": [None, "D"], "ratio_d": [1e300, 2.0], "ratio_g": [1e300, 2.0],
              # losses may be negative (WGAN)
              "prev_loss_d": [-3, -0.5, 1e300, 2.0], "prev_loss_g": [-3, -0.5, 1e300, 2.0]},
    "ttur": {"check_finite": [True], "g_optimizer": [None], "d_optimizer": [None],  # state_dict(optimizers=False)
             "g_power": [1e300, None, 2.0], "d_power": [1e300, None, 2.0]},
    "freeadv": {"alpha_f": [1e300, 2.0], "atomic": [True], "data_range": [None], "delta": [None],
                "epsilon": [1e300, 2.0], "nonfinite": ["raise"], "step_size": [1e300, None, 2.0]},
}


def is_valid(name, key, value):
    return any(type(value) is type(v) and not isinstance(v, torch.Tensor) and value == v
               for v in VALID[name].get(key, ()))


def load_refused(comp, corrupt, everything):
    before = fingerprint(*everything)
    with pytest.raises(TYPED):
        comp.load_state_dict(corrupt)
    assert same(fingerprint(*everything), before), "a refused state changed something"


@pytest.mark.parametrize("name", ["aw", "wegan", "sched", "ttur", "freeadv"])
@FUZZ
@given(data=st.data())
def test_corrupt_state_dicts_are_refused_with_nothing_changed(name, data):
    G, D, opt_d, comps, x = setup()
    comp = comps[name]
    state = comp.state_dict()
    corrupt = dict(state)
    action = data.draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
    key = data.draw(st.sampled_from(sorted(state)))
    if action == "replace":
        corrupt[key] = data.draw(BAD_VALUES)
    elif action == "delete":
        del corrupt[key]
    else:
        corrupt["unexpected"] = 1
    everything = (G, D), (opt_d, comps["ttur"].g_optimizer, comps["ttur"].d_optimizer), list(comps.values())
    if action != "replace" or not is_valid(name, key, corrupt[key]):
        load_refused(comp, corrupt, everything)
        return
    # A valid value: accepted, and the component keeps working.
    comp.load_state_dict(corrupt)
    try:
        use(name, comps, G, D, x)
    except TYPED:
        pass


@pytest.mark.parametrize("name", ["aw", "wegan", "sched", "ttur", "freeadv"])
def test_every_invalid_field_value_is_refused(name):
    """Every field replaced by every value of BAD: refused with nothing changed, unless the value is valid there."""
    G, D, opt_d, comps, _ = setup()
    state = comps[name].state_dict()
    for key in sorted(state):
        for value in BAD:
            everything = (G, D), (opt_d, comps["ttur"].g_optimizer, comps["ttur"].d_optimizer), list(comps.values())
            if is_valid(name, key, value):
                comps[name].load_state_dict({**state, key: value})
                G, D, opt_d, comps, _ = setup()  # accepted: start again from the saved state
                continue
            load_refused(comps[name], {**state, key: value}, everything)


@pytest.mark.parametrize("name", ["aw", "wegan", "sched", "ttur", "freeadv"])
def test_missing_and_unknown_keys_are_refused(name):
    G, D, opt_d, comps, _ = setup()
    state = comps[name].state_dict()
    everything = (G, D), (opt_d, comps["ttur"].g_optimizer, comps["ttur"].d_optimizer), list(comps.values())
    load_refused(comps[name], {**state, "unexpected": 1}, everything)
    for key in state:
        load_refused(comps[name], {k: v for k, v in state.items() if k != key}, everything)


def test_wegan_weights_that_are_no_distribution_are_refused():
    """Locally the weights sum to 1, under DDP to a rank's share of it: never above 1, never negative."""
    _, _, _, comps, _ = setup()
    wegan = comps["wegan"]
    state = wegan.state_dict()
    for weights in (torch.full((4,), 0.3), torch.tensor([1.5, -0.5]), torch.tensor([0.5, math.inf])):
        with pytest.raises(ValueError, match="last_weights"):
            wegan.load_state_dict({**state, "last_weights": weights})
    for weights in (torch.full((4,), 0.25), torch.tensor([0.1, 0.2])):  # a whole batch; a rank's share
        wegan.load_state_dict({**state, "last_weights": weights})
        assert torch.equal(wegan.last_weights, weights)


@FUZZ
@given(data=st.data())
def test_functional_formulas_take_only_what_they_document(data):
    junk = st.sampled_from([None, "x", math.nan, -1.0, [1.0], torch.ones(2, 2), torch.ones(0), True])
    calls = [
        lambda a, b: F.aw_weights(a, b, 0.5, 0.5),
        lambda a, b: F.aw_weights(torch.ones(3), torch.ones(3), a, b),
        lambda a, b: F.gradient_geometry(a, b),
        lambda a, b: F.loss_change_ratio(a, b),
        lambda a, b: F.choose_update(a, b),
        lambda a, b: F.wegan_weights(a, b),
        lambda a, b: F.ascent_direction(a, b),
        lambda a, b: F.project(a, b),
        lambda a, b: F.polynomial_rate(a, 1.0, b),
        lambda a, b: F.kl_to_uniform(a, b),
        lambda a, b: F.effective_sample_size(a),
        lambda a, b: F.d_loss_real(a, b),
        lambda a, b: F.g_loss_per_sample(a, b),
    ]
    call = data.draw(st.sampled_from(calls))
    a, b = data.draw(junk), data.draw(junk)
    try:
        call(a, b)
    except TYPED:
        pass


CORRUPT_CASES = [
    ("aw nonfinite bogus", "aw", {"nonfinite": "bogus"}),
    ("aw steps negative", "aw", {"steps": -3}),
    ("aw alpha1 above alpha2", "aw", {"alpha1": 0.9, "alpha2": 0.5}),
    ("sched pending X", "sched", {"pending": "X"}),
    ("sched ratio nan", "sched", {"ratio_d": math.nan}),
    ("sched prev loss str", "sched", {"prev_loss_d": "abc"}),
    ("wegan weights garbage", "wegan", {"last_weights": "garbage"}),
    ("freeadv delta too large", "freeadv", {"delta": torch.full((8, 2), 5.0)}),
    ("ttur steps negative", "ttur", {"steps_d": -1}),
    ("ttur scheduler state of the wrong shape", "ttur", {"g_scheduler": {"x": 1}}),
    ("another component's state", "aw", {"component": "WeightedGeneratorLoss"}),
    ("newer version", "ttur", {"version": 99}),
]


@pytest.mark.parametrize("name,comp,change", CORRUPT_CASES, ids=[c[0] for c in CORRUPT_CASES])
def test_the_reported_corrupt_states_are_refused(name, comp, change):
    G, D, opt_d, comps, _ = setup()
    state = {**comps[comp].state_dict(), **change}
    everything = (G, D), (opt_d,), list(comps.values())
    before = fingerprint(*everything)
    with pytest.raises(TYPED):
        comps[comp].load_state_dict(state)
    assert same(fingerprint(*everything), before)


def test_a_radius_beyond_the_dtype_is_no_constraint():
    D = nn.Linear(2, 1)
    fa = FreeAdvDiscriminator(D, torch.optim.SGD(D.parameters(), lr=0.1), epsilon=1e300, step_size=0.01,
                              data_range=None)
    fa.step(torch.randn(4, 2), torch.randn(4, 2))
    assert bool(torch.isfinite(fa.delta).all())


def test_every_state_dict_loads_with_weights_only():
    import io

    _, _, _, comps, _ = setup()
    for comp in comps.values():
        buffer = io.BytesIO()
        torch.save(comp.state_dict(), buffer)
        buffer.seek(0)
        comp.load_state_dict(torch.load(buffer, weights_only=True))
