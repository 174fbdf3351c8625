# kfp-mlops: `make run` runs the text-classification pipeline locally end to end; `make test` runs every test.
PYTHON     ?= python3
UV_VERSION := 0.13.9
UV         := $(shell command -v uv 2>/dev/null || echo .envs/.tools/bin/uv)
CLI        := .envs/authoring/bin/kfp-mlops
DEMO_DATA  := $(CURDIR)/.local/demo/tickets.csv
IMAGES     := data validate train tune serve monitor
REGISTRY   ?= ghcr.io/kfp-mlops
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: envs run test compile images clean

.envs/.tools/bin/uv:
	$(PYTHON) -m venv .envs/.tools
	.envs/.tools/bin/pip install --quiet uv==$(UV_VERSION)

## envs: one venv per runtime image from uv.lock, in .envs/ (idempotent; seconds when up to date)
envs: $(UV)
	UV_PROJECT_ENVIRONMENT=.envs/authoring $(UV) sync --frozen --quiet --extra authoring
	$(CLI) envs

## run: demo tickets -> ingest -> validate -> train (MiniLM-L6) -> evaluate -> serve + one prediction
run: envs
	$(CLI) demo-data tickets --out $(DEMO_DATA) --rows 3000 --seed 0
	$(CLI) run text_classification --local --param source=$(DEMO_DATA) \
	  --param schema_file=components/validate/schemas/text_classification.pbtxt

## test: the lock is current, then every test folder in the venv of its image
test: envs
	$(UV) lock --check
	.envs/authoring/bin/python -m kfp_mlops.test_plan

## compile: rewrite the golden pipeline YAML in pipelines/compiled/
compile: envs
	$(CLI) compile --all

## images: build every runtime image with Docker (needs a Docker engine)
images:
	for image in $(IMAGES); do \
	  docker build -f Dockerfile --build-arg EXTRA=$$image --build-arg GIT_COMMIT=$$(git rev-parse HEAD) -t $(REGISTRY)/kfp-mlops-$$image:$(VERSION) . || exit 1; \
	done

clean:
	rm -rf .envs .local
