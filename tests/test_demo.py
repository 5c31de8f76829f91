"""`cmhash demo` end to end (with a closed-form method instead of SDEH, to stay fast): both rows,
and a last line that is the serve command of an index the page can open."""

from __future__ import annotations

import re
import shlex

from cmhash.cli import main
from cmhash.service import Retriever


def test_demo_prints_both_methods_and_ends_with_the_serve_command(capsys, tmp_path):
    assert main(["demo", "--method", "scm", "--baseline", "cca_itq", "--bits", "16", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"│\s*cca_itq\s*│ 0\.\d{4}", out) and re.search(r"│\s*scm\s*│ 0\.\d{4}", out)
    last = out.strip().splitlines()[-1]
    argv = shlex.split(last)
    assert argv[:2] == ["cmhash", "serve"]
    with Retriever.open(argv[argv.index("--model") + 1], argv[argv.index("--index") + 1]) as retriever:
        assert retriever.info()["index"]["modalities"] == ["image", "text"]
        assert retriever.search_item(int(retriever.dataset.ids[0]), "text", k=3).hits
