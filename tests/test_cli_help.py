"""The command line explains itself: every option of every subcommand has help text, every
subcommand a description, and the top-level help is plain text with examples (issue 18)."""
from __future__ import annotations

import argparse
import subprocess
import sys

from fasthw6 import cli


def _walk(parser, path):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, path + [name])
        else:
            yield path, parser, action


def test_every_option_and_subcommand_has_help():
    p = cli.build_parser()
    missing = [f"{' '.join(path)} {'/'.join(a.option_strings) or a.dest}"
               for path, _, a in _walk(p, ["fasthw6"]) if not a.help]
    assert not missing, f"options without help text: {missing}"
    subs = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    no_desc = [n for n, sp in subs.choices.items() if not sp.description]
    assert not no_desc, f"subcommands without a description: {no_desc}"


def test_top_level_help_is_plain_text_with_examples():
    out = subprocess.run([sys.executable, "-m", "fasthw6", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "``" not in out and ":func:" not in out
    examples = out.split("examples:", 1)[1].strip().splitlines()
    assert sum(line.strip().startswith("fasthw6 ") for line in examples[:4]) == 3


def test_verbose_says_what_it_reports_per_subcommand():
    """-v once promised parse MB/s on subcommands that parse nothing (sample, demo, bench)."""
    p = cli.build_parser()
    helps = {path[-1]: a.help for path, _, a in _walk(p, ["fasthw6"]) if "-v" in a.option_strings}
    assert set(helps) >= {"score", "decode", "fit", "sample", "demo", "compile", "bench"}
    for name in ("score", "decode", "fit"):
        assert "parse MB/s" in helps[name], name
    for name in ("sample", "demo", "compile", "bench"):
        assert "parse" not in helps[name], name
