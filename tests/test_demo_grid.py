"""`python -m adamlab.demo grid`: every cell of the vmapped grid is the plain optimizer's run, the summary reads the
good region's tilt correctly, and the CLI writes its JSON and heatmap."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamlab
from adamlab import demo
from adamlab.demo import grid

PNG = b"\x89PNG\r\n\x1a\n"
TINY = grid.GridConfig(steps=30, train_size=64, val_size=128, hidden=16)


def _plain_run(name, lr, wd, cfg, data):
    """One cell trained without vmap, with Python-number hyperparameters (so no traced value anywhere)."""
    eta = cfg.multiplier()
    tx = grid.OPTIMIZERS[name].build(lr, wd, eta)
    params = grid.init_params(cfg)
    state = tx.init(params)
    step = jax.jit(lambda p, s, idx: _step(tx, p, s, data, idx))
    for idx in data["batches"]:
        params, state = step(params, state, idx)
    return float(grid.loss_fn(params, jnp.asarray(data["val_x"]), jnp.asarray(data["val_y"])))


def _step(tx, params, state, data, idx):
    grads = jax.grad(grid.loss_fn)(params, jnp.asarray(data["x"])[idx], jnp.asarray(data["y"])[idx])
    updates, state = tx.update(grads, state, params)
    return adamlab.apply_updates(params, updates), state


@pytest.mark.parametrize("name", list(grid.OPTIMIZERS))
def test_each_vmapped_cell_is_the_plain_run(name):
    data = grid.make_data(TINY)
    lrs, wds = [1e-3, 1e-2], list(grid.OPTIMIZERS[name].wds[2:6:3])
    result = grid.train_grid(name, lrs, wds, TINY, data, progress=False)
    losses = np.array(result["val_loss"])
    assert losses.shape == (2, 2) and np.all(np.isfinite(losses))
    assert len({round(v, 6) for v in losses.ravel()}) == 4  # every cell trained with its own (lr, wd)
    for i, lr in enumerate(lrs):
        for j, wd in enumerate(wds):
            assert losses[i, j] == pytest.approx(_plain_run(name, lr, wd, TINY, data), rel=1e-4)


def test_the_data_is_reproducible_and_the_labels_are_noisy():
    a, b = grid.make_data(TINY), grid.make_data(TINY)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    clean = grid.make_data(TINY._replace(label_noise=0.0))
    disagree = np.mean(clean["y"] != a["y"])
    # 30% are redrawn at random, of which 7/8 land on another class
    assert 0.15 < disagree < 0.4


@pytest.mark.parametrize("slope", [-1, 0, 1])
def test_summary_reads_the_tilt_of_the_good_region(slope):
    lrs = [1e-4, 1e-3, 1e-2]
    wds = [10.0**e for e in range(-6, 3)]
    log_lr, log_wd = np.meshgrid(np.log10(lrs), np.log10(wds), indexing="ij")
    centre = -2 + slope * (log_lr + 3)  # the best log10(wd) for each lr
    loss = 1.0 + 0.1 * (log_wd - centre) ** 2
    loss[0, 0] = np.nan  # a diverged cell is never the best
    s = grid.summarize(loss, lrs, wds, margin=0.01)
    assert s["slope"] == pytest.approx(slope)
    assert s["best"]["val_loss"] == pytest.approx(1.0)
    assert s["within_margin"] == 3


def test_grid_subcommand_writes_json_and_heatmap(tmp_path):
    demo.main(
        [
            "grid",
            "--steps",
            "20",
            "--lrs",
            "1e-3,1e-2",
            "--wds",
            "1e-4,1e-2",
            "--wds",
            "adamw=0.1,1",
            "--no-progress",
            "--out",
            str(tmp_path),
        ]
    )
    out = json.loads((tmp_path / "grid.json").read_text())
    assert set(out["results"]) == set(grid.OPTIMIZERS)
    assert out["results"]["adamw"]["wds"] == [0.1, 1.0]
    assert out["results"]["adam_l2"]["wds"] == [1e-4, 1e-2]
    for r in out["results"].values():
        assert np.isfinite(np.array(r["val_loss"], float)).all()
        assert r["within_margin"] >= 1 and r["best"]["lr"] in r["lrs"]
    assert (tmp_path / "grid.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["grid", "--lrs", "1e-3,-1"], "positive numbers"),
        (["grid", "--wds", "lion=0.1"], "'lion' is not one of"),
        (["grid", "--optimizers", "adam_l2,sgd"], "unknown sgd"),
        (["grid", "--steps", "0"], "must be >= 1"),
    ],
)
def test_grid_cli_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        demo.main(argv)
    assert message in str(exc.value) + capsys.readouterr().err
