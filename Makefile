# otelcol-vsr. `make run` builds and starts the collector on the embedded default config;
# `make test` runs every test the CI runs. Tools install themselves into .tools/.
SHELL := /bin/bash
GO ?= go
OCB_VERSION := v0.158.0
TOOLS := $(CURDIR)/.tools
OCB := $(TOOLS)/builder-$(OCB_VERSION)
BUILD_DIR := _build
OTELCOL := $(BUILD_DIR)/otelcol-vsr
# The image: every manifest and values file runs $(IMAGE_REPOSITORY):<dist.version in
# builder-config.yaml>; push it under your registry's name and override the repository there.
IMAGE_REPOSITORY ?= ghcr.io/otelcol-vsr/otelcol-vsr
IMAGE_TAG ?= $(shell awk '$$1 == "version:" {print $$2; exit}' builder-config.yaml)
IMAGE_LAYOUT := _image/otelcol-vsr
# What the distribution is built from: a change to any of it rebuilds the binary.
DISTRO_SOURCES := builder-config.yaml go.mod go.sum $(shell find processor receiver internal -name '*.go' ! -name '*_test.go')
# Fuzzing is bounded by inputs, not seconds: Go 1.26's coordinator can fail a -fuzztime 10s run
# at its own deadline on a busy machine (golang/go#75804). Each count is a few seconds here.
FUZZ_TRACES ?= 40000x
FUZZ_ATTRIBUTE ?= 30000x
FUZZ_STREAM ?= 5000x
FUZZ_REPLAY ?= 20000x
FUZZ_MODEL_SERVER ?= 20000x
FUZZ_LEAKS ?= 10000x
FUZZ_SCAN ?= 100000x

.DEFAULT_GOAL := build
.PHONY: build image run test unit-test fuzz-smoke lint generate bench bench-smoke e2e clean

$(OCB):
	mkdir -p $(TOOLS)/tmp
	GOBIN=$(TOOLS)/tmp $(GO) install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)
	mv $(TOOLS)/tmp/builder $@

$(OTELCOL): $(OCB) $(DISTRO_SOURCES)
	$(OCB) --config builder-config.yaml

## build: install the pinned OCB and build _build/otelcol-vsr
build: $(OTELCOL)

## image: the container image, built without a container engine (distro/image): the binary,
## the default config, passwd for uid 10001, CA certificates, from scratch, as an OCI layout in
## _image/otelcol-vsr. Push it with `crane push _image/otelcol-vsr <registry>/otelcol-vsr:<tag>`
## (or skopeo copy oci:_image/otelcol-vsr:<tag> docker://…).
image: $(IMAGE_LAYOUT)/index.json

$(IMAGE_LAYOUT)/index.json: $(OTELCOL) collector-config.yaml builder-config.yaml $(wildcard distro/image/*.go distro/image/go.*)
	cd distro/image && $(GO) run . -binary $(CURDIR)/$(OTELCOL) -config $(CURDIR)/collector-config.yaml \
		-ref $(IMAGE_REPOSITORY):$(IMAGE_TAG) -out $(CURDIR)/$(IMAGE_LAYOUT)

## run: build if needed and start the collector on collector-config.yaml (debug output; set
## VSR_TRACES_ENDPOINT=host:4317 to also export to Tempo or Jaeger, VSR_METRICS_ENDPOINT for
## request metrics over OTLP besides Prometheus on 127.0.0.1:8889)
run: $(OTELCOL)
	@if [ -n "$$VSR_TRACES_ENDPOINT" ] && [ -z "$$VSR_EXPORTERS" ]; then export VSR_EXPORTERS='[debug, otlp_grpc/backend]'; fi; \
		if [ -n "$$VSR_METRICS_ENDPOINT" ] && [ -z "$$VSR_METRICS_EXPORTERS" ]; then export VSR_METRICS_EXPORTERS='[prometheus/requests, otlp_grpc/metrics]'; fi; \
		exec $(OTELCOL) --config collector-config.yaml

## test: unit, golden, property and distribution tests, then a short fuzz of each pure core
test: unit-test fuzz-smoke

# The distribution tests render distro/helm/ with the official chart, using a Helm built into
# .tools/, and open the image.
unit-test: $(OTELCOL) image
	HELM_BIN=$$(distro/helm/install.sh) OTELCOL_VSR_BIN=$(CURDIR)/$(OTELCOL) OTELCOL_VSR_IMAGE=$(CURDIR)/$(IMAGE_LAYOUT) \
		$(GO) test -race -count=1 ./...

# Minimizing each new input for the default 60 s would leave the short run nothing to fuzz with.
FUZZ := $(GO) test -run '^$$' -fuzzminimizetime 200x
fuzz-smoke:
	$(FUZZ) -fuzztime $(FUZZ_TRACES) -fuzz '^FuzzTraces$$' ./processor/vsrattrs/internal/normalize
	$(FUZZ) -fuzztime $(FUZZ_ATTRIBUTE) -fuzz '^FuzzAttribute$$' ./processor/vsrattrs/internal/normalize
	$(FUZZ) -fuzztime $(FUZZ_MODEL_SERVER) -fuzz '^FuzzModelServerSpan$$' ./processor/vsrattrs/internal/normalize
	$(FUZZ) -fuzztime $(FUZZ_LEAKS) -fuzz '^FuzzNoSecretSurvives$$' ./processor/vsrattrs/internal/normalize
	$(FUZZ) -fuzztime $(FUZZ_SCAN) -fuzz '^FuzzScan$$' ./processor/vsrattrs/internal/scan
	$(FUZZ) -fuzztime $(FUZZ_STREAM) -fuzz '^FuzzStream$$' ./processor/vsrsampler/internal/sampler
	$(FUZZ) -fuzztime $(FUZZ_REPLAY) -fuzz '^FuzzReplay$$' ./processor/vsrsampler/internal/journal

## e2e: the built distribution, running collector-config.yaml and the configs distro/ ships,
## against a real Jaeger v2 and a real Prometheus on loopback (builds them once into .tools/),
## printing a summary table
e2e: $(OTELCOL)
	JAEGER_BIN=$$(e2e/jaeger/install.sh) PROMETHEUS_BIN=$$(e2e/prometheus/install.sh) HELM_BIN=$$(distro/helm/install.sh) \
		OTELCOL_VSR_BIN=$(CURDIR)/$(OTELCOL) \
		$(GO) test -tags e2e -count=1 -timeout 45m -v ./e2e/

## bench: the side-by-side benchmark, the throughput curve and dynamic sampling's windows;
## rewrites BENCHMARKS.md and BENCHMARKS-curve.svg (about 45 minutes, not part of CI)
bench: $(OTELCOL)
	$(GO) run ./bench -otelcol $(OTELCOL) -rate 2000 -duration 40s -rounds 2 -out BENCHMARKS.md

## bench-smoke: the benchmark's plumbing in a few seconds per run; no numbers kept
bench-smoke: $(OTELCOL)
	$(GO) run ./bench -otelcol $(OTELCOL) -rate 200 -duration 3s -rounds 1 -curve-steps 200,400 -curve-duration 3s -dynamic-duration 10s

## lint: formatting, vet, and generated code up to date
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/
	$(GO) mod tidy -diff
	cd distro/image && $(GO) vet ./... && $(GO) mod tidy -diff

## generate: mdatagen code, the Grafana dashboards and the README's schema table
generate:
	$(GO) generate ./...
	$(GO) run ./distro/grafana/gen distro/grafana
	$(GO) test ./processor/vsrattrs/internal/normalize -run '^TestREADMESchemaTable$$' -update-readme

clean:
	rm -rf $(BUILD_DIR) _image _data
