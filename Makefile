# ociman — build, run, test and benchmark ocimand.
# Machine set-up (Debian packages, dockerd, Podman API service, localhost/busybox:test) lives in
# scripts/setup-engines.sh; every target that needs engines calls it (it is idempotent and fast).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

SWIFT   ?= swift
SETUP   := scripts/setup-engines.sh
# CI adds --fresh-docker-root (.ci/run).
SETUP_ARGS ?=
PYTHON  ?= python3
ARGS    ?=
BENCH_ARGS ?=
# swift test; a failure is repeated at the end of the output, and the failed tests run once more
# (reported FLAKY when they then pass): scripts/swift-test.sh.
SWIFT_TEST := SWIFT=$(SWIFT) scripts/swift-test.sh
# The binary the container image ships (Dockerfile): Swift's runtime linked in, 2.5 MB less idle RSS.
RELEASE := $(SWIFT) build -c release --product ocimand --static-swift-stdlib

# Swift lives in /opt/swift on these machines; make sure it is found from a bare environment.
export PATH := $(PATH):/opt/swift/usr/bin

.PHONY: deps engines build run test readme-check bench fuzz clean help image-test deploy-check

help:
	@echo "targets: deps build run test readme-check bench fuzz clean image-test deploy-check"
	@echo "  make run ARGS='--listen 127.0.0.1:8420'   build (release) and exec ocimand"
	@echo "  make bench BENCH_ARGS='--only health'      run part of the benchmark"

## deps: Debian packages needed to build ocimand (libmicrohttpd, OpenSSL, pkg-config)
deps:
	$(SETUP) --build-deps-only

## engines: full machine set-up (packages, dockerd, Podman service, base image)
engines:
	$(SETUP)

build:
	$(RELEASE)

## run: enough engine set-up to run (Podman + containers.conf on an engine-less machine;
## ocimand auto-detects and supervises its own Podman service), then exec the release binary.
run:
	$(SETUP) --run
	$(RELEASE)
	exec .build/release/ocimand $(ARGS)

## test: both engines up, then the whole test suite. Integration suites read OCIMAN_TEST_ENGINES.
test: export OCIMAN_TEST_ENGINES := docker,podman
test:
	$(SETUP) --build-deps-only
	# The machine set-up (mostly downloads: packages, the PostgreSQL root filesystem, the Python
	# tools) runs while the tests compile; its output follows the build's.
	setup_log=$$(mktemp); $(SETUP) $(SETUP_ARGS) >"$$setup_log" 2>&1 & setup=$$!; \
	built=0; $(SWIFT) build --build-tests || built=$$?; \
	set_up=0; wait $$setup || set_up=$$?; cat "$$setup_log"; rm -f "$$setup_log"; \
	[ $$built = 0 ] && [ $$set_up = 0 ]
	# Suites start ocimand processes and real containers with timing assertions (TTL reaping,
	# readiness waits); on 2 cores running them all at once starves the engines, so one at a time.
	$(SWIFT_TEST) --no-parallel
	# The same engines reached as users elsewhere reach theirs (scripts/setup/): Docker over TCP with
	# mutual TLS and over ssh (container, image and registry suites), and rootless Podman run by an
	# unprivileged user (container and registry suites, and what only rootless has).
	OCIMAN_TEST_ENGINES=docker-tls,docker-ssh $(SWIFT_TEST) --no-parallel --skip-build \
		--filter 'ContainerLifecycleTests|ImageTests|RegistryTests'
	OCIMAN_TEST_ENGINES=podman-rootless $(SWIFT_TEST) --no-parallel --skip-build \
		--filter 'ContainerLifecycleTests|RegistryTests|RootlessPodmanTests'
	# The contract fuzz (schemathesis) needs the engines to itself for the same reason.
	scripts/contract-test.sh
	# Python clients generated from openapi.yaml (two generators) run a lifecycle on both engines.
	scripts/generated-clients-test.sh
	$(MAKE) --no-print-directory readme-check

## readme-check: every README example, verbatim, against a debug ocimand on each engine in turn.
readme-check:
	scripts/readme-check.sh --engine docker
	scripts/readme-check.sh --engine podman

bench:
	$(SETUP)
	$(RELEASE)
	$(PYTHON) bench/run.py $(BENCH_ARGS)

fuzz:
	@if [ -x scripts/fuzz.sh ]; then scripts/fuzz.sh; \
	elif [ -f scripts/fuzz.sh ]; then bash scripts/fuzz.sh; \
	else echo "fuzz: scripts/fuzz.sh is not there yet; nothing to run"; fi

## image-test: build the container image with Podman (local Debian base, host-built static binary),
## run it against the host engine socket and check /health, /backend, the token and the HEALTHCHECK.
image-test:
	$(SETUP)
	scripts/image-test.sh

## deploy-check: hadolint, systemd-analyze verify, kubernetes-validate (all offline).
deploy-check:
	PYTHON=$(PYTHON) scripts/deploy-check.sh

clean:
	rm -rf .build bench/out
