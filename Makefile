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

# The main job: I-F-FP on a small LunarLander collection, generated offline.
train: $(STAMP)
	$(PY) train.py --dataset lunarlander --procedure I-F-FP --limit 6000 --epochs 10 \
		--loss-weights random --out saved_models/default --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) saved_models/*/ .pytest_cache
