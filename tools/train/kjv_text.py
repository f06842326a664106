#!/usr/bin/env python3
"""Build the King James Bible corpus, one document per chapter.

Source: Debian's `bible-kjv-text` (public domain), dumped with the
`bible` reader from the `bible-kjv` package:

    bible -f gen1:1-rev22:21

(`-f` turns pretty-printing off: one verse per line, "Ref text").

A chapter document is the verse texts of one chapter, without references or
verse numbers, joined by "\n" (no trailing newline).  The corpus file is the
documents joined by "\n\n" plus one final "\n"; verse text never contains an
empty line, so an empty line is an unambiguous chapter boundary.
"""
import re
import subprocess
import sys

REF = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")


def dump_verses():
    out = subprocess.run(["bible", "-f", "gen1:1-rev22:21"], stdin=subprocess.DEVNULL,
                         check=True, capture_output=True).stdout
    text = out.decode("ascii")
    verses = []
    for line in text.split("\n"):
        if not line:
            continue
        m = REF.match(line)
        if not m:
            raise ValueError(f"unparsed line: {line!r}")
        verses.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4).strip()))
    return verses


def chapters():
    """List of chapter documents (str), in canonical order."""
    docs, cur, key = [], [], None
    for book, ch, _v, txt in dump_verses():
        if (book, ch) != key:
            if cur:
                docs.append("\n".join(cur))
            cur, key = [], (book, ch)
        cur.append(txt)
    if cur:
        docs.append("\n".join(cur))
    return docs


def split_docs(text):
    """Inverse of the file format: documents = non-empty blocks between empty lines."""
    return [d for d in text.rstrip("\n").split("\n\n") if d]


def train_heldout(docs, frac=0.05):
    """Hold out the last `frac` of the bytes, cut at a chapter boundary."""
    total = sum(len(d) for d in docs)
    acc, cut = 0, len(docs)
    while cut > 0 and acc < frac * total:
        cut -= 1
        acc += len(docs[cut])
    return docs[:cut], docs[cut:]


def calibration(train_docs, every=25, max_bytes=100_000):
    """Every `every`-th training chapter up to `max_bytes`: the text
    `vkquant calibrate` measures keys on (never the held-out text)."""
    out, size = [], 0
    for d in train_docs[::every]:
        if size + len(d) > max_bytes:
            break
        out.append(d)
        size += len(d)
    return out


if __name__ == "__main__":
    docs = chapters()
    if sys.argv[1:] == ["--calib"]:
        docs = calibration(train_heldout(docs)[0])
    sys.stdout.write("\n\n".join(docs) + "\n")
