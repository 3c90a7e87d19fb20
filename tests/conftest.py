import os

# Before TensorFlow or pygame is imported by any test module.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
# Small numpy products (the bottleneck probes) crawl when OpenBLAS threads spin.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory):
    """One LunarLander cache for the session, shared with subprocesses."""
    path = tmp_path_factory.mktemp("keras_pae_cache")
    os.environ["KERAS_PAE_CACHE"] = str(path)
    return path
