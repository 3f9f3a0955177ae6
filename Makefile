# One entry point for people and CI. Each target creates .venv when it is missing.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed

.PHONY: demo test data models bench firmware clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0          # the CPU build first, so nothing pulls CUDA wheels
	$(PIP) install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	.venv/bin/harduino live "sim://?script=still:6,walking:8,running:8,jumping:6,waving:8&subject=2&seed=7" --model models/default

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

data: $(STAMP)
	$(PY) -m harduino.sampledata data/sim

models: $(STAMP)
	.venv/bin/harduino train data/sim --arch cnn-lstm --channels all -o models/default

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

firmware:
	$(MAKE) -C firmware

clean:
	rm -rf .venv build *.egg-info host/*.egg-info
	$(MAKE) -C firmware clean
