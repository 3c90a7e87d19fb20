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
# network pretrained on Fashion-MNIST (shipped), then their pixel errors side by side.
# 60/30/20 rollouts that start a new episode when one ends (more frames of a
# lander in flight than the authors' never-reset protocol), at batch 64 (not the
# paper's 512, which gives too few Adam steps on so little data). See
# docs/loss-network.md for what it measured. About 8 minutes on 2 cores.
DEMO := --dataset lunarlander --loss-weights fashion_mnist --limit 9000 --batch-size 64 \
	--predictor-rollouts 30 --test-rollouts 20 --reset-on-termination --epochs 8 --predictor-epochs 100 --overwrite

train: $(STAMP)
	$(PY) train.py --procedure I-F-FP $(DEMO) --out saved_models/main_I-F-FP
	$(PY) train.py --procedure I-I-PW $(DEMO) --out saved_models/main_I-I-PW
	$(PY) -m keras_pae.perceptual.report saved_models/main_I-I-PW saved_models/main_I-F-FP

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) saved_models/*/ .pytest_cache

# train.py's own epochs (I-I-PS, I-F-FP) against the authors' PyTorch models
# (bench/torch_models.py), under the CPU's own ISA and as an AVX2 CPU, with the CPU
# kind and a matmul peak; bench/throughput.py times single steps of all six.
.PHONY: bench
bench: $(STAMP)
	$(PY) bench/epochs.py
