"""The `brushwork` command: both flag spellings, settings in the output, one-line errors."""

import subprocess
import sys

import pytest

from brushwork import io
from brushwork.cli import main

FAST = ["--size", "32", "--iterations", "2", "--scales", "1", "--quiet", "--device", "cpu"]


def test_positional_and_older_flag_spellings_both_work(tmp_path, examples):
    content, style = str(examples / "chelsea.jpg"), str(examples / "wave.jpg")
    assert main(["stylize", content, style, "-o", str(tmp_path / "a.png"), *FAST]) == 0
    assert main(["--content", content, "--styles", style, "--output",
                 str(tmp_path / "b.png"), *FAST]) == 0
    meta = io.read_metadata(tmp_path / "b.png")
    assert meta["size"] == 32 and meta["styles"] == [style]
    assert not (tmp_path / "b.png.ckpt").exists()


@pytest.mark.parametrize("args, message", [
    (["stylize", "missing.jpg", "{style}", "-o", "{out}"], "no such file"),
    (["stylize", "{content}", "{style}", "-o", "{out}", "--size", "0"], "too small"),
    (["stylize", "{content}", "{style}", "-o", "{out}", "--style-layers", "relu7_1"],
     "unknown VGG-19 layer"),
    (["stylize", "{content}", "{style}", "-o", "{outbad}"], "unknown output type"),
    (["stylize", "{content}", "-o", "{out}"], "at least one style"),
    (["stylize", "{content}", "{style}", "-o", "{out}", "--weights", "{content}"],
     "cannot read weights"),
    (["stylize", "{content}", "{style}", "-o", "{out}", "--resume"], "no checkpoint"),
    (["stylize", "{content}", "{style}", "-o", "{out}", "--device", "cuda:7"], "device"),
])
def test_bad_input_gets_one_line_and_no_output(tmp_path, examples, capsys, args, message):
    names = {"content": examples / "chelsea.jpg", "style": examples / "wave.jpg",
             "out": tmp_path / "out.png", "outbad": tmp_path / "out.xyz"}
    argv = [a.format(**names) for a in args] + ["--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("brushwork: ")
    assert list(tmp_path.iterdir()) == []


def test_bad_flag_value_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["stylize", "a.jpg", "b.jpg", "-o", "c.png", "--iterations", "many"])
    assert stop.value.code == 2
    assert "give a number" in capsys.readouterr().err


def test_weights_command_reports_the_cache():
    done = subprocess.run([sys.executable, "-m", "brushwork", "weights"], capture_output=True,
                          text=True, check=True)
    assert "valid VGG-19" in done.stdout


def test_a_reader_that_stops_early_gets_no_traceback():
    # `brushwork models | head -1`: the pipe closes before brushwork writes.
    proc = subprocess.Popen([sys.executable, "-m", "brushwork", "models", "--path"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait() == 141
    assert "Traceback" not in err and "Exception ignored" not in err, err


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, examples, capsys):
    out = tmp_path / "out.png"
    argv = ["stylize", str(examples / "chelsea.jpg"), str(examples / "wave.jpg"), "-o", str(out),
            "--size", "320", "--scales", "2", "--iterations", "5,3", "--tile", "256",
            "--device", "cpu", "--dry-run"]
    assert main(argv) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    scales = [r for r in rows if r and r[0].isdigit()]
    # chelsea is 451x300: 320x213 at the last scale, cut by 256 px tiles into two columns.
    assert [r[1] for r in scales] == ["226x151", "320x213"]
    assert scales[0][3] == "whole" and scales[1][3:6] == ["2", "x", "256px"]
    assert not out.exists()
