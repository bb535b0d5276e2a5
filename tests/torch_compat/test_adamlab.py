"""Each adamlab call of the "Coming from PyTorch" guide computes its ``torch.optim`` configuration.

For every case of ``cases.py``: the adamlab expression, jitted under x64 on float64 params, ends 200 steps within
1e-12 (relative, per leaf) of the float64 transcription of the torch class in ``reference.py``, which
``benchmarks/torch_parity.py`` holds to torch itself. The guide's table is the one :func:`cases.guide_table`
renders from the same cases, so a row cannot name a call that is not tested here.
"""

import pathlib

import numpy as np
import pytest

import adamlab

from . import cases

STEPS = 200
TOL = 1e-12
GUIDE = pathlib.Path(__file__).parents[2] / "docs" / "guides" / "from_pytorch.md"
START, END = "<!-- torch-cases: generated from tests/torch_compat/cases.py -->\n", "<!-- torch-cases: end -->\n"


def max_rel(a, b):
    return max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(b[k]))) for k in b)


@pytest.fixture(scope="module")
def problem():
    return cases.make_problem(seed=0, steps=STEPS)


@pytest.mark.parametrize("case", cases.CASES, ids=lambda c: c.name)
def test_adamlab_call_computes_the_torch_update_in_float64(case, problem):
    params, grads = problem
    err = max_rel(cases.run_adamlab(case.build(), params, grads), case.run_reference(params, grads))
    assert err <= TOL, f"{case.name}: {case.adamlab} is {err:.3g} from torch.optim.{case.torch_call}"


# An eps of 1e-8 or 1e-10 moves the params little: its placement costs 1e-9 over 200 steps, 1000 times TOL.
SMALL = 1e-10


@pytest.mark.parametrize(
    "name, without, by",
    [
        ("nadam_default", "adamlab.nadam(2e-3)", 1e-6),  # Optax's NAdam: no momentum schedule
        ("sgd_momentum_dampening", "adamlab.sgd(1e-2, momentum=0.9)", 1e-6),
        (
            "rmsprop_momentum_warmup",  # Optax's order of lr and momentum
            "adamlab.rmsprop(adamlab.schedules.linear_warmup(1e-4, 1e-3, 9), decay=0.99, eps=1e-8, "
            "eps_in_sqrt=False, momentum=0.9)",
            1e-6,
        ),
        ("adam_maximize", "adamlab.adam(1e-3)", 1e-6),
        ("adagrad_default", "adamlab.adagrad(1e-2, 0.0, 1e-10)", SMALL),  # eps inside the root
        ("adagrad_lr_decay_l2", "adamlab.adagrad(1e-2, 0.1, 1e-10, eps_in_sqrt=False, weight_decay=1e-2)", 1e-6),
        ("rprop_default", "adamlab.rprop(1e-2, optax_lag=True)", 1e-6),  # optax.rprop's late steps
        ("rprop_etas_step_sizes", "adamlab.rprop(0.1, 0.3, 1.5, 1e-3, 0.05)", 1e-6),  # unclipped first size
        ("adamax_l2_maximize", "adamlab.adamax(2e-3, weight_decay=1e-2)", 1e-6),
        ("radam_default", "adamlab.radam(1e-3)", SMALL),  # eps on the corrected root
        ("radam_l2", "adamlab.radam(1e-3, eps_before_bias_correction=True)", 1e-6),
        (
            "radamw_warmup",  # L2 in place of the decoupled decay
            "adamlab.radam(adamlab.schedules.linear_warmup(1e-4, 1e-3, 9), eps_before_bias_correction=True, "
            "weight_decay=1e-2)",
            1e-6,
        ),
    ],
)
def test_each_torch_convention_is_needed(name, without, by, problem):
    """Without the switch the torch case is missed by far more than the tolerance: the switches are not no-ops."""
    params, grads = problem
    case = cases.CASES_BY_NAME[name]
    other = cases.Case(case.name, case.torch_class, case.torch_kwargs, case.reference, without, schedule=case.schedule)
    assert max_rel(cases.run_adamlab(other.build(), params, grads), case.run_reference(params, grads)) > by


def test_guide_table_is_generated_from_the_cases():
    text = GUIDE.read_text()
    assert START in text and END in text, f"{GUIDE} lost its generated-table markers"
    table = text.split(START, 1)[1].split(END, 1)[0]
    assert table == cases.guide_table(), (
        "docs/guides/from_pytorch.md's optimizer table is out of date: paste the output of "
        "`python -m benchmarks.torch_parity --table`"
    )


def test_every_guide_call_names_a_public_adamlab_function():
    for case in cases.CASES:
        for name in case.adamlab.replace("(", " ").replace(",", " ").split():
            if name.startswith("adamlab.") and not name.startswith("adamlab.schedules."):
                assert name.split(".")[1] in adamlab.__all__, (case.name, name)
