#!/usr/bin/env python3
"""Checks that each hardening test fails without the check it covers.

tests/mutants.txt lists mutants, one per line:

    FILE | ANCHOR | TEST [TEST...]            the `throw` on the line holding
                                               ANCHOR (or the nearest above it,
                                               within 3 lines) is skipped
    FILE | OLD ==> NEW | TEST [TEST...]        the expression OLD becomes NEW

ANCHOR and OLD must occur exactly once in FILE. All mutants are compiled
into one build (a mutant schema): each is switched on at run time by
VKQ_MUTANT=<its line number in the table>, so the sources are rebuilt twice in
all, not once per mutant. The script then runs every listed test with no
mutant on (each must pass) and with its mutant on (each must fail: a wrong
message, a missing error or a crash), then once with an unrelated file's
mutant on (each must pass: the control). A test that fails where it must pass
is run once more and counts as failing only if it fails again (the SIGKILL
test has timing in it); the first failure is printed either way. The sources are restored and rebuilt
before it exits, also on SIGTERM or ^C; only SIGKILL leaves them mutated
(`git checkout` the files listed in the table, or copy them back from the
/tmp/vkq-mutants-* folder it leaves).

usage: scripts/mutants.py [-v] [--only PART] [BUILD_DIR] (default: build,
configured by scripts/build.sh); -v prints why each test failed, --only keeps
the mutants of files whose path holds PART
"""
import argparse
import os
import resource
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "tests" / "mutants.txt"

# Goes first in every mutated file: whether mutant `id` is on.
PRELUDE = """#include <cstdlib>
#ifndef __clang__
// A mutant may skip the throw that ended a function, or leave a value unset:
// fine for a mutant, which only has to make its test fail.
#pragma GCC diagnostic ignored "-Wreturn-type"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wunused-value"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
namespace {
[[maybe_unused]] bool vkq_mutant(int id) {
  static const int on = [] { const char* e = std::getenv("VKQ_MUTANT"); return e ? std::atoi(e) : -1; }();
  return on == id;
}
}  // namespace
"""


class TableError(Exception):
    pass


def parse_table():
    mutants = []
    for number, line in enumerate(TABLE.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = [p.strip() for p in text.split(" | ")]
        if len(parts) < 3:
            raise TableError(f"{TABLE}:{number}: expected 'FILE | ANCHOR | TESTS', got: {line}")
        # The anchor may hold " | " itself (C++'s bitwise or).
        file, what, tests = parts[0], " | ".join(parts[1:-1]), parts[-1]
        old, arrow, new = what.partition(" ==> ")
        mutants.append({"id": number, "file": file, "anchor": old, "new": new if arrow else None,
                        "tests": tests.split()})
    if not mutants:
        raise TableError(f"{TABLE}: no mutants")
    return mutants


def mutate(path, mutants):
    """The text of `path` with every mutant of it guarded by vkq_mutant(id)."""
    lines = path.read_text().split("\n")
    for m in mutants:
        hits = [i for i, l in enumerate(lines) if m["anchor"] in l]
        if len(hits) != 1:
            raise TableError(f"{TABLE}:{m['id']}: '{m['anchor']}' occurs on {len(hits)} lines of {m['file']}, not 1")
        i = hits[0]
        if m["new"] is not None:
            lines[i] = lines[i].replace(m["anchor"], f"(vkq_mutant({m['id']}) ? ({m['new']}) : ({m['anchor']}))", 1)
            continue
        for j in range(i, max(i - 4, -1), -1):
            if re.search(r"\bthrow\b", lines[j]):
                lines[j] = re.sub(r"\bthrow\b", f"if (!vkq_mutant({m['id']})) throw", lines[j], count=1)
                break
        else:
            raise TableError(f"{TABLE}:{m['id']}: no `throw` on or within 3 lines above '{m['anchor']}' in {m['file']}")
    return PRELUDE + "\n".join(lines)


def build(build_dir):
    r = subprocess.run(["cmake", "--build", str(build_dir), "--target", "vkquant_tests"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        print(r.stdout.decode(errors="replace")[-6000:], file=sys.stderr)
        raise TableError(f"building vkquant_tests in {build_dir} failed (the compiler's output is above)")


def limit_memory():
    # A mutant that lets an absurd size through must fail with bad_alloc, not
    # take the machine's memory.
    resource.setrlimit(resource.RLIMIT_AS, (16 << 30, 16 << 30))


def passes(binary, test, mutant=None):
    env = dict(os.environ)
    env.pop("VKQ_MUTANT", None)
    if mutant is not None:
        env["VKQ_MUTANT"] = str(mutant)
    r = subprocess.run([str(binary), f"--gtest_filter={test}", "--gtest_brief=1"], env=env, preexec_fn=limit_memory,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = r.stdout.decode(errors="replace")
    if r.returncode < 0:
        out += f"\nkilled by signal {-r.returncode}"
    if r.returncode == 0 and "[  PASSED  ] 1 test" not in out:
        raise TableError(f"{TABLE}: test '{test}' does not exist (or ran no test)")
    return r.returncode == 0, out


def passes_twice(binary, test, mutant=None):
    """Whether `test` passes where it must: a test with timing in it (the
    SIGKILL writer) may fail once by chance, so a failure is run again and
    counts only when it repeats; the first one is printed either way."""
    ok, out = passes(binary, test, mutant)
    if ok:
        return ok, out
    print(f"mutants.py: {test} failed once with {'mutant ' + str(mutant) if mutant else 'no mutant'} on, "
          f"running it again:\n{out[-2000:]}", file=sys.stderr)
    return passes(binary, test, mutant)


def why(out):
    """The first line of a test's output that says why it failed."""
    for line in out.splitlines():
        if "Failure" in line or "Expected" in line or "wanted" in line or "accepted" in line or "terminate" in line:
            return line.strip()[:200]
    return (out.strip().splitlines() or ["(no output)"])[-1][:200]


def main():
    ap = argparse.ArgumentParser(description="Checks that each hardening test fails without its check.")
    ap.add_argument("build_dir", nargs="?", default=str(ROOT / "build"), help="configured by scripts/build.sh")
    ap.add_argument("-v", action="store_true", help="print why each test failed")
    ap.add_argument("--only", metavar="PART", help="keep the mutants of files whose path holds PART")
    args = ap.parse_args()
    verbose = args.v
    build_dir = Path(args.build_dir).resolve()
    binary = build_dir / "tests" / "vkquant_tests"
    mutants = parse_table()
    if args.only is not None:
        mutants = [m for m in mutants if args.only in m["file"]]
        if not mutants:
            raise TableError(f"--only {args.only}: no mutant in a file whose name holds it")
    by_file = {}
    for m in mutants:
        by_file.setdefault(m["file"], []).append(m)

    backup = Path(tempfile.mkdtemp(prefix="vkq-mutants-"))
    saved = []
    failures = []
    try:
        for file, ms in by_file.items():
            src = ROOT / file
            if not src.is_file():
                raise TableError(f"{TABLE}:{ms[0]['id']}: no file {file}")
            text = mutate(src, ms)
            keep = backup / str(len(saved))
            shutil.copy2(src, keep)
            saved.append((src, keep))
            src.write_text(text)
        build(build_dir)

        tests = sorted({t for m in mutants for t in m["tests"]})
        for t in tests:
            ok, out = passes_twice(binary, t)
            if not ok:
                failures.append(f"{t} fails with no mutant on:\n{out[-2000:]}")
        caught = 0
        for m in mutants:
            for t in m["tests"]:
                ok, out = passes(binary, t, m["id"])
                if ok:
                    failures.append(f"mutant {m['id']} ({m['file']}: {m['anchor']}) survives {t}")
                else:
                    caught += 1
                    if verbose:
                        print(f"mutant {m['id']} fails {t}: {why(out)}")
        # The control: each test passes with a mutant on in a file none of its
        # own mutants is in, so the failures above come from the checks, not
        # from the schema.
        for t in tests:
            own = {m["file"] for m in mutants if t in m["tests"]}
            other = next((m for m in mutants if m["file"] not in own), None)
            if not other:
                continue
            ok, out = passes_twice(binary, t, other["id"])
            if not ok:
                failures.append(f"{t} fails with mutant {other['id']} on, which is not its check:\n{out[-2000:]}")
        print(f"mutants.py: {len(mutants)} mutants in {len(by_file)} files, {len(tests)} tests; "
              f"{caught} of {sum(len(m['tests']) for m in mutants)} (mutant, test) pairs fail as they must")
    finally:
        for src, keep in saved:
            shutil.copy2(keep, src)
            os.utime(src)  # newer than the mutated objects: rebuilt
        shutil.rmtree(backup, ignore_errors=True)
        if saved:
            build(build_dir)
    for f in failures:
        print("mutants.py: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    # A kill (CI's timeout, ^C) still restores the sources.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        sys.exit(main())
    except TableError as e:
        print(f"mutants.py: {e}", file=sys.stderr)
        sys.exit(1)
