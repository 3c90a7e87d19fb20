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
# Batch 64 rather than the paper's 512: on 40 rollouts, 512 gives only ~80
# Adam steps in 8 epochs, too few for any procedure to learn the small lander.
DEMO := --dataset lunarlander --loss-weights fashion_mnist --limit 6000 --batch-size 64 \
	--predictor-rollouts 30 --test-rollouts 20 --epochs 8 --predictor-epochs 200 --overwrite

train: $(STAMP)
	$(PY) train.py --procedure I-F-FP $(DEMO) --out saved_models/main_I-F-FP
	$(PY) train.py --procedure I-I-PW $(DEMO) --out saved_models/main_I-I-PW
	$(PY) -m keras_pae.report saved_models/main_I-I-PW saved_models/main_I-F-FP

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) saved_models/*/ .pytest_cache
