# liandan: `make demo` trains a generated project end to end; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := build/demo
DEMO_PROJECT := $(DEMO_DIR)/sentiment-classifier
EPOCHS ?= 6
FIT_ARGS ?=

.PHONY: install demo test clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: left to itself pip would resolve a multi-GB CUDA build
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cookiecutter . --no-input --overwrite-if-exists -o $(DEMO_DIR)
	$(BIN)/pip install -q -e $(DEMO_PROJECT)
	cd $(DEMO_PROJECT) && ../../../$(BIN)/python -m sentiment_classifier fit \
		--config configs/default.yaml --trainer.max_epochs $(EPOCHS) $(FIT_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build
