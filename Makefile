# imprint: every entry point. `make help` lists them.
#
# Fixed outputs, for scripts and people:
#   build/init                 the stripped static PID 1 binary
#   build/initramfs.cpio.gz    /init and /dev/console (plus /bin/sh with SHELL_BINARY=path)
#   build/bzImage              the kernel (cached outside the checkout, see KERNEL_CACHE)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := all

TARGET        := x86_64-unknown-linux-musl
KERNEL_CACHE  ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/imprint/kernel
# Fragments of kernel-config/ merged over tinyconfig; add baremetal for real servers.
KERNEL_FRAGMENTS ?= base qemu
# An optional /bin/sh for the initramfs (e.g. /bin/busybox from busybox-static).
SHELL_BINARY  ?=
# Kernel command line for `make qemu`.
APPEND        ?=
QEMU_MEMORY   ?= 64M

CARGO_HOME_DIR := $(or $(CARGO_HOME),$(HOME)/.cargo)
# Link arguments of the tiny static binary live in linker/rustflags; the remaps keep the
# checkout's and cargo's paths out of the binary (panic locations), so any clone builds
# the same bytes.
INIT_RUSTFLAGS := $(shell cat linker/rustflags) \
	--remap-path-prefix=$(CURDIR)=imprint --remap-path-prefix=$(CARGO_HOME_DIR)=cargo
CARGO_INIT = RUSTFLAGS="$(INIT_RUSTFLAGS)" cargo build --release --locked --target $(TARGET)
SOURCES := $(shell find src -name '*.rs') Cargo.toml Cargo.lock linker/rustflags

.PHONY: all init initramfs kernel qemu size test test-unit test-e2e setup help clean bench setup-net

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

all: build/init ## build the init (build/init)
init: build/init

build/init: $(SOURCES) | setup-rust
	$(CARGO_INIT)
	@mkdir -p build
	cp target/$(TARGET)/release/imprint $@

initramfs: build/initramfs.cpio.gz ## build the initramfs (SHELL_BINARY=path adds /bin/sh)

# The archive: /init, /dev/console (so the kernel can open fds 0-2 for us), the mount
# points, and an optional shell. mkcpio.py writes fixed owners, times and order.
initramfs_spec = printf '%s\n' 'dir /dev 0755' 'nod /dev/console 0600 c 5 1' 'dir /proc 0755' \
	'dir /sys 0755' 'dir /run 0755' 'dir /tmp 1777' 'file /init $(1) 0755' \
	$(if $(2),'dir /bin 0755' 'file /bin/sh $(2) 0755')

build/initramfs.cpio.gz: build/init linker/mkcpio.py $(if $(SHELL_BINARY),$(SHELL_BINARY)) FORCE
	$(call initramfs_spec,build/init,$(SHELL_BINARY)) | linker/mkcpio.py | gzip -9 -n > $@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

kernel: build/bzImage ## build the kernel (cached in KERNEL_CACHE, keyed by its config's hash)

build/bzImage: kernel-config/build.sh $(wildcard kernel-config/*.config) | setup-kernel
	kernel-config/build.sh $@ $(KERNEL_FRAGMENTS)

qemu: build/bzImage build/initramfs.cpio.gz | setup-qemu ## boot kernel + initramfs in QEMU (APPEND="...")
	qemu-system-x86_64 -accel tcg -m $(QEMU_MEMORY) -no-reboot -display none -vga none \
		-serial stdio -monitor none -no-user-config -nic none \
		-kernel build/bzImage -initrd build/initramfs.cpio.gz \
		-append "console=ttyS0 panic=1 $(APPEND)"

size: build/init build/initramfs.cpio.gz ## print sizes; fail over budget (init 128 KiB, initramfs 64 KiB)
	@tests/size.sh build/init build/initramfs.cpio.gz

# Test artifacts: a shell initramfs and a fault-injection build (never the release one).
TEST_DIR := build/test
BUSYBOX  := /bin/busybox

$(TEST_DIR)/initramfs-shell.cpio.gz: build/init linker/mkcpio.py | setup-test
	@mkdir -p $(TEST_DIR)
	$(call initramfs_spec,build/init,$(BUSYBOX)) | linker/mkcpio.py | gzip -n > $@

$(TEST_DIR)/init-faults: $(SOURCES) | setup-rust
	@mkdir -p $(TEST_DIR)
	CARGO_TARGET_DIR=target/faults $(CARGO_INIT) --features fault-injection
	cp target/faults/$(TARGET)/release/imprint $@

$(TEST_DIR)/initramfs-faults.cpio.gz: $(TEST_DIR)/init-faults linker/mkcpio.py
	$(call initramfs_spec,$<,) | linker/mkcpio.py | gzip -n > $@

TEST_ARTIFACTS := build/bzImage build/initramfs.cpio.gz $(TEST_DIR)/initramfs-shell.cpio.gz \
	$(TEST_DIR)/initramfs-faults.cpio.gz

test: setup ## run every test: unit, size budget, tool mode and QEMU end-to-end
	$(MAKE) test-unit
	$(MAKE) size
	$(MAKE) test-e2e

E2E := CARGO_TARGET_DIR=target/e2e cargo test --locked --manifest-path tests/e2e/Cargo.toml

test-unit: | setup-rust ## host unit tests of the library (cargo test)
	cargo test --locked

test-e2e: $(TEST_ARTIFACTS) | setup-qemu setup-net ## tool-mode, network and QEMU end-to-end tests (real artifacts)
	$(E2E) -- --include-ignored --test-threads=2

# Benchmarks: numbers against budgets, never part of `make test`.
bench: build/init | setup-net ## benchmarks: DHCP link-up -> bound time, init size
	tests/bench-dhcp.sh build/init
	@echo "init: $$(stat -c %s build/init) bytes"

# Setup on a fresh machine: Debian packages and the musl target, each only if missing.
setup: setup-rust setup-kernel setup-qemu setup-test setup-net ## install what builds and tests need

setup-rust:
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)

APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends
define need_packages
	missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [[ -n "$$missing" ]]; then echo "setup: installing $$missing"; \
		apt-get update -qq && $(APT_INSTALL) $$missing; fi
endef

setup-kernel:
	@$(call need_packages,linux-source bc flex bison libelf-dev libssl-dev make gcc xz-utils cpio python3)

setup-qemu:
	@$(call need_packages,qemu-system-x86)

setup-test:
	@$(call need_packages,busybox-static)

# Real DHCP servers and tools for the network tests (run only inside test namespaces).
setup-net:
	@$(call need_packages,dnsmasq-base kea-dhcp4-server tcpdump iproute2)

clean: ## remove build outputs (the kernel cache stays)
	rm -rf build target

FORCE:
