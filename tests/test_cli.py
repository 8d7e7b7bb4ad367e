"""The `brushwork` command: both flag spellings, settings in the output, one-line errors."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from brushwork import io
from brushwork.cli import main
from brushwork.fast.model import resolve

FAST = ["--size", "32", "--iterations", "2", "--scales", "1", "--quiet", "--device", "cpu"]


def test_positional_and_older_flag_spellings_both_work(tmp_path, examples):
    content, style = str(examples / "chelsea.jpg"), str(examples / "wave.jpg")
    assert main(["stylize", content, style, "-o", str(tmp_path / "a.png"), *FAST]) == 0
    assert main(["--content", content, "--styles", style, "--output",
                 str(tmp_path / "b.png"), *FAST]) == 0
    meta = io.read_metadata(tmp_path / "b.png")
    assert meta["size"] == 32 and meta["styles"] == [style]
    assert not (tmp_path / "b.png.ckpt").exists()


#: A command's inputs and output, the start of most rows below.
RUN = ["{content}", "{style}", "-o", "{out}"]


@pytest.mark.parametrize("args, message", [
    (["stylize", "missing.jpg", "{style}", "-o", "{out}"], "no such file"),
    (["stylize", *RUN, "--size", "0"], "too small"),
    (["stylize", *RUN, "--style-layers", "relu7_1"], "unknown VGG-19 layer"),
    (["stylize", "{content}", "{style}", "-o", "{outbad}"], "unknown output type"),
    (["stylize", "{content}", "-o", "{out}"], "at least one style"),
    (["stylize", *RUN, "--weights", "{content}"], "cannot read weights"),
    (["stylize", *RUN, "--resume"], "no checkpoint"),
    (["stylize", *RUN, "--device", "cuda:7"], "device"),
    (["stylize", *RUN, "--tile", "5"], "at least 128 px"),
    (["stylize", *RUN, "--tile", "-3"], "at least 128 px"),
    (["stylize", *RUN, "--overlap", "-5"], "--overlap -5 must not be negative"),
    (["stylize", *RUN, "--lr", "-1"], "--lr -1 must be above 0"),
    (["stylize", *RUN, "--scales", "2", "--iterations", "1,1,1"],
     "--iterations: 3 counts for --scales 2"),
    (["photo", *RUN, "--lr", "0"], "--lr 0 must be above 0"),
    (["stylize", *RUN, "--save-every", "-1"], "--save-every -1 must not be negative"),
    (["stylize", *RUN, "--checkpoint-every", "-2"], "--checkpoint-every -2 must not be negative"),
    (["photo", *RUN, "--checkpoint-minutes", "-1"], "--checkpoint-minutes -1 must not be negative"),
    (["stylize", *RUN, "--style-layer-weights", "1,1,-1,1,1"],
     "--style-layer-weights -1 must not be negative"),
    (["stylize", *RUN, "--lr", "nan"], "--lr nan: give a finite"),
    (["stylize", *RUN, "--style-weight", "inf"], "--style-weight inf: give a finite"),
    (["stylize", *RUN, "--seed", "99999999999999999999"], "below 2**63"),
    (["photo", *RUN, "--regions", "5000"], "--regions 5000: use 1"),
    (["photo", *RUN, "--regions", "0"], "--regions 0: use 1"),
    (["stylize", *RUN, "--plot", "{out}"], "-o writes there too"),
])
def test_bad_input_gets_one_line_and_no_output(tmp_path, examples, capsys, args, message):
    names = {"content": examples / "chelsea.jpg", "style": examples / "wave.jpg",
             "out": tmp_path / "out.png", "outbad": tmp_path / "out.xyz"}
    argv = [a.format(**names) for a in args] + ["--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("brushwork: ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["stylize", "a.jpg", "b.jpg", "-o", "c.png", "--iterations", "many"], "give a number"),
    (["photo", "a.jpg", "b.jpg", "-o", "c.png", "--no-such-flag", "1"],
     "brushwork photo: unrecognized arguments: --no-such-flag 1 (see brushwork photo -h)"),
    (["fast"], "brushwork fast: the following arguments are required"),
])
def test_bad_flags_get_one_line_from_their_own_command(capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_weights_command_reports_the_cache():
    done = subprocess.run([sys.executable, "-m", "brushwork", "weights"], capture_output=True,
                          text=True, check=True)
    assert "valid VGG-19" in done.stdout
    assert sum(line.startswith("cache:") for line in done.stdout.splitlines()) == 1


def test_weights_command_fails_on_invalid_weights(examples, capsys):
    assert main(["weights", "--weights", str(examples / "chelsea.jpg")]) == 2
    out, err = capsys.readouterr()
    assert "(invalid)" in out
    assert err.startswith("brushwork: ") and "cannot read weights" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["stylize", "photo"])
def test_an_image_too_narrow_for_vgg_is_refused_before_the_run(tmp_path, examples, capsys,
                                                               command):
    wide = tmp_path / "wide.png"
    io.save_image(torch.rand(1, 3, 20, 2000), wide)
    out = tmp_path / "out.png"
    regions = ["--regions", "1"] if command == "photo" else []
    assert main([command, str(wide), str(examples / "wave.jpg"), "-o", str(out), *regions,
                 *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert "32x1 px" in err and "raise --size or crop" in err and len(err.splitlines()) == 1
    assert not out.exists() and not Path(f"{out}.ckpt").exists()


def test_coarse_scales_too_narrow_for_vgg_are_left_out(tmp_path, capsys):
    strip = tmp_path / "strip.png"
    io.save_image(torch.rand(1, 3, 30, 400), strip)  # 320x24 at --size 320
    argv = ["stylize", str(strip), str(strip), "-o", str(tmp_path / "out.png"), "--size", "320",
            "--scales", "3", "--device", "cpu", "--dry-run"]
    assert main(argv) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    # sqrt(2) below 320x24 is 226x17, then 160x12: under 16 px, so that level is dropped.
    assert [r[1] for r in rows if r and r[0].isdigit()] == ["226x17", "320x24"]


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


def test_outputs_that_cannot_be_written_fail_before_the_run(tmp_path, examples, capsys):
    content, style = str(examples / "chelsea.jpg"), str(examples / "wave.jpg")
    blocker = tmp_path / "a_file"
    blocker.write_bytes(b"x")
    copy = tmp_path / "photo.jpg"
    copy.write_bytes((examples / "chelsea.jpg").read_bytes())
    model = tmp_path / "mine.pt"
    model.write_bytes(resolve("wave").read_bytes())
    cases = [
        (["stylize", content, style, "-o", f"{blocker}/out.png", *FAST], "is a file, not a"),
        (["stylize", content, style, "-o", f"{tmp_path}/o.png", "--plot", f"{tmp_path}/p.xyz",
          *FAST], "--plot writes"),
        (["stylize", content, style, "-o", f"{tmp_path}/o.png", "--record",
          f"{blocker}/r.gif", *FAST], "is a file, not a"),
        (["fast", "wave", str(copy), "-o", str(copy), "--quiet"], "also an input (input)"),
        (["fast", "wave", str(tmp_path), "-o", str(tmp_path), "--quiet"], "that is the input"),
        (["stylize", str(copy), style, "-o", str(copy), *FAST], "also an input (content)"),
        (["mix", "wave", str(model), "--weight", "0.5", "-o", str(model)],
         "also an input (second)"),
        (["stylize", content, style, "-o", str(tmp_path), *FAST], "that is a folder"),
        (["export", "wave", "--onnx", "."], "that is a folder"),
    ]
    before = copy.read_bytes()
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "mine.pt", "photo.jpg"]
    assert copy.read_bytes() == before and model.read_bytes() == resolve("wave").read_bytes()


def test_a_folder_of_only_unreadable_images_is_an_error(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.png").write_text("not a picture")
    with pytest.warns(UserWarning, match="skipped: .*broken.png"):
        assert main(["fast", "wave", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                     "--quiet"]) == 2
    assert "none of its 1 image files could be read" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_bad_composite_colour_is_refused_before_the_matte_is_solved(tmp_path, examples,
                                                                     capsys):
    trimap = torch.full((1, 3, 32, 32), 0.5)
    trimap[..., :, :4], trimap[..., :, -4:] = 0.0, 1.0
    io.save_image(trimap, tmp_path / "trimap.png")
    image = tmp_path / "image.png"
    io.save_image(io.load_image(examples / "chelsea.jpg", 32)[..., :32, :32], image)
    assert main(["matte", str(image), "--trimap", str(tmp_path / "trimap.png"), "-o",
                 str(tmp_path / "alpha.png"), "--composite", "notacolour", "-o2",
                 str(tmp_path / "comp.png")]) == 2
    assert "notacolour: neither an image file nor a colour" in capsys.readouterr().err
    assert not (tmp_path / "alpha.png").exists()


def test_resume_takes_its_own_checkpoint_quietly_and_refuses_another_runs(tmp_path, examples,
                                                                         capsys):
    import warnings

    from brushwork.optimise import Checkpoint

    out = tmp_path / "out.png"
    argv = ["stylize", str(examples / "chelsea.jpg"), str(examples / "wave.jpg"), "-o", str(out),
            *FAST]
    assert main(argv) == 0
    settings = io.read_metadata(out)  # what the command records, checkpoints included
    ckpt = tmp_path / "out.png.ckpt"
    Checkpoint(io.load_image(out), 0, 1, settings).save(ckpt)
    with warnings.catch_warnings(record=True) as caught:
        assert main([*argv, "--resume"]) == 0
    assert not [w for w in caught if "resuming" in str(w.message)]  # the same command: quiet
    assert not ckpt.exists()

    Checkpoint(io.load_image(out), 0, 1, {**settings, "content": "other.jpg"}).save(ckpt)
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "a checkpoint of another run (differing: content)" in err
    Checkpoint(io.load_image(out), 0, 1, {**settings, "style_weight": 1.0}).save(ckpt)
    with pytest.warns(UserWarning, match="resuming with changed settings: style_weight"):
        assert main([*argv, "--resume"]) == 0
