# `make train` and `make test` work on a fresh clone: both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

export SDL_VIDEODRIVER ?= dummy
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: train test clean

$(STAMP): setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# The main job: I-F-FP (the feature-prediction paper's proposal) and the I-I-PW
# baseline on a small LunarLander collection generated offline, with the loss
# network pretrained on Fashion-MNIST (shipped), three training seeds each, then
# the pixel errors as mean ± std, the wall time and the CPU kind. 60/30/20 rollouts
# that start a new episode when one ends (more frames of a lander in flight than
# the authors' never-reset protocol), 2 epochs at batch 16: 900 Adam steps (the
# paper's batch 512 gives too few on so little data). See docs/results.md for what
# it measured and how long it takes. `make train DATA_SEED=1` uses another
# collection; a rerun reuses finished runs (delete saved_models/main_data0 to start over).
DEMO := --dataset lunarlander --loss-weights fashion_mnist --limit 9000 --batch-size 16 \
	--predictor-rollouts 30 --test-rollouts 20 --reset-on-termination --epochs 2 --predictor-epochs 50
DATA_SEED ?= 0

train: $(STAMP)
	$(PY) -m keras_pae experiment --procedures I-F-FP,I-I-PW --z-dims 64 --repetitions 3 $(DEMO) \
		--data-seed $(DATA_SEED) --out saved_models/main_data$(DATA_SEED)

# Two workers, a test file each at a time (module fixtures are built once per file).
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) saved_models/*/ .pytest_cache

# train.py's own epochs (I-I-PS, I-F-FP) against the authors' PyTorch models
# (bench/torch_models.py), under the CPU's own ISA and as an AVX2 CPU, with the CPU
# kind and a matmul peak; bench/throughput.py times single steps of all six.
.PHONY: bench
bench: $(STAMP)
	$(PY) bench/epochs.py
