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

# linker/cargo-build.sh builds the init with its link arguments (linker/rustflags) and the
# remaps that keep this machine's paths out of the binary, so any clone builds the same bytes.
CARGO_INIT = linker/cargo-build.sh --target $(TARGET)
SOURCES := $(shell find src -name '*.rs' -o -name '*.txt') Cargo.toml Cargo.lock linker/rustflags linker/discard-eh-frame.ld \
	linker/cargo-build.sh

.PHONY: all demo init initramfs kernel kernel-check qemu size audit test test-unit test-e2e test-fuzz fuzz bench bench-dhcp bench-http bench-write bench-capture setup setup-net help clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

all: build/init ## build the init (build/init)
init: build/init

# Without its section headers (linker/strip-sections.py): the kernel loads by program headers.
build/init: $(SOURCES) linker/strip-sections.py | setup-rust
	$(CARGO_INIT)
	@mkdir -p build
	cp target/$(TARGET)/release/imprint $@.tmp
	linker/strip-sections.py $@.tmp
	mv $@.tmp $@

initramfs: build/initramfs.cpio.gz ## build the initramfs (SHELL_BINARY=path adds /bin/sh)

# The archive: /init, /dev/console (so the kernel can open fds 0-2 for us), the mount
# points, and an optional shell. mkcpio.py writes fixed owners, times and order.
initramfs_spec = printf '%s\n' 'dir /dev 0755' 'nod /dev/console 0600 c 5 1' 'dir /proc 0755' \
	'dir /sys 0755' 'dir /run 0755' 'dir /tmp 1777' 'file /init $(1) 0755' \
	$(if $(2),'dir /bin 0755' 'file /bin/sh $(2) 0755')

# pigz -11 is gzip (zopfli's deflate, which the kernel inflates as any other): about 4%
# smaller than gzip -9, for a second of build time. -b 1024: one block up to 1 MiB (the
# default 128 KiB blocks start afresh: 66 bytes more). -n keeps names and times out.
GZIP_BEST := pigz -11 -b 1024 -n -c

build/initramfs.cpio.gz: build/init linker/mkcpio.py $(if $(SHELL_BINARY),$(SHELL_BINARY)) FORCE | setup-pack
	$(call initramfs_spec,build/init,$(SHELL_BINARY)) | linker/mkcpio.py | $(GZIP_BEST) > $@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

# The main job, on an embedded default: a local provisioning network in a namespace, a
# QEMU guest provisioning a blank disk, then booting from it.
demo: build/bzImage build/initramfs.cpio.gz build/demo/os.img | setup-qemu setup-http setup-net setup-demo ## provision a blank virtual disk from a local server in QEMU, then boot it
	CARGO_TARGET_DIR=target/e2e cargo run --quiet --locked --manifest-path tests/e2e/Cargo.toml --bin imprint-demo

kernel: build/bzImage ## build the kernel (cached in KERNEL_CACHE, keyed by its config's hash)

build/bzImage: kernel-config/build.sh $(wildcard kernel-config/*.config) | setup-kernel
	kernel-config/build.sh $@ $(KERNEL_FRAGMENTS)

kernel-check: | setup-kernel ## check every fragment (base qemu baremetal) merges over tinyconfig
	kernel-config/build.sh --check base qemu baremetal

qemu: build/bzImage build/initramfs.cpio.gz | setup-qemu ## boot kernel + initramfs in QEMU (APPEND="...")
	qemu-system-x86_64 -accel tcg -m $(QEMU_MEMORY) -no-reboot -display none -vga none \
		-serial stdio -monitor none -no-user-config -nic none \
		-kernel build/bzImage -initrd build/initramfs.cpio.gz \
		-append "console=ttyS0 panic=1 $(APPEND)"

size: build/init build/initramfs.cpio.gz ## print sizes against tests/budgets (init 128 KiB, initramfs 64 KiB); STRICT=1
	@STRICT=$(STRICT) tests/size.sh build/init build/initramfs.cpio.gz

audit: build/init build/initramfs.cpio.gz build/audit/init.unstripped ## what the boot path contains and does; fails over budget
	@python3 tests/audit.py $(AUDIT_FLAGS)

# The same code and flags as build/init, symbols kept: for the size of each module.
build/audit/init.unstripped: $(SOURCES) | setup-rust
	@mkdir -p build/audit
	CARGO_TARGET_DIR=target/audit CARGO_PROFILE_RELEASE_STRIP=false $(CARGO_INIT)
	cp target/audit/$(TARGET)/release/imprint $@

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

# A small real bootable OS image (GPT, ext2 /boot + extlinux, ext4 root, busybox) for the
# demo and the provisioning tests; gzip for serving.
build/demo/os.img: tests/demo/mkimage.sh build/bzImage | setup-demo
	tests/demo/mkimage.sh build/bzImage $@ 64

build/demo/os.img.gz: build/demo/os.img
	gzip -n -c $< > $@

TEST_ARTIFACTS := build/bzImage build/initramfs.cpio.gz $(TEST_DIR)/initramfs-shell.cpio.gz \
	$(TEST_DIR)/initramfs-faults.cpio.gz build/demo/os.img

test: setup ## run every test: unit, audit, reproducibility, tool mode, HTTP and QEMU end-to-end, brief fuzzing
	$(MAKE) test-unit
	$(MAKE) kernel-check
	$(MAKE) audit
	tests/audit-selftest.sh
	tests/repro.sh
	$(MAKE) test-fuzz
	$(MAKE) test-e2e

E2E := CARGO_TARGET_DIR=target/e2e cargo test --locked --manifest-path tests/e2e/Cargo.toml

test-unit: | setup-rust ## host unit tests of the library (cargo test)
	cargo test --locked

test-e2e: $(TEST_ARTIFACTS) | setup-qemu setup-http setup-net ## tool-mode, HTTP, network and QEMU end-to-end tests (real artifacts)
	$(E2E) -- --include-ignored --test-threads=2

# Fuzzing the parsers with cargo-fuzz (libFuzzer). Only a stable toolchain is installed:
# RUSTC_BOOTSTRAP=1 lets it accept the -Z flags cargo-fuzz passes (sanitizer, coverage).
FUZZ := RUSTC_BOOTSTRAP=1 cargo fuzz
FUZZ_TARGETS := response_head chunked_body dhcp_reply dns_answer plan
FUZZ_SECONDS ?= 600

test-fuzz: | setup-fuzz ## fuzz each parser briefly (10 s each)
	for t in $(FUZZ_TARGETS); do $(FUZZ) run --fuzz-dir tests/fuzz $$t -- -max_total_time=10; done

fuzz: | setup-fuzz ## fuzz each parser for FUZZ_SECONDS (600)
	for t in $(FUZZ_TARGETS); do $(FUZZ) run --fuzz-dir tests/fuzz $$t -- -max_total_time=$(FUZZ_SECONDS); done

# Benchmarks: not in `make test`; each prints rates and ratios against reference pipelines
# measured in the same run.
bench: bench-dhcp bench-http bench-write bench-capture ## every benchmark (needs root; ~3 GiB in build/bench)

bench-dhcp: build/init | setup-net ## DHCP: link-up -> bound time against a local dnsmasq
	tests/bench-dhcp.sh build/init

bench-http: build/init | setup-http ## GET 1 GiB from nginx on loopback, imprint vs curl
	tests/bench-http.sh build/init

# Not in `make test`: a ~1 GiB image (generated once into build/bench) through imprint, the
# gzip|dd pipeline and miniz_oxide's in-memory inflate; prints rates, ratios, peak RSS.
bench-write: build/init | setup-rust setup-test ## image write: imprint vs gzip|dd vs in-memory inflate
	CARGO_TARGET_DIR=target/e2e cargo run --release --locked --manifest-path tests/e2e/Cargo.toml --bin imi-bench

# Not in `make test`: the same ~1 GiB raw image on a read-only loop device, captured to
# nginx on loopback by imprint and by dd|gzip -1|curl; rates, ratio, sizes, peak RSS.
bench-capture: build/init | setup-rust setup-test setup-http ## capture: imprint vs dd|gzip -1|curl -T -
	CARGO_TARGET_DIR=target/e2e cargo run --release --locked --manifest-path tests/e2e/Cargo.toml --bin imi-bench -- capture

# Setup on a fresh machine: Debian packages and the musl target, each only if missing.
setup: setup-rust setup-pack setup-kernel setup-qemu setup-test setup-demo setup-http setup-net setup-fuzz ## install what builds and tests need

setup-pack:
	@$(call need_packages,pigz python3)

setup-rust:
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

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
	@$(call need_packages,busybox-static util-linux fdisk gzip diffutils coreutils time e2fsprogs)

setup-demo:
	@$(call need_packages,busybox-static extlinux syslinux-common fdisk e2fsprogs util-linux)

# nginx: the HTTP tests' real server (static files, Range, WebDAV PUT); curl: the
# benchmark's reference; bc: the benchmark's arithmetic.
setup-http:
	@$(call need_packages,nginx-light curl bc python3)

# cargo-fuzz from the crate registry, by name; libFuzzer is C++ (g++ builds it).
setup-fuzz: setup-rust
	@$(call need_packages,g++)
	@command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

# Real DHCP servers and tools for the network tests (run only inside test namespaces).
setup-net:
	@$(call need_packages,dnsmasq-base kea-dhcp4-server tcpdump iproute2)

clean: ## remove build outputs (the kernel cache stays)
	rm -rf build target

FORCE:
