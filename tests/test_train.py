"""Training: batches, the Tversky loss, a tiny run whose loss decreases, exact resume, weights that load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from exodf.errors import ExodfError
from exodf.normalize import normalize_frames
from exodf.sampling import TrainingMovie, sample_batch, symmetry
from exodf.simulate import preset, simulate
from exodf.spots import spot_labels
from exodf.targets import EXOCYTOSIS, SPOT, make_target, training_objects
from exodf.train import Stage, TrainConfig, train_network, tversky_loss, voxel_scores

SHAPE = dict(n_frames=24, height=32, width=32)


def _movie(seed: int, rate: float = 1.0) -> TrainingMovie:
    sim = simulate(preset("control", events_per_frame=rate, docked_density=6.0, **SHAPE), seed=seed)
    target = make_target(sim.movie.shape, sim.truth, spot_labels(sim.movie))
    return TrainingMovie(normalize_frames(sim.movie), target, training_objects(target, sim.truth), f"seed{seed}")


@pytest.fixture(scope="module")
def movies() -> list[TrainingMovie]:
    return [_movie(0), _movie(1), _movie(2)]


def test_symmetries_are_the_eight_of_the_square_and_leave_time_alone() -> None:
    a = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    images = {symmetry(a, k).tobytes() for k in range(8)}
    assert len(images) == 8
    for k in range(8):
        s = symmetry(a, k)
        assert s.shape == a.shape
        np.testing.assert_array_equal(np.sort(s[0].ravel()), np.arange(9))  # frame 0 stays frame 0
        np.testing.assert_array_equal(np.sort(s[1].ravel()), np.arange(9, 18))


def test_batches_balanced_and_centred(movies: list[TrainingMovie]) -> None:
    assert all(len(m.objects.spots) > 0 and len(m.objects.events) > 0 for m in movies)
    rng = np.random.default_rng(0)
    x, y = sample_batch(movies, 8, 16, 0, rng)
    assert x.shape == (16, 8, 8, 8, 1) and y.shape == (16, 8, 8, 8, 3)
    assert x.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_array_equal(y.sum(axis=-1), 1.0)  # one-hot
    centre = np.argmax(y[:, 4, 3:6, 3:6], axis=-1).reshape(16, -1)
    # without shift each patch holds its object near the centre: 8 event patches, 8 spot patches
    n_exo = int((centre == EXOCYTOSIS).any(axis=1).sum())
    n_spot = int(((centre == SPOT).any(axis=1) & ~(centre == EXOCYTOSIS).any(axis=1)).sum())
    assert n_exo >= 8 and n_exo + n_spot >= 15
    # shifted patches stay inside the movie
    x2, _ = sample_batch(movies, 16, 8, 32, rng)
    assert x2.shape == (8, 16, 16, 16, 1) and np.isfinite(x2).all()
    with pytest.raises(ValueError, match="smaller than the patch"):
        sample_batch(movies, 48, 2, 0, rng)


def test_tversky_loss_values() -> None:
    from keras.ops import convert_to_numpy

    tv = tversky_loss(0.5, 0.5)

    def loss(a: np.ndarray, b: np.ndarray) -> float:
        return float(convert_to_numpy(tv(a, b)))

    y = np.zeros((1, 2, 2, 2, 3), dtype=np.float32)
    y[..., 0] = 1
    y[0, 0, 0, 0] = (0, 0, 1)
    # a class absent from the batch counts 1 (its ratio is 0), as in the original
    assert loss(y, y) == pytest.approx(1.0, abs=1e-5)
    y[0, 1, 1, 1] = (0, 1, 0)
    assert loss(y, y) == pytest.approx(0.0, abs=1e-5)
    uniform = np.full_like(y, 1 / 3)
    # class 0 (6 voxels): TP 2, FP 2/3, FN 4 -> 2 / (2 + 1/3 + 2); classes 1, 2 (1 voxel each):
    # TP 1/3, FP 7/3, FN 2/3 -> (1/3) / (1/3 + 7/6 + 1/3) = 2/11
    expected = 3 - 2 / (2 + 1 / 3 + 2) - 2 * (2 / 11)
    assert loss(y, uniform) == pytest.approx(expected, abs=1e-5)
    assert voxel_scores(np.array([2, 2, 0, 1]), np.array([2, 0, 2, 1]), 2) == (0.5, 0.5, 0.5)
    # no voxel of the class in the truth (--no-spots): recall and F1 undefined, not 0
    assert voxel_scores(np.array([2, 0, 0]), np.array([2, 1, 0]), 1) == (0.0, None, None)
    assert voxel_scores(np.array([2, 1, 0]), np.array([2, 0, 0]), 1) == (None, 0.0, 0.0)  # all missed: 0


def _config(**kw: object) -> TrainConfig:
    stages = (Stage(8, 8, 2, epochs=3, steps=4), Stage(16, 2, 4, epochs=1, steps=2))
    return TrainConfig(stages=kw.pop("stages", stages), val_batches=1, **kw)  # type: ignore[arg-type]


def test_tiny_training_run_loss_decreases_and_weights_load(movies: list[TrainingMovie], tmp_path: Path) -> None:
    import keras

    from exodf.model import build_unet, load_network

    keras.utils.set_random_seed(1)
    net = build_unet()
    cfg = _config(stages=(Stage(8, 8, 2, epochs=3, steps=5), Stage(16, 2, 4, epochs=1, steps=2)),
                  learning_rate=1e-3)
    res = train_network(net, movies[:2], movies[2:], cfg, tmp_path / "run")
    assert res.finished and res.step == 17
    losses = [r["loss"] for r in res.history]
    assert [r["step"] for r in res.history] == [5, 10, 15, 17]
    assert [r["patch"] for r in res.history] == [8, 8, 8, 16]
    # measured per epoch of the patch-8 stage: training loss 2.154, 2.084, 2.036; validation 2.109, 2.071, 2.088
    assert losses[2] < losses[0] - 0.05, losses
    assert res.history[2]["val_loss"] < res.history[0]["val_loss"], res.history
    assert all(r["val_loss"] is not None and 0 <= r["val_loss"] <= 3 for r in res.history)
    out = tmp_path / "run"
    for name in ("model.weights.h5", "stage1_patch8.weights.h5", "stage2_patch16.weights.h5", "history.csv",
                 "training_curves.png", "config.json", "checkpoint/state.json", "checkpoint/optimizer.npz"):
        assert (out / name).is_file(), name
    assert len((out / "history.csv").read_text().splitlines()) == 5  # header + 4 epochs
    assert (out / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "config.json").read_text())["train"]["stages"][1]["patch"] == 16
    # the written weights load as an ExoDeepFinder network and predict as the trained one
    loaded = load_network(out / "model.weights.h5")
    x = movies[2].frames[None, :8, :16, :16, None]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(net(x)), atol=1e-6)
    # weights meant for detection hold the network only (Keras adds a compiled model's Adam moments: 3x)
    assert (out / "model.weights.h5").stat().st_size < 0.5 * (out / "checkpoint" / "model.weights.h5").stat().st_size
    # the last stage has one epoch: its best weights are the final ones
    assert res.best == out / "best.weights.h5" and res.best_step == 17
    for a, b in zip(load_network(res.best).get_weights(), net.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_best_weights_are_the_last_stage_epoch_with_the_lowest_validation_loss(
        movies: list[TrainingMovie], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    import exodf.train as train_mod
    from exodf.model import build_unet, load_network

    # scripted validation losses: the first stage's lowest (0.1) must not count (other patch size), the last
    # stage's lowest is its second epoch, step 8
    losses = iter([0.3, 0.1, 0.9, 0.5, 0.7, 0.6])
    monkeypatch.setattr(train_mod, "_validate", lambda net, batches, loss_fn: {"val_loss": next(losses)})
    keras.utils.set_random_seed(3)
    net = build_unet()
    cfg = _config(stages=(Stage(8, 4, 2, epochs=2, steps=2), Stage(16, 2, 4, epochs=4, steps=2)))
    snapshots: dict[int, list[np.ndarray]] = {}
    res = train_network(net, movies[:2], movies[2:], cfg, tmp_path / "run",
                        on_epoch=lambda row: snapshots.__setitem__(row["step"], net.get_weights()))
    assert [r["step"] for r in res.history] == [2, 4, 6, 8, 10, 12]
    assert res.best_step == 8 and res.best == tmp_path / "run" / "best.weights.h5"
    for a, b in zip(load_network(res.best).get_weights(), snapshots[8]):
        np.testing.assert_array_equal(a, b)
    assert any((a != b).any() for a, b in zip(load_network(res.weights).get_weights(), snapshots[8]))

    # resumed after the best epoch, the choice survives; without validation there is no best
    losses = iter([0.3, 0.1, 0.9, 0.5, 0.7, 0.6])
    keras.utils.set_random_seed(3)
    cut = train_network(build_unet(), movies[:2], movies[2:], cfg, tmp_path / "cut", until_step=10)
    assert not cut.finished
    rest = train_network(build_unet(), movies[:2], movies[2:], cfg, tmp_path / "cut", resume=True)
    assert rest.best_step == 8
    monkeypatch.setattr(train_mod, "_validate", lambda net, batches, loss_fn: {})
    none = train_network(build_unet(), movies[:2], movies[2:], _config(stages=(Stage(8, 4, 2, epochs=1, steps=1),)),
                         tmp_path / "none")
    assert none.best is None and not (tmp_path / "none" / "best.weights.h5").exists()


def test_a_checkpoint_left_by_an_interrupted_swap_counts(tmp_path: Path) -> None:
    """Interrupted between renaming checkpoint -> checkpoint.old and checkpoint.tmp -> checkpoint: the .old
    one is resumable, so a new training must not overwrite it, and the next save keeps it until replaced."""
    from exodf.checkpoint import has_checkpoint, refuse_checkpoint, save_checkpoint
    from exodf.errors import ExodfError
    from exodf.model import build_unet

    old = tmp_path / "checkpoint.old"
    old.mkdir()
    (old / "state.json").write_text("{}")
    assert has_checkpoint(tmp_path)
    with pytest.raises(ExodfError, match="--resume"):
        refuse_checkpoint(tmp_path)
    import keras

    net = build_unet()
    net.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    save_checkpoint(tmp_path, net, {"step": 1})
    assert (tmp_path / "checkpoint" / "state.json").is_file() and not old.exists()


def test_resume_continues_from_checkpoint_step(movies: list[TrainingMovie], tmp_path: Path) -> None:
    import keras

    from exodf.model import build_unet

    cfg = _config(stages=(Stage(8, 4, 2, epochs=2, steps=3), Stage(16, 2, 2, epochs=1, steps=2)))
    keras.utils.set_random_seed(2)
    net = build_unet()
    init = [w.copy() for w in net.get_weights()]
    full = train_network(net, movies[:2], movies[2:], cfg, tmp_path / "full")

    net2 = build_unet()
    net2.set_weights(init)
    part = train_network(net2, movies[:2], movies[2:], cfg, tmp_path / "cut", until_step=3)
    assert not part.finished and part.step == 3 and len(part.history) == 1
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert (state["step"], state["stage"], state["epoch"]) == (3, 0, 1)
    with pytest.raises(ExodfError, match="--resume"):
        train_network(build_unet(), movies[:2], movies[2:], cfg, tmp_path / "cut")

    net3 = build_unet()  # fresh weights: everything must come from the checkpoint
    seen: list[int] = []
    rest = train_network(net3, movies[:2], movies[2:], cfg, tmp_path / "cut", resume=True,
                         progress=lambda stage, done, total: seen.append(done))
    assert seen[0] == 4 and seen[-1] == 8  # the first step after the checkpoint is step 4
    assert int(keras.ops.convert_to_numpy(net3.optimizer.iterations)) == 8  # Adam restored at step 3, then 5 more
    assert rest.finished and rest.step == full.step == 8
    assert rest.best_step == full.best_step == 8  # the last stage has one epoch
    assert [r["step"] for r in rest.history] == [r["step"] for r in full.history] == [3, 6, 8]
    np.testing.assert_allclose([r["loss"] for r in rest.history], [r["loss"] for r in full.history], rtol=1e-4)
    for a, b in zip(net3.get_weights(), net.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_resume_needs_a_checkpoint_and_the_same_settings(movies: list[TrainingMovie], tmp_path: Path) -> None:
    from exodf.model import build_unet

    with pytest.raises(ExodfError, match="no checkpoint"):
        train_network(build_unet(), movies[:1], [], _config(), tmp_path / "none", resume=True)
    cfg = _config(stages=(Stage(8, 2, 0, epochs=2, steps=1),))
    train_network(build_unet(), movies[:1], [], cfg, tmp_path / "a", until_step=1)
    with pytest.raises(ExodfError, match="other training settings"):
        train_network(build_unet(), movies[:1], [], _config(stages=(Stage(8, 4, 0, epochs=2, steps=1),)),
                      tmp_path / "a", resume=True)


def test_config_checked() -> None:
    with pytest.raises(ValueError, match="Stage.patch"):
        Stage(10, 4, 0)
    with pytest.raises(ValueError, match="TrainConfig.learning_rate"):
        TrainConfig(learning_rate=0)
    assert TrainConfig().total_steps == 40000
    assert [(s.patch, s.batch, s.shift) for s in TrainConfig().stages] == [(8, 256, 4), (16, 128, 8), (32, 32, 16),
                                                                          (48, 10, 32)]


def test_scratch_initial_weights_follow_the_seed() -> None:
    from exodf.training_files import _initial_network

    a, b, c = (_initial_network("scratch", s).get_weights() for s in (3, 3, 4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_a_diverging_run_stops_without_saving_and_its_weights_are_refused(movies: list[TrainingMovie],
                                                                          tmp_path: Path) -> None:
    """A learning rate far too high turns the weights into NaN: training stops at the first non-finite loss,
    keeps the last good checkpoint, and NaN weights never reach detection (they detect nothing)."""
    import keras

    from exodf.checkpoint import save_weights
    from exodf.model import build_unet, load_network

    keras.utils.set_random_seed(0)
    out = tmp_path / "run"
    cfg = _config(stages=(Stage(8, 16, 2, epochs=10, steps=1),), learning_rate=1e6)
    train_network(build_unet(), movies[:2], movies[2:], cfg, out, until_step=1)  # step 1's loss: initial weights
    good = (out / "checkpoint" / "state.json").read_text()
    net = build_unet()
    with pytest.raises(ExodfError, match=r"diverged at step \d+ .*still holds the weights of step 1.*lower "
                                         r"--learning-rate \(now 1e\+06\)"):
        train_network(net, movies[:2], movies[2:], cfg, out, resume=True)
    assert (out / "checkpoint" / "state.json").read_text() == good
    assert not (out / "model.weights.h5").exists()
    net.set_weights([np.full_like(w, np.nan) for w in net.get_weights()])
    save_weights(net, tmp_path / "nan.weights.h5")
    with pytest.raises(ExodfError, match="NaN or infinite"):
        load_network(tmp_path / "nan.weights.h5")
