#!/usr/bin/env python3
"""Expected chat-template outputs for tests/test_chat_template.cpp, rendered by
real Jinja2 the way Hugging Face transformers' apply_chat_template does
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
raise_exception, strftime_now, tojson with ensure_ascii=False).

    python3 tools/chatref/render.py [tests/data/chat]

Writes DIR/expected/<template>.<conversation>[.nogen].txt: the prompt, or
"error: <message>" when the template raises."""
import datetime
import json
import pathlib
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/chat")
    cases = json.loads((root / "cases.json").read_text())
    now = datetime.datetime.fromtimestamp(cases["now"])  # local time, as the C++ side's localtime_r
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: now.strftime(fmt)
    out = root / "expected"
    out.mkdir(exist_ok=True)
    for name, t in cases["templates"].items():
        template = env.from_string((root / "templates" / (name + ".jinja")).read_text())
        runs = [(conv, True) for conv in cases["conversations"]] + [("sys_user_asst_user", False)]
        for conv, gen in runs:
            try:
                text = template.render(messages=cases["conversations"][conv], add_generation_prompt=gen,
                                       bos_token=t["bos"], eos_token=t["eos"])
            except jinja2.exceptions.TemplateError as e:
                text = "error: " + str(e)
            path = out / f"{name}.{conv}{'' if gen else '.nogen'}.txt"
            path.write_bytes(text.encode("utf-8"))
    print(f"wrote {len(list(out.glob('*.txt')))} files to {out}")


if __name__ == "__main__":
    main()
