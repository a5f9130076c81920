# make demo : builds a small true-tempo corpus, trains the three stages (the packaged models' recipes,
#             recipes/default/), scores them, stretches an example
# make test : the test suite (make test-fast: without the slow tests); make lint: ruff check + format check
# Both bootstrap what they need on a fresh machine: Debian packages and a pinned .venv.
# (chromium + chromium-driver: the listening page's browser test)

SHELL := /bin/bash
PY := .venv/bin/python
LAUNCH := .venv/bin/accelerate launch --config_file recipes/accelerate/cpu.yaml -m gan_stretch.train
DEMO := runs/demo
DATA := data/demo
APT_PACKAGES := fluidsynth timgm6mb-soundfont rubberband-cli chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-fast lint mutation-check system clean-demo

system:
	@missing=""; \
	command -v fluidsynth >/dev/null || missing="$$missing fluidsynth"; \
	[ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || missing="$$missing timgm6mb-soundfont"; \
	command -v rubberband >/dev/null || missing="$$missing rubberband-cli"; \
	if grep -qi ubuntu /etc/os-release 2>/dev/null; then browser="chromium-browser chromium-chromedriver"; \
	else browser="chromium chromium-driver"; fi; \
	{ command -v chromium || command -v chromium-browser; } >/dev/null && command -v chromedriver >/dev/null \
		|| missing="$$missing $$browser"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

.venv/.installed: requirements.lock pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -r requirements.lock
	.venv/bin/pip install -q --no-deps -e .
	touch $@

test: system .venv/.installed
	$(PY) -m pytest tests

# everything but the tests marked slow (training runs, subprocesses, the packaged model at every rate): under a minute
test-fast: system .venv/.installed
	$(PY) -m pytest tests -m "not slow"

# ruff (settings in pyproject.toml): the rules, then the formatting (ruff format . rewrites it)
lint: .venv/.installed
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

# deliberate bugs made in a copy of the project (tests/mutation_check.py): each must make a test fail
mutation-check: system .venv/.installed
	$(PY) tests/mutation_check.py

demo: system .venv/.installed
	@start=$$(date +%s); set -e; \
	echo "== 1/6 true-tempo corpus ($(DATA))"; \
	.venv/bin/gan-stretch data midi --out $(DATA) --pieces 40 --seconds 8; \
	echo "== 2/6 autoencoder"; \
	$(LAUNCH) recipes/default/autoencoder.yaml data=$(DATA) run_dir=$(DEMO)/autoencoder eval_every=1500; \
	echo "== 3/6 mapper baseline"; \
	$(LAUNCH) recipes/default/mapper.yaml data=$(DATA) run_dir=$(DEMO)/mapper autoencoder=$(DEMO)/autoencoder/model.safetensors eval_every=500; \
	echo "== 4/6 GAN"; \
	$(LAUNCH) recipes/default/gan.yaml data=$(DATA) run_dir=$(DEMO)/gan autoencoder=$(DEMO)/autoencoder/model.safetensors eval_every=600; \
	echo "== 5/6 benchmark on held-out renders"; \
	$(PY) eval/benchmark.py --data $(DATA) --out results/demo --pieces 4 \
		--model interpolation=$(DEMO)/autoencoder/model.safetensors --model mapper=$(DEMO)/mapper/model.safetensors \
		--model gan=$(DEMO)/gan/model.safetensors --model packaged-default=gan_stretch/checkpoints/default.safetensors \
		--methods pv wsola --listen; \
	echo "== 6/6 stretching an example"; \
	example=$$($(PY) -c "from gan_stretch.data import Corpus; c = Corpus('$(DATA)'); i = c.split('heldout')[0]; print(c.root / i.audio['1.000'])"); \
	for r in 0.5 2.0; do .venv/bin/gan-stretch stretch $$example $(DEMO)/example_rate$$r.wav --rate $$r --checkpoint $(DEMO)/gan/model.safetensors; done; \
	cp $$example $(DEMO)/example_input.wav; \
	echo; echo "demo finished in $$(( $$(date +%s) - start )) s"; \
	echo "  results : results/demo/table.md (results.csv, plots *.png)"; \
	echo "  models  : $(DEMO)/{autoencoder,mapper,gan}/model.safetensors"; \
	echo "  audio   : $(DEMO)/example_input.wav, $(DEMO)/example_rate0.5.wav, $(DEMO)/example_rate2.0.wav"; \
	echo "  watch   : .venv/bin/tensorboard --logdir $(DEMO)"; \
	echo "  listen  : results/demo/listen/index.html (open it in a browser; blind test: results/demo/listen/blind.html)"

clean-demo:
	rm -rf $(DEMO) $(DATA) results/demo
