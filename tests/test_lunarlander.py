"""Tests for the LunarLander collection (keras_pae.data.lunarlander) and its command line."""

import os
import subprocess
import sys

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import warnings

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="builtin type Swig", category=DeprecationWarning)
    from gymnasium.envs.box2d import lunar_lander as gym_lunar_lander

from keras_pae.data import lunarlander

SIZE = 64
ROLLOUTS = 3
STEPS = 60  # long enough for the lander to fall well inside the frame and move ~0.7 px/step


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def run(cache_root):
    return lunarlander.generate_run(
        "autoencoder", rollouts=ROLLOUTS, steps=STEPS, image_size=SIZE, workers=1, cache_dir=cache_root, progress=False
    )


def _small(run_name="predictor", rollouts=2, steps=20, **kwargs):
    kwargs.setdefault("workers", 1)
    kwargs.setdefault("cache_dir", False)
    return lunarlander.generate_run(run_name, rollouts=rollouts, steps=steps, image_size=SIZE, progress=False, **kwargs)


def _assert_runs_equal(a, b):
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.rollouts, b.rollouts)


# --- geometry, derived from gymnasium's lunar_lander.py rather than copied from ours ---

_W = gym_lunar_lander.VIEWPORT_W / gym_lunar_lander.SCALE  # world units
_H = gym_lunar_lander.VIEWPORT_H / gym_lunar_lander.SCALE
_HELIPAD_Y = _H / 4  # set in LunarLander.reset, not a module constant


def _label_to_pixel(positions, size=SIZE):
    """Where the lander body's origin is in a size x size frame, in pixel-index coordinates (x, y).

    Inverts LunarLander's state[0:2] = ((pos.x - W/2) / (W/2), (pos.y - (helipad_y +
    LEG_DOWN/SCALE)) / (H/2)), then maps world units to render pixels (x SCALE, y flipped)
    and the render to size x size; -0.5 because pixel i covers [i, i+1).
    """
    world_x = positions[:, 0] * (_W / 2) + _W / 2
    world_y = positions[:, 1] * (_H / 2) + _HELIPAD_Y + gym_lunar_lander.LEG_DOWN / gym_lunar_lander.SCALE
    column = world_x * gym_lunar_lander.SCALE * size / gym_lunar_lander.VIEWPORT_W - 0.5
    row = (gym_lunar_lander.VIEWPORT_H - world_y * gym_lunar_lander.SCALE) * size / gym_lunar_lander.VIEWPORT_H - 0.5
    return np.stack([column, row], axis=1)


def _body_centroid_height(size=SIZE):
    """How far above its origin the lander polygon's centroid is, in pixels of a size x size frame."""
    x, y = np.asarray(gym_lunar_lander.LANDER_POLY, float).T
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    centroid_y = ((y + y1) * cross).sum() / (3 * cross.sum())  # render pixels (the polygon is in them)
    return centroid_y * size / gym_lunar_lander.VIEWPORT_H


def _purple_centroids(images):
    """Centroid (x, y) of the lander's blue-purple pixels in each frame, and their total weight.

    The lander (fill (128, 102, 230), outline (77, 77, 128)) is the only thing drawn
    with blue well above red and green: sky black, ground white, flags yellow,
    exhaust particles red-to-grey.
    """
    pixels = np.asarray(images).astype(np.int16)
    blueness = pixels[..., 2] - np.maximum(pixels[..., 0], pixels[..., 1])
    weight = np.clip(blueness - 40, 0, None).astype(np.float64)
    rows, columns = np.mgrid[: pixels.shape[1], : pixels.shape[2]]
    total = weight.sum(axis=(1, 2))
    safe = np.maximum(total, 1e-9)
    centroids = np.stack([(weight * columns).sum(axis=(1, 2)) / safe, (weight * rows).sum(axis=(1, 2)) / safe], 1)
    return centroids, total


def test_pixels_per_unit_matches_gymnasium_geometry():
    positions = np.array([[0.0, 0.0], [1.0, 1.0]])
    delta = _label_to_pixel(positions)[1] - _label_to_pixel(positions)[0]
    np.testing.assert_allclose(delta, [lunarlander.PIXELS_PER_UNIT, -lunarlander.PIXELS_PER_UNIT])
    # (x, y) = (0, 0) is the helipad centre with the legs down: column 31.5, row 44.62.
    np.testing.assert_allclose(_label_to_pixel(positions)[0], [31.5, 45.12 - 0.5])


# --- the run itself ---


def test_run_shapes_dtypes_and_values(run):
    n = ROLLOUTS * STEPS
    assert len(run) == n
    assert run.images.shape == (n, SIZE, SIZE, 3) and run.images.dtype == np.uint8
    assert run.positions.shape == (n, 2) and run.positions.dtype == np.float32
    assert run.rollouts.shape == (n,) and run.rollouts.dtype == np.int32
    np.testing.assert_array_equal(run.rollouts, np.repeat(np.arange(ROLLOUTS), STEPS))
    assert np.isfinite(run.positions).all()
    images = np.asarray(run.images)
    # Every frame has black sky, white ground and the lander: never one colour.
    assert (images.reshape(n, -1).std(axis=1) > 20).all()
    assert images.min() == 0 and images.max() == 255
    # Rollouts differ from one another (each is seeded separately).
    first_frames = images[:: STEPS]
    assert not np.array_equal(first_frames[0], first_frames[1])
    # The first label of each rollout is the reset state: the lander at the top centre, y ~ 1.41.
    start = run.positions[::STEPS]
    assert np.abs(start[:, 0]).max() < 0.02
    np.testing.assert_allclose(start[:, 1], 1.41, atol=0.02)


def test_labels_locate_the_lander_in_its_own_frame(run):
    """The label predicts where the lander is drawn, and the next state's label does not.

    Frames whose lander is fully visible are checked one by one (error <= 1 px;
    measured mean ~0.1 px, max ~0.2 px). The lander moves only ~0.7 px per step in
    a 64x64 frame, so a frame paired with the next (the authors' off-by-one) or
    previous state's label would still pass that; instead the mean error of those
    shifted pairings must be several times the mean error of the true pairing
    (measured ~0.6-0.8 px against ~0.1 px).
    """
    centroids, weight = _purple_centroids(run.images)
    expected = _label_to_pixel(run.positions)
    # The purple pixels' centroid is the body polygon's, a little above the body origin.
    expected[:, 1] -= _body_centroid_height()

    x, y = run.positions[:, 0], run.positions[:, 1]
    visible = (np.abs(x) <= 0.9) & (y >= -0.3) & (y <= 1.25) & (weight > 0)
    same_rollout_as_next = np.r_[run.rollouts[1:] == run.rollouts[:-1], False]
    same_rollout_as_previous = np.r_[False, run.rollouts[1:] == run.rollouts[:-1]]
    frames = np.flatnonzero(visible & same_rollout_as_next & same_rollout_as_previous)
    assert len(frames) >= 50, f"only {len(frames)} usable frames"

    error = np.linalg.norm(centroids[frames] - expected[frames], axis=1)
    error_next = np.linalg.norm(centroids[frames] - expected[frames + 1], axis=1)
    error_previous = np.linalg.norm(centroids[frames] - expected[frames - 1], axis=1)
    assert error.max() <= 1.0, f"frame {frames[error.argmax()]} is {error.max():.2f} px off its label"
    assert error.mean() <= 0.3
    assert error_next.mean() >= max(3 * error.mean(), 0.4), (error.mean(), error_next.mean())
    assert error_previous.mean() >= max(3 * error.mean(), 0.4), (error.mean(), error_previous.mean())


# --- the on-screen filter ---


def test_on_screen_boundaries_are_inclusive():
    eps = 1e-3
    inside = [[-1, 0], [1, 0], [0, -0.5], [0, 1.5], [-1, -0.5], [1, 1.5], [0, 0]]
    outside = [[-1 - eps, 0], [1 + eps, 0], [0, -0.5 - eps], [0, 1.5 + eps], [5, 5], [-2, -2]]
    mask = lunarlander.on_screen(np.array(inside + outside, np.float32))
    np.testing.assert_array_equal(mask, [True] * len(inside) + [False] * len(outside))


def test_filtered_keeps_exactly_the_on_screen_frames():
    positions = np.array([[0, 0], [1.2, 0], [0.5, 1.5], [0, -0.6], [-1, 1], [0, 2]], np.float32)
    n = len(positions)
    # Each frame's pixels hold its index so the kept frames can be identified.
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 2, 2, 3)).copy()
    data = lunarlander.LunarLanderRun(images, positions, np.array([0, 0, 0, 1, 1, 1], np.int32))
    np.testing.assert_array_equal(data.on_screen, [True, False, True, False, True, False])
    kept = data.filtered()
    assert len(kept) == 3
    np.testing.assert_array_equal(kept.images[:, 0, 0, 0], [0, 2, 4])
    np.testing.assert_array_equal(kept.positions, positions[[0, 2, 4]])
    np.testing.assert_array_equal(kept.rollouts, [0, 0, 1])
    assert kept.on_screen.all()
    first = data.take(4)
    assert len(first) == 4 and first.images[-1, 0, 0, 0] == 3
    assert len(data.take(100)) == n


def test_real_run_has_off_screen_frames_that_filter_removes():
    # Seed 0's "predictor" run: the lander leaves the screen in rollout 2 from step 11.
    data = _small("predictor", rollouts=3, steps=40)
    mask = data.on_screen
    assert 0 < mask.sum() < len(data)
    kept = data.filtered()
    np.testing.assert_array_equal(kept.positions, data.positions[mask])
    assert lunarlander.on_screen(kept.positions).all()


# --- reproducibility ---


def test_same_seed_same_frames_other_run_or_seed_differs():
    a = _small("predictor")
    _assert_runs_equal(a, _small("predictor"))
    for other in (_small("test"), _small("predictor", seed=1)):
        assert not np.array_equal(a.positions, other.positions)
        assert not np.array_equal(np.asarray(a.images), np.asarray(other.images))


def test_fewer_rollouts_are_a_prefix():
    two = _small("test", rollouts=2)
    three = _small("test", rollouts=3)
    _assert_runs_equal(two, three.take(len(two)))


def test_two_workers_give_the_same_frames_as_one():
    _assert_runs_equal(_small("test", rollouts=3, workers=1), _small("test", rollouts=3, workers=2))


def test_reset_on_termination_starts_a_new_episode_where_the_old_one_ended():
    # Seed 0's "predictor" rollout 0 ends (the lander comes to rest) near step 107.
    kept_stepping = _small("predictor", rollouts=1, steps=150)
    reset = _small("predictor", rollouts=1, steps=150, reset_on_termination=True)
    differs = np.flatnonzero(np.any(kept_stepping.positions != reset.positions, axis=1))
    assert len(differs), "the episode never ended, so the option changed nothing"
    first = differs[0]
    assert 20 < first < 150
    # Identical until the episode ended, then a fresh lander at the spawn point, top centre.
    np.testing.assert_array_equal(np.asarray(kept_stepping.images[:first]), np.asarray(reset.images[:first]))
    spawn = reset.positions[0]
    assert abs(spawn[0]) < 0.05 and spawn[1] > 1.3
    np.testing.assert_allclose(reset.positions[first], spawn, atol=0.05)
    assert np.abs(kept_stepping.positions[first] - spawn).max() > 0.5
    np.testing.assert_array_equal(reset.rollouts, kept_stepping.rollouts)


# --- the cache ---


def test_cache_serves_repeats_and_prefixes_without_rendering(tmp_path, monkeypatch):
    first = _small("test", rollouts=3, cache_dir=tmp_path)

    def no_rendering(task):
        raise AssertionError("rendered although the cache should have served the request")

    monkeypatch.setattr(lunarlander, "_rollout", no_rendering)
    _assert_runs_equal(first, _small("test", rollouts=3, cache_dir=tmp_path))
    _assert_runs_equal(first.take(2 * 20), _small("test", rollouts=2, cache_dir=tmp_path))
    assert lunarlander.cached_path("test", 2, 20, SIZE, 0, cache_dir=tmp_path) is not None
    # A longer run, another run or another size is not in the cache: it must render.
    for kwargs in ({"rollouts": 4}, {"run_name": "predictor"}, {"steps": 21}, {"seed": 1}, {"reset_on_termination": True}):
        with pytest.raises(AssertionError, match="rendered although"):
            _small(**{"run_name": "test", "rollouts": 3, **kwargs, "cache_dir": tmp_path})
    # Nothing half-written is left behind by the failed renders.
    assert sorted(p.name for p in (tmp_path / "lunarlander").iterdir()) == [
        lunarlander.cached_path("test", 3, 20, SIZE, 0, cache_dir=tmp_path).name
    ]


def test_cache_dir_false_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_PAE_CACHE", str(tmp_path))
    assert lunarlander.default_cache_dir() == tmp_path
    _small("test", rollouts=1, steps=5, cache_dir=False)
    assert not any(tmp_path.iterdir())
    assert lunarlander.cached_path("test", 1, 5, SIZE, 0, cache_dir=False) is None


# --- argument checking ---


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"run": "train"}, "'autoencoder', 'predictor', 'test'"),
        ({"rollouts": 0}, "rollouts must be an integer >= 1, got 0"),
        ({"steps": 0}, "steps must be an integer >= 1, got 0"),
        ({"image_size": 0}, "image_size must be an integer >= 1, got 0"),
        ({"workers": 0}, "workers must be an integer >= 1"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bad_arguments_raise_one_line_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as info:
        lunarlander.generate_run(cache_dir=False, progress=False, **kwargs)
    assert "\n" not in str(info.value)


# --- the command line ---


def _cli(*args, cache_dir=None):
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    if cache_dir is not None:
        env["KERAS_PAE_CACHE"] = str(cache_dir)
    return subprocess.run(
        [sys.executable, "-m", "keras_pae.data", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_help_lists_flags_with_defaults():
    result = _cli("lunarlander", "--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--rollouts", "--steps", "--image-size", "--seed", "--workers", "--cache-dir", "--runs"):
        assert flag in result.stdout
    assert "(default: 700)" in result.stdout and "(default: 150)" in result.stdout


@pytest.mark.parametrize(
    "args",
    [("lunarlander", "--rollouts", "0"), ("lunarlander", "--runs", "train"), ("lunarlander", "--steps", "x"), ()],
)
def test_cli_bad_value_is_one_line_exit_2(args):
    result = _cli(*args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and "error:" in result.stderr


def test_cli_generates_then_reports_from_cache(tmp_path):
    args = ("lunarlander", "--rollouts", "2", "--steps", "10", "--runs", "test", "--workers", "1", "--no-progress")
    first = _cli(*args, cache_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    entry = lunarlander.cached_path("test", 2, 10, SIZE, 0, cache_dir=tmp_path)
    assert first.stdout.strip() == f"test: 20 frames, 20 on-screen, cache {entry}"
    second = _cli(*args, cache_dir=tmp_path)
    assert second.stdout == first.stdout


def test_a_script_without_a_main_guard_is_told_what_to_do(tmp_path):
    # Spawned workers import the main script again; without the guard each one starts generating too and dies.
    script = tmp_path / "no_guard.py"
    script.write_text(
        "from keras_pae.data import lunarlander\n"
        "lunarlander.generate_run(rollouts=2, steps=3, image_size=16, workers=2, cache_dir=False, progress=False)\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "SDL_VIDEODRIVER": "dummy"},
    )
    assert result.returncode != 0
    assert 'keep its top-level code under `if __name__ == "__main__":`' in result.stderr
