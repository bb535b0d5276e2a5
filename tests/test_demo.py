"""The demo end to end at a tiny size, its CLI errors, and the pieces it is built from."""

import importlib.metadata
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamlab
from adamlab import demo
from adamlab.demo import data, model, train

# The three runs the demo's checks need (the decay histogram and the Optax comparison): XLA compiles dominate a
# tiny run, so the other optimizers are checked separately below, on a small problem.
SMOKE_OPTIMIZERS = ["adam_l2", "adamw", "optax_adamw"]
TINY = [
    "--steps",
    "6",
    "--d-model",
    "16",
    "--layers",
    "1",
    "--heads",
    "2",
    "--context",
    "16",
    "--batch",
    "4",
    "--eval-every",
    "3",
    "--no-progress",
    "--optimizers",
    ",".join(SMOKE_OPTIMIZERS),
]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    demo.main([*TINY, "--out", str(out)])
    return out, json.loads((out / "results.json").read_text())


def test_demo_writes_a_finite_table_for_every_optimizer(tiny_run):
    out, results = tiny_run
    rows = {r["name"]: r for r in results["table"]}
    assert list(rows) == SMOKE_OPTIMIZERS  # optax is installed in the test environment
    for r in rows.values():
        for key in ("train_loss", "val_loss", "gap", "weight_norm", "step_ms", "steps_per_s"):
            assert math.isfinite(r[key]), (r["name"], key)
        assert r["gap"] == pytest.approx(r["val_loss"] - r["train_loss"])
        history = results["histories"][r["name"]]
        assert len(history["train_loss"]) == 6 and history["eval_step"] == [0, 3, 6]
    table = (out / "table.md").read_text()
    assert all(r["label"] in table for r in rows.values())


def test_every_demo_optimizer_descends_at_its_learning_rate():
    """Each spec builds with its schedule and decreases a quadratic within 50 steps, evaluated where the demo
    evaluates (lookahead's slow weights, schedule-free's average); all specs in one compiled program."""
    cfg = train.TrainConfig(steps=50)
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "bias": jnp.ones(4)}
    loss = lambda p: 0.5 * sum(jnp.sum(x**2) for x in jax.tree.leaves(p))

    def final_loss(spec, model_params):
        tx = spec.build(cfg.schedule(spec.peak_lr * 10, spec.lr_shape), 0.1)  # x10: a quadratic is no transformer

        def step(carry, _):
            p, s = carry
            u, s = tx.update(jax.grad(loss)(spec.at_gradient(p)), s, p)
            return (adamlab.apply_updates(p, u), s), None

        p = model_params if spec.init_params is None else spec.init_params(model_params)
        final, state = jax.lax.scan(step, (p, tx.init(p)), None, length=50)[0]
        return loss(spec.at_evaluation(final, state))

    finals = jax.jit(lambda p: {n: final_loss(s, p) for n, s in train.OPTIMIZERS.items()})(params)
    ratios = {n: float(v) / float(loss(params)) for n, v in finals.items()}
    assert len(ratios) == len(train.OPTIMIZERS)
    assert not {n: r for n, r in ratios.items() if not r < 0.9}, ratios


def test_demo_adamw_matches_optax(tiny_run):
    _, results = tiny_run
    assert results["adamw_vs_optax"]["max_abs"] < 1e-5
    assert results["histories"]["adamw"]["train_loss"] == results["histories"]["optax_adamw"]["train_loss"]


def test_demo_effective_decay_is_uniform_for_adamw_and_spread_for_l2(tiny_run):
    _, results = tiny_run
    cfg = train.TrainConfig(**results["config"])
    lr_last = float(cfg.schedule(train.OPTIMIZERS["adamw"].peak_lr)(cfg.steps - 1))
    adamw, l2 = results["effective_decay"]["adamw"], results["effective_decay"]["adam_l2"]
    assert adamw["min"] == pytest.approx(lr_last * cfg.weight_decay, rel=1e-6) == adamw["max"]
    assert l2["decades_p1_p99"] > 0.5 and l2["median"] > adamw["median"]


def test_demo_plots_are_nonempty_images(tiny_run):
    out, _ = tiny_run
    image = pytest.importorskip("matplotlib.image")
    for name in ("losses.png", "weights.png", "effective_decay.png"):
        raw = (out / name).read_bytes()
        assert raw.startswith(PNG) and len(raw) > 20_000, name
        pixels = image.imread(out / name)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 800
        assert pixels[..., :3].std() > 0.05, f"{name} is blank"


def test_trajectories_subcommand(tmp_path):
    demo.main(["trajectories", "--steps", "30", "--out", str(tmp_path)])
    finals = json.loads((tmp_path / "trajectories.json").read_text())
    ravine = next(v for k, v in finals.items() if k.startswith("ravine"))
    start = 9.0**2 / 200 + 2 * 1.6**2
    assert all(0 <= v < start for v in ravine.values())
    assert (tmp_path / "trajectories.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--optimizers", "adam,sophia"], "unknown optimizer"),
        (["--d-model", "30", "--heads", "4"], "divisible by heads"),
        (["--weight-decay", "-1"], "weight_decay must be >= 0"),
        (["--lr", "adam"], "NAME=LR"),
        (["--steps", "0"], "must be >= 1"),
    ],
)
def test_cli_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        demo.main(argv)
    assert message in str(exc.value) + capsys.readouterr().err


def test_console_script_points_at_main():
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("adamlab-demo") == "adamlab.demo:main"


def test_corpus_is_cpython_help_text_split_without_overlap():
    tr, va = data.train_val_split()
    assert 0.08 < len(va) / (len(tr) + len(va)) < 0.12
    assert data.decode(tr[:200]).isascii() and "assert" in data.decode(tr[:2000])
    text = "x = [1, 2]\n# “quotes” — dash"
    assert data.decode(data.encode(text)) == 'x = [1, 2]\n# "quotes" -- dash'
    offsets = data.batch_offsets(len(tr), 64, 8, 5, seed=3)
    np.testing.assert_array_equal(offsets, data.batch_offsets(len(tr), 64, 8, 5, seed=3))
    assert offsets.min() >= 0 and offsets.max() + 65 <= len(tr)


def test_model_is_causal_and_starts_near_uniform():
    cfg = model.ModelConfig(vocab_size=len(data.VOCAB), context=12, d_model=16, layers=1, heads=2)
    params = model.init_params(cfg, 0)
    tokens = jnp.asarray(np.random.default_rng(1).integers(0, cfg.vocab_size, (2, 12)), jnp.int32)
    apply = jax.jit(model.apply, static_argnums=2)
    logits = apply(params, tokens, cfg)
    changed = apply(params, tokens.at[:, 7].set((tokens[:, 7] + 1) % cfg.vocab_size), cfg)
    np.testing.assert_array_equal(logits[:, :7], changed[:, :7])  # the future does not leak into the past
    assert not np.allclose(logits[:, 7:], changed[:, 7:])
    logp = jax.nn.log_softmax(np.asarray(logits, np.float64))  # the init predicts ~uniform characters
    loss = -np.mean(np.take_along_axis(np.asarray(logp), np.asarray(tokens)[..., None], axis=-1))
    assert abs(loss - math.log(cfg.vocab_size)) < 0.1
    assert jnp.all(jnp.isfinite(logits))
