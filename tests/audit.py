#!/usr/bin/env python3
"""`make audit`: everything the boot path contains and does, and its budgets.

Prints, and exits non-zero when a budget is broken:
  1. every C library function / system call the init can make, from which module and why
     (src/sys/README.md), checked against the code;
  2. the init's dependency tree with versions, features and lines of Rust per crate;
     budget: exactly libc, miniz_oxide, httparse, smoltcp and what they pull;
  3. our own lines of code per module (outside tests) and the `unsafe` blocks: all in
     src/sys, each with a `// SAFETY:` comment; budget: 6,000 lines in the boot path (all of
     src/ but src/tool/, tool mode, which never runs at boot and is counted apart); the boot
     path must not refer to the tool module (but for main.rs's dispatch and lib.rs's `mod`);
  4. build/init and build/initramfs.cpio.gz against 128 KiB / 64 KiB, and the bytes each
     module adds (symbol sizes of an unstripped build of the same code).

usage: audit.py [--no-build] [--strict]
  --no-build skips 4 and the cargo-based part of 2; --strict fails over a budget, not only
  over its ceiling (tests/budgets).
"""
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = "x86_64-unknown-linux-musl"
# The design card: the init depends on exactly these four (smoltcp for the DHCP frames' wire
# types), no more and no fewer.
DIRECT_DEPS = {"libc", "miniz_oxide", "httparse", "smoltcp"}
# What those four pull with default features off (smoltcp's own small helpers, adler2 for
# miniz_oxide). A new name here is a new crate in the boot path: review it, then add it.
ALLOWED_CRATES = DIRECT_DEPS | {"imprint", "adler2", "bitflags", "byteorder", "cfg-if", "heapless",
                                "hash32", "stable_deref_trait", "managed"}


def budgets():
    """tests/budgets: name -> (budget, ceiling)."""
    out = {}
    for line in (ROOT / "tests/budgets").read_text().splitlines():
        words = line.split()
        if len(words) == 3 and not words[0].startswith("#"):
            out[words[0]] = (int(words[1]), int(words[2]))
    return out


BUDGETS = budgets()
STRICT = "--strict" in sys.argv

failures = []
over_budget = []


def check_budget(name, measured, unit):
    """Fails over the ceiling (or over the budget with --strict); notes over the budget."""
    budget, ceiling = BUDGETS[name]
    if measured > ceiling:
        fail(f"{name}: {measured} {unit}, over the ceiling of {ceiling} (budget {budget})")
    elif measured > budget:
        over_budget.append(f"{name}: {measured} {unit}, {measured - budget} over the budget of {budget} (ceiling {ceiling})")
        if STRICT:
            fail(over_budget[-1])


def fail(msg):
    failures.append(msg)
    print(f"  FAIL: {msg}")


def heading(title):
    print(f"\n== {title}")


def rust_files(path):
    return sorted(p for p in path.rglob("*.rs"))


def without_tests(text):
    """The file without test-only imports, up to its `#[cfg(test)]` module (tests sit at the
    end of each file). A test-only `use` may stand earlier: it must not hide the code below."""
    text = re.sub(r"#\[cfg\(test\)\]\s*use [^;]*;", "", text)
    return text.split("#[cfg(test)]", 1)[0]


def code_lines(text):
    return [l for l in text.splitlines() if l.strip() and not l.strip().startswith("//")]


# 1. system calls ---------------------------------------------------------------------
def audit_syscalls():
    heading("C library calls and system calls (src/sys/README.md)")
    table = {}  # (function, module) -> (kind, why)
    for line in (ROOT / "src/sys/README.md").read_text().splitlines():
        m = re.match(r"\|\s*`([^`]+)`\s*\|\s*(\w+)\s*\|\s*(\w+)\s*\|\s*(.+?)\s*\|$", line)
        if m:
            table[(m.group(1), m.group(3))] = (m.group(2), m.group(4))
    used = set()
    for path in rust_files(ROOT / "src/sys"):
        for name in re.findall(r"\blibc::([A-Za-z_][A-Za-z0-9_]*)\s*\(", without_tests(path.read_text())):
            used.add((name, path.stem))
    for (name, module), (kind, why) in sorted(table.items()):
        print(f"  {name:<18} {kind:<8} sys::{module:<8} {why}")
    for name, module in sorted(used - set(table)):
        fail(f"libc::{name} is called in src/sys/{module}.rs but not listed for sys::{module} in src/sys/README.md")
    for name, module in sorted(set(table) - used):
        fail(f"src/sys/README.md lists {name} for sys::{module}, where no code calls it")
    functions = {name for name, _ in table}
    syscalls = {name for (name, _), (kind, _) in table.items() if kind == "syscall"}
    print(f"  {len(functions)} functions, {len(syscalls)} of them system calls")


# 2. dependencies ---------------------------------------------------------------------
def declared_dependencies():
    deps, section = [], None
    for line in (ROOT / "Cargo.toml").read_text().splitlines():
        s = line.strip()
        if s.startswith("["):
            section = s
        elif section == "[dependencies]" and re.match(r"^[A-Za-z0-9_-]+\s*=", s):
            deps.append(s.split("=")[0].strip())
        elif section and section.startswith("[dependencies.") and section.endswith("]"):
            pass
    deps += [s[len("[dependencies."):-1] for s in re.findall(r"^\[dependencies\.[^\]]+\]", (ROOT / "Cargo.toml").read_text(), re.M)]
    return set(deps)


def audit_dependencies(build):
    heading("dependencies of the init")
    declared = declared_dependencies()
    for extra in sorted(declared - DIRECT_DEPS):
        fail(f"Cargo.toml [dependencies] has '{extra}': the init may depend only on {', '.join(sorted(DIRECT_DEPS))}")
    for missing in sorted(DIRECT_DEPS - declared):
        fail(f"Cargo.toml [dependencies] lacks '{missing}': the design card names exactly {', '.join(sorted(DIRECT_DEPS))}")
    if not build:
        print("  (--no-build: dependency tree not resolved)")
        return
    tree = subprocess.run(["cargo", "tree", "--locked", "-e", "normal", "--target", TARGET, "-f", "{p} [{f}]"],
                          cwd=ROOT, capture_output=True, text=True)
    if tree.returncode != 0:
        fail(f"cargo tree failed: {tree.stderr.strip().splitlines()[-1] if tree.stderr.strip() else tree.returncode}")
        return
    meta = json.loads(subprocess.run(["cargo", "metadata", "--locked", "--format-version", "1", "--filter-platform", TARGET],
                                     cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    dirs = {p["name"]: Path(p["manifest_path"]).parent for p in meta["packages"]}
    seen = set()
    for line in tree.stdout.splitlines():
        m = re.search(r"([A-Za-z0-9_-]+) v(\S+)", line)
        if not m:
            continue
        name = m.group(1)
        lines = ""
        if name in dirs and name not in seen:
            src = dirs[name] / "src"
            n = sum(len(p.read_text(errors="replace").splitlines()) for p in rust_files(src)) if src.exists() else 0
            lines = f"   ({n} lines of Rust)"
        seen.add(name)
        print(f"  {line}{lines}")
        if name not in ALLOWED_CRATES:
            fail(f"crate '{name}' is in the init's dependency tree but not in the audited set")


# 3. our code and unsafe --------------------------------------------------------------
UNSAFE = re.compile(r"\bunsafe\s*(\{|impl\b|fn\b|extern\b)")


def test_only_files():
    """Files of modules declared `#[cfg(test)] mod name;` (test data, not the boot path)."""
    out = set()
    for path in rust_files(ROOT / "src"):
        for name in re.findall(r"#\[cfg\(test\)\]\s*(?:pub\s+)?mod\s+(\w+)\s*;", path.read_text()):
            base = path.parent if path.name in ("mod.rs", "lib.rs", "main.rs") else path.with_suffix("")
            out |= {base / f"{name}.rs", base / name / "mod.rs"}
    return out


def without_comments_and_strings(text):
    """The code with comments, string and char literals blanked out (newlines kept, so
    offsets still give line numbers): what is left are names and punctuation."""
    out, i, n = [], 0, len(text)
    blank = lambda s: re.sub(r"[^\n]", " ", s)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            j, depth = i + 2, 1  # Rust block comments nest
            while j < n and depth:
                depth += 1 if text.startswith("/*", j) else -1 if text.startswith("*/", j) else 0
                j += 2 if text.startswith(("/*", "*/"), j) else 1
        elif m := re.compile(r'b?r(#*)"').match(text, i):
            if i and (text[i - 1].isalnum() or text[i - 1] == "_"):
                out.append(c)
                i += 1
                continue
            end = text.find('"' + m.group(1), m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
        elif m := re.compile(r"'(\\.[^']*|[^'\\])'").match(text, i):
            j = m.end()  # a char literal ('a', '\n', '\u{..}'), not a lifetime
        else:
            out.append(c)
            i += 1
            continue
        out.append(blank(text[i:j]))
        i = j
    return "".join(out)


# How the boot path could name the tool module: a path through it, a path ending in it, a
# `mod` of it, or a name in a `use` list.
TOOL_REFERENCE = re.compile(r"\btool\s*::|::\s*tool\b|\bmod\s+tool\b|\buse\b[^;]*\btool\b")
# The only two the boot path may have: lib.rs declares the module, main.rs's `start`
# dispatches to it when not PID 1.
TOOL_ALLOWED = {"lib.rs": re.compile(r"pub\s+mod\s+tool\s*;"),
                "main.rs": re.compile(r"(?:\bimprint\s*::\s*)?\btool\s*::\s*main\s*\(\s*args\s*\)")}


def tool_references(rel, text):
    """Where a boot-path file (outside its tests) refers to tool mode: (line, what)."""
    code = without_comments_and_strings(without_tests(text))
    allowed = TOOL_ALLOWED.get(str(rel))
    if allowed:
        code = allowed.sub(lambda m: " " * len(m.group(0)), code, count=1)
    lines = code.splitlines()
    found = {}  # line -> that line of code, once however many references it has
    for m in TOOL_REFERENCE.finditer(code):
        line = code.count("\n", 0, m.start()) + 1
        found.setdefault(line, " ".join(lines[line - 1].split())[:80])
    return sorted(found.items())


def audit_code():
    heading("our code: lines per module (outside tests), unsafe blocks")
    per_module = defaultdict(int)
    unsafe_count = 0
    tests_only = test_only_files()
    for path in rust_files(ROOT / "src"):
        if path in tests_only:
            continue
        rel = path.relative_to(ROOT / "src")
        module = str(rel.parent) if rel.parent != Path(".") else rel.stem
        text = path.read_text()
        per_module[module] += len(code_lines(without_tests(text)))
        if rel.parts[0] != "tool":
            for line, what in tool_references(rel, text):
                fail(f"src/{rel}:{line}: the boot path refers to tool mode (`{what}`): code only tool mode "
                     "uses belongs in src/tool, code both use outside it")
        lines = text.splitlines()
        for i, line in enumerate(lines):
            code = line.split("//", 1)[0]
            m = UNSAFE.search(code)
            if not m:
                continue
            if rel.parts[0] != "sys":
                fail(f"src/{rel}:{i + 1}: unsafe outside src/sys")
                continue
            if m.group(1) == "fn" or m.group(1) == "extern":
                continue  # signatures (trait methods of an unsafe impl, FFI blocks), not claims
            unsafe_count += 1
            context = "\n".join(lines[max(0, i - 8):i + 1])
            if "SAFETY:" not in context:
                fail(f"src/{rel}:{i + 1}: unsafe block without a // SAFETY: comment")
    # Lines are counted as rustfmt lays them out (rustfmt.toml), so that packing code onto
    # fewer lines cannot meet the budget.
    fmt = subprocess.run(["cargo", "fmt", "--check"], cwd=ROOT, capture_output=True, text=True)
    if fmt.returncode != 0:
        fail("src is not formatted as rustfmt.toml says (run `cargo fmt`); lines are counted after it")
    # Tool mode (src/tool/) is in the binary but never runs at boot: counted apart.
    tool = per_module.pop("tool", 0)
    total = sum(per_module.values())
    for module, n in sorted(per_module.items(), key=lambda kv: -kv[1]):
        print(f"  {module:<16} {n:>6} lines")
    print(f"  {'boot path':<16} {total:>6} lines (budget {BUDGETS['lines'][0]})   unsafe blocks/impls: {unsafe_count}, all in src/sys")
    print(f"  tool mode (not run at boot): {tool} lines (src/tool)")
    print(f"  {'both':<16} {total + tool:>6} lines")
    check_budget("lines", total, "lines in the boot path")


# 4. sizes ----------------------------------------------------------------------------
# Symbols of ours with C names: the entry point (the boot flow and tool mode inline into
# it) and the exports of src/sys/memcpy.rs that stand in for musl's.
OUR_C_SYMBOLS = {"main": "imprint: main (entry, inlined flow)", "memcpy": "imprint::sys",
                 "memmove": "imprint::sys"}


def group_of(symbol):
    """The crate/module a (demangled) symbol belongs to."""
    s = symbol.lstrip("<")
    if s in OUR_C_SYMBOLS:
        return OUR_C_SYMBOLS[s]
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::([A-Za-z_][A-Za-z0-9_]*)?", s)
    if not m:
        return "C library and runtime (musl)"
    crate, module = m.group(1), m.group(2)
    if crate == "imprint" and module:
        return f"imprint::{module}" + (" (tool mode, not run at boot)" if module == "tool" else "")
    if crate in ("core", "alloc", "compiler_builtins"):
        return "core/alloc (formatting, collections)"
    return crate


def audit_sizes():
    heading("sizes")
    for name, path in (("init", "build/init"), ("initramfs", "build/initramfs.cpio.gz")):
        size = (ROOT / path).stat().st_size
        budget, ceiling = BUDGETS[name]
        verdict = "ok" if size <= budget else f"OVER BUDGET (ceiling {ceiling})"
        print(f"  {path:<26} {size:>7} bytes (budget {budget}) {verdict}")
        check_budget(name, size, "bytes")
    unstripped = ROOT / "build/audit/init.unstripped"
    nm = subprocess.run(["nm", "--print-size", "--size-sort", "--demangle", str(unstripped)],
                        capture_output=True, text=True, check=True).stdout
    groups = defaultdict(int)
    seen = set()  # an alias (musl's weak `mmap` for `__mmap`) names the same bytes again
    for line in nm.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[2].lower() in "tdbr" and parts[0] not in seen:
            seen.add(parts[0])
            groups[group_of(parts[3])] += int(parts[1], 16)
    print("  bytes by module (code and data symbols of the same build, unstripped):")
    for group, n in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"    {group:<40} {n:>7}")


def main():
    build = "--no-build" not in sys.argv
    audit_syscalls()
    audit_dependencies(build)
    audit_code()
    if build:
        audit_sizes()
    heading("verdict")
    for note in over_budget:
        print(f"  OVER BUDGET: {note}")
    if failures:
        print(f"  {len(failures)} budget(s) broken:")
        for f in failures:
            print(f"  - {f}")
        sys.exit(1)
    print("  every ceiling holds" if over_budget else "  every budget holds")


if __name__ == "__main__":
    main()
