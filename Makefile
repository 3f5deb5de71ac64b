# shadowgw — run `make help` for the targets.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin

.PHONY: help build run test test-short test-arm test-deb test-image test-vm cross deb image clean

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

test-arm: ## store and edge tests on emulated Pi CPUs: ARMv6 (qemu-arm-static -cpu arm1176) and arm64
	CGO_ENABLED=0 GOARCH=arm GOARM=6 $(GO) test -count=1 -short -timeout 15m \
		-exec "qemu-arm-static -cpu arm1176" ./store/ ./edge/...
	CGO_ENABLED=0 GOARCH=arm64 $(GO) test -count=1 -short -timeout 15m \
		-exec qemu-aarch64-static ./store/ ./edge/...

test-deb: ## build, lintian and install/upgrade/remove the .debs in Debian roots (root; DEB_ARCHES="amd64 armhf arm64")
	scripts/test-deb.sh $(DEB_ARCHES)

test-vm: ## the .deb under systemd in an arm64 VM (qemu TCG): systemd checks and POWER_CUTS power cuts (root)
	POWER_CUTS=$(or $(POWER_CUTS),3) scripts/test-vm.sh

test-image: ## test scripts/pi-image.sh on synthetic Raspberry Pi OS images
	scripts/test-pi-image.sh

cross: ## cross-build for the Raspberry Pi: armhf (ARMv6, GOARM=6) and arm64
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/shadowgw-linux-armv6 ./cmd/shadowgw
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/shadowgw-linux-arm64 ./cmd/shadowgw

deb: ## build the .deb packages into bin/: armhf (ARMv6, all Pis), arm64, amd64
	for arch in armhf arm64 amd64; do VERSION=$(VERSION) packaging/build-deb.sh $$arch $(BIN) || exit 1; done

# make image PI_IMAGE=2025-05-13-raspios-bookworm-armhf-lite.img.xz [PI_ARCH=arm64]
#   [PI_CONF=my.conf] [PI_OUT=bin/shadowgw-pi.img] [PI_ARGS='--ssh --user pi']
PI_ARCH  ?= armhf
PI_CONF  ?= packaging/shadowgw.conf
PI_OUT   ?= $(BIN)/shadowgw-pi.img
image: ## Raspberry Pi OS image that installs shadowgw at first boot: make image PI_IMAGE=raspios.img.xz (see Makefile)
	@test -n "$(PI_IMAGE)" || { echo "make image: set PI_IMAGE to an official Raspberry Pi OS .img or .img.xz (PI_ARCH=arm64 for 64-bit)"; exit 2; }
	deb=$$(VERSION=$(VERSION) packaging/build-deb.sh $(PI_ARCH) $(BIN)) && \
		scripts/pi-image.sh $(PI_ARGS) "$(PI_IMAGE)" "$$deb" "$(PI_CONF)" "$(PI_OUT)"

clean: ## remove build output
	rm -rf $(BIN)
