# shadowgw — run `make help` for the targets.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin

.PHONY: help build run test test-short cross clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/shadowgw for this machine (static, CGO_ENABLED=0)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/shadowgw ./cmd/shadowgw

run: ## run the gateway on the embedded defaults (127.0.0.1:5672, ./shadowgw-data, no uplink)
	$(GO) run ./cmd/shadowgw run

test: ## install the test peers and run every test (what CI runs)
	scripts/test.sh

test-short: ## unit tests only, no peers needed
	$(GO) test -short ./...

cross: ## cross-build for the Raspberry Pi: armhf (ARMv6, GOARM=6) and arm64
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/shadowgw-linux-armv6 ./cmd/shadowgw
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/shadowgw-linux-arm64 ./cmd/shadowgw

clean: ## remove build output
	rm -rf $(BIN)
