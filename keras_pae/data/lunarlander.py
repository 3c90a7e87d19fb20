"""The LunarLander collection: random-policy frames of LunarLander with the lander's (x, y).

Feature-prediction paper, Section III-A. Three runs of 700 rollouts x
150 steps: run 1 ("autoencoder") trains the autoencoders unfiltered, runs 2
("predictor") and 3 ("test") train and test the position predictors once the
frames with the lander off-screen are removed (`LunarLanderRun.filtered`).

Rollouts are rendered in spawned worker processes and cached on disk, so this
module must not import TensorFlow or Keras at import time.
"""

import os

# Must precede any pygame import (gymnasium imports it to render): headless machines have no display.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import concurrent.futures
import dataclasses
import json
import multiprocessing
import pathlib
import secrets
import shutil
import warnings

import numpy as np

RUNS = ("autoencoder", "predictor", "test")
STEPS = 150
ROLLOUTS = 700
# 1 observation unit = 300 px of the 600-px-wide render and 200 px of the 400-px-high
# one; both are 32 px of the 64x64 image, so errors in units x 32 are errors in pixels.
PIXELS_PER_UNIT = 32.0

ENV_ID = "LunarLander-v3"  # gym's LunarLander-v2, which the paper used
_CACHE_VERSION = 1  # bump when a change to the generator would change the frames


@dataclasses.dataclass(frozen=True, eq=False)
class LunarLanderRun:
    """Frames of one run with the lander position of the state each frame shows.

    Feature-prediction paper, Section III-A. Frames are ordered by rollout, then
    by step, so `take(n * steps)` is the first n rollouts.

    Args:
        images: uint8 array (N, S, S, 3), the frames resized to S x S.
        positions: float32 array (N, 2), observation[0:2] (x, y) of the rendered state.
        rollouts: int32 array (N,), the index of each frame's rollout inside the run.
    """

    images: np.ndarray
    positions: np.ndarray
    rollouts: np.ndarray

    def __post_init__(self):
        n = len(self.images)
        if len(self.positions) != n or len(self.rollouts) != n:
            raise ValueError(
                f"images, positions and rollouts must have the same length, got "
                f"{n}, {len(self.positions)} and {len(self.rollouts)}"
            )

    def __len__(self):
        return len(self.images)

    @property
    def on_screen(self):
        """Boolean mask (N,) of the frames whose lander is on-screen (see `on_screen`)."""
        return on_screen(self.positions)

    def filtered(self):
        """The on-screen frames only, as the paper's runs 2 and 3 use them.

        Feature-prediction paper, Section III-A: "images where the lander is
        outside the screen were removed".
        """
        mask = self.on_screen
        return LunarLanderRun(self.images[mask], self.positions[mask], self.rollouts[mask])

    def take(self, n):
        """The first n frames (all of them when the run is shorter).

        Args:
            n: number of frames to keep, >= 0.
        """
        if n < 0:
            raise ValueError(f"take() needs n >= 0, got {n}")
        return LunarLanderRun(self.images[:n], self.positions[:n], self.rollouts[:n])


def on_screen(positions):
    """Boolean mask of the positions inside the paper's on-screen box, boundaries included.

    The feature-prediction paper, Sec. III-A: -1 <= x <= 1 and -0.5 <= y <= 1.5 (observation units).

    Args:
        positions: array-like (..., 2) of observation[0:2] values.
    """
    positions = np.asarray(positions)
    x, y = positions[..., 0], positions[..., 1]
    return (x >= -1.0) & (x <= 1.0) & (y >= -0.5) & (y <= 1.5)


def default_cache_dir():
    """The cache root: `$KERAS_PAE_CACHE` when set, else `~/.cache/keras_pae`."""
    root = os.environ.get("KERAS_PAE_CACHE")
    return pathlib.Path(root).expanduser() if root else pathlib.Path.home() / ".cache" / "keras_pae"


def generate_run(
    run="autoencoder",
    rollouts=ROLLOUTS,
    steps=STEPS,
    image_size=64,
    seed=0,
    workers=None,
    cache_dir=None,
    progress=True,
    reset_on_termination=False,
):
    """Renders (or loads from the cache) one unfiltered run of the LunarLander collection.

    Feature-prediction paper, Section III-A: a random policy, each rollout
    `steps` frames long, frames resized straight (aspect ratio not kept) to
    `image_size` square with bicubic interpolation. Every rollout is seeded from
    (seed, run, rollout index) alone, so a run of N rollouts is the prefix of
    any longer run and does not depend on `workers`.

    Args:
        run: one of `RUNS`; it selects the seeds (the paper's runs 1, 2, 3).
        rollouts: number of rollouts, >= 1.
        steps: frames per rollout, >= 1.
        image_size: side S of the square frames, >= 1.
        seed: base seed, an integer >= 0.
        workers: worker processes, >= 1; None uses `os.cpu_count()`. With more
            than one, workers are spawned, so a script calling this must keep
            its top-level code under `if __name__ == "__main__":`.
        cache_dir: cache root (the run goes under `<cache_dir>/lunarlander/`);
            None uses `default_cache_dir()`, False disables the cache.
        progress: show a `keras.utils.Progbar` over rollouts while rendering.
        reset_on_termination: start a new episode when one ends (the lander
            crashed, landed, or flew off-screen). False, the default, follows
            the authors' script: their gym kept stepping the ended episode,
            which is where most off-screen frames, and the frames of a lander
            lying still on the ground, come from. True gives more frames of a
            lander in flight (`make train` uses it; see docs/datasets.md).

    Returns:
        A `LunarLanderRun` of `rollouts * steps` frames; callers filter it.
    """
    _check_args(run, rollouts, steps, image_size, seed, workers)
    key = _Key(run, steps, image_size, seed, bool(reset_on_termination))
    root = _cache_root(cache_dir)
    if root is not None:
        entry = _find_entry(root, key, rollouts)
        if entry is not None:
            return _load(entry, rollouts * steps)

    workers = min(workers or os.cpu_count() or 1, rollouts)
    if root is None:
        images = np.empty((rollouts * steps, image_size, image_size, 3), np.uint8)
        positions, indices = _render(key, rollouts, workers, progress, images)
        return LunarLanderRun(images, positions, indices)

    root.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed when complete, so an interrupted
    # run never leaves an entry that a later call would mistake for a finished one.
    # Not tempfile.mkdtemp: its 0700 mode would make a shared cache unreadable to others.
    tmp = root / f".tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        images = np.lib.format.open_memmap(
            tmp / "images.npy",
            mode="w+",
            dtype=np.uint8,
            shape=(rollouts * steps, image_size, image_size, 3),
        )
        positions, indices = _render(key, rollouts, workers, progress, images)
        images.flush()
        del images
        np.save(tmp / "positions.npy", positions)
        np.save(tmp / "rollouts.npy", indices)
        (tmp / "meta.json").write_text(json.dumps(_meta(key, rollouts), indent=2) + "\n")
        entry = root / key.entry_name(rollouts)
        try:
            os.replace(tmp, entry)
        except OSError:
            # Another process finished the same entry first; its frames are identical.
            if not entry.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _load(entry, rollouts * steps)


def cached_path(
    run="autoencoder", rollouts=ROLLOUTS, steps=STEPS, image_size=64, seed=0, cache_dir=None, reset_on_termination=False
):
    """The cache folder that would serve this `generate_run` request, or None if none does.

    Args:
        run, rollouts, steps, image_size, seed, cache_dir, reset_on_termination:
            as for `generate_run`.
    """
    _check_args(run, rollouts, steps, image_size, seed, None)
    root = _cache_root(cache_dir)
    key = _Key(run, steps, image_size, seed, bool(reset_on_termination))
    return None if root is None else _find_entry(root, key, rollouts)


def _check_args(run, rollouts, steps, image_size, seed, workers):
    if run not in RUNS:
        raise ValueError(f"run={run!r} is not one of {', '.join(map(repr, RUNS))}")
    for name, value in (("rollouts", rollouts), ("steps", steps), ("image_size", image_size)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if workers is not None and (not _is_int(workers) or workers < 1):
        raise ValueError(f"workers must be an integer >= 1 or None (all CPUs), got {workers!r}")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class _Key:
    run: str
    steps: int
    image_size: int
    seed: int
    reset_on_termination: bool = False

    def prefix(self):
        # The "-reset" part only when set, so caches made before the option still serve.
        reset = "-reset" if self.reset_on_termination else ""
        return f"v{_CACHE_VERSION}-{self.run}-steps{self.steps}-size{self.image_size}-seed{self.seed}{reset}-rollouts"

    def entry_name(self, rollouts):
        return f"{self.prefix()}{rollouts}"


def _cache_root(cache_dir):
    if cache_dir is False:
        return None
    base = default_cache_dir() if cache_dir is None else pathlib.Path(cache_dir).expanduser()
    return base / "lunarlander"


def _find_entry(root, key, rollouts):
    """The smallest cached entry with at least `rollouts` rollouts: its prefix is the request."""
    best, best_n = None, None
    prefix = key.prefix()
    for path in root.glob(prefix + "*") if root.is_dir() else ():
        suffix = path.name[len(prefix):]
        if not suffix.isdigit() or not path.is_dir():
            continue
        n = int(suffix)
        if n >= rollouts and (best_n is None or n < best_n):
            best, best_n = path, n
    return best


def _load(entry, frames):
    # mmap keeps a second call instant and lets 1.3 GB runs be sliced without reading them.
    images = np.load(entry / "images.npy", mmap_mode="r")[:frames]
    positions = np.load(entry / "positions.npy")[:frames]
    indices = np.load(entry / "rollouts.npy")[:frames]
    return LunarLanderRun(images, positions, indices)


def _meta(key, rollouts):
    from importlib import metadata

    versions = {}
    for package in ("gymnasium", "box2d", "pygame-ce", "pillow", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {**dataclasses.asdict(key), "rollouts": rollouts, "env": ENV_ID, "versions": versions}


def _render(key, rollouts, workers, progress, images):
    """Fills `images` rollout by rollout and returns (positions, rollout indices)."""
    steps = key.steps
    positions = np.empty((rollouts * steps, 2), np.float32)
    indices = np.repeat(np.arange(rollouts, dtype=np.int32), steps)
    tasks = [
        (RUNS.index(key.run) + 1, i, steps, key.image_size, key.seed, key.reset_on_termination)
        for i in range(rollouts)
    ]
    bar = None
    if progress:
        import keras

        bar = keras.utils.Progbar(rollouts, unit_name="rollout")

    def collect(results):
        for done, (i, rollout_images, rollout_positions) in enumerate(results, start=1):
            images[i * steps : (i + 1) * steps] = rollout_images
            positions[i * steps : (i + 1) * steps] = rollout_positions
            if bar is not None:
                bar.update(done)

    if workers == 1:
        # Spawning a process costs about a second: not worth it for one worker.
        collect(map(_rollout, tasks))
    else:
        # "spawn", not fork: the parent may already hold TensorFlow's threads and state.
        # An executor, not multiprocessing.Pool: a worker that dies (e.g. a script without
        # a __main__ guard) raises BrokenProcessPool instead of being respawned forever.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            # map releases each result once consumed, so only a few rollouts sit in memory.
            results = pool.map(_rollout, tasks)
            try:
                collect(results)
            except concurrent.futures.BrokenExecutor as error:  # BrokenProcessPool
                raise RuntimeError(
                    "A worker process rendering LunarLander frames ended abruptly. The workers are spawned and "
                    "import your main script again: keep its top-level code under "
                    "`if __name__ == \"__main__\":` (or render with workers=1)."
                ) from error
            finally:
                results.close()  # on failure, cancel the rollouts not started yet
    return positions, indices


def _rollout(task):
    """Renders one rollout; runs in a worker process. Returns (index, images, positions)."""
    run_number, index, steps, image_size, seed, reset_on_termination = task
    import gymnasium as gym
    from PIL import Image

    reset_seed, action_seed = np.random.SeedSequence(seed, spawn_key=(run_number, index)).generate_state(2)
    images = np.empty((steps, image_size, image_size, 3), np.uint8)
    positions = np.empty((steps, 2), np.float32)
    with warnings.catch_warnings():
        # Box2D's SWIG bindings warn on import; stepping past termination is intended
        # (see below) and old gym warned about it, gymnasium 1.x does not.
        warnings.filterwarnings("ignore", message="builtin type Swig", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*already returned (done|terminated)")
        env = gym.make(ENV_ID, render_mode="rgb_array")
        try:
            observation, _ = env.reset(seed=int(reset_seed))
            env.action_space.seed(int(action_seed))
            for t in range(steps):
                # Frame and label come from the same state. The authors' code rendered
                # before env.step and stored the observation step returned, pairing each
                # frame with the next state's position (an off-by-one we do not copy).
                frame = env.render()
                images[t] = np.asarray(Image.fromarray(frame).resize((image_size, image_size), Image.BICUBIC))
                positions[t] = observation[:2]
                if t + 1 < steps:
                    # By default no reset on termination: the authors' gym kept stepping,
                    # which is where most off-screen frames the paper filters out come from.
                    observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
                    if reset_on_termination and (terminated or truncated):
                        # Unseeded: the env's generator, seeded by the first reset, goes on.
                        observation, _ = env.reset()
        finally:
            env.close()
    return index, images, positions
