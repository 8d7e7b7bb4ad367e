"""`brushwork train`, `fast`, `export` and `models`: feed-forward style transfer."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from brushwork import io
from brushwork.colour import COLOUR_MODES
from brushwork.commands.common import add_layer_args, add_weight_args, command
from brushwork.errors import BrushworkError
from brushwork.signals import signum_of

TRAIN_FIELDS = ("steps", "batch_size", "size", "style_size", "channels", "residual_blocks",
                "content_layers", "style_layers", "content_weight", "style_weight", "tv_weight",
                "lr", "seed", "pooling", "device", "precision", "workers", "minutes", "val",
                "preview_every", "checkpoint_every", "checkpoint", "preview_dir", "name",
                "weights", "init")


def _configure_train(p: argparse.ArgumentParser) -> None:
    from brushwork.fast.train import TrainOptions

    d = TrainOptions("", "", "")
    p.add_argument("style", nargs="?", help="style image, or a bundled one by name (e.g. "
                   "starry_night); none with --decoder")
    p.add_argument("--data", required=True, help="folder of training photos (searched "
                   "recursively; COCO train2014 is the usual choice)")
    p.add_argument("-o", "--output", required=True, help="the model file to write (.pt)")
    p.add_argument("--name", help="style name stored in the model [the style file's name]")
    p.add_argument("--decoder", metavar="LAYER", help="train no style network but the decoder "
                   "of VGG-19's LAYER (relu1_1 .. relu5_1) that `brushwork fast STYLE_IMAGE` "
                   "needs, on the same photos (losses: pixel and LAYER reconstruction)")
    p.add_argument("--width", type=float, default=1.0, help="with --decoder: share of VGG's "
                   "channels in the decoder's hidden layers [%(default)s]")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=int, default=d.steps, help="[%(default)s]")
    t.add_argument("--minutes", type=float, help="stop after this much time even if --steps "
                   "are not done")
    t.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="images per step, over all processes [%(default)s]")
    t.add_argument("--size", type=int, default=d.size, help="crop side in pixels [%(default)s]")
    t.add_argument("--style-size", type=int, default=d.style_size,
                   help="longest side of the style image: the image size the network is "
                        "for [%(default)s]")
    t.add_argument("--lr", type=float, default=d.lr, help="Adam's step size [%(default)s]")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--workers", type=int, default=d.workers,
                   help="data loading processes per training process [%(default)s]")
    t.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:N")
    t.add_argument("--precision", default=d.precision,
                   choices=("auto", "float32", "bfloat16", "float16"),
                   help="autocast precision; auto uses bf16/fp16 only where the hardware "
                        "has it [%(default)s]")
    n = p.add_argument_group("network")
    n.add_argument("--channels", type=int, default=d.channels,
                   help="width of the outer layers (Johnson et al.: 32) [%(default)s]")
    n.add_argument("--residual-blocks", type=int, default=d.residual_blocks,
                   help="[%(default)s]")
    n.add_argument("--init", metavar="MODEL", help="start from this trained model's weights "
                   "(fine-tune it, e.g. to another --style-weight) instead of at random")
    w = p.add_argument_group("losses (as in `brushwork stylize`)")
    add_weight_args(w, d)
    add_layer_args(w, d, weights=False)
    w.add_argument("--pooling", choices=("max", "avg"), default=d.pooling)
    w.add_argument("--weights", default=None, help="VGG-19 weights file (.h5, .mat or .pt)")
    o = p.add_argument_group("output while training")
    o.add_argument("--val", help="folder of validation photos: the first few are stylised "
                   "into each preview and give the validation loss [bundled photos]")
    o.add_argument("--preview-every", type=int, default=d.preview_every, metavar="N",
                   help="write a preview and the validation loss every N steps, 0 never "
                        "[%(default)s]")
    o.add_argument("--preview-dir", help="where previews go [MODEL_previews/ beside MODEL]")
    o.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, metavar="N",
                   help="write the checkpoint every N steps [%(default)s]")
    o.add_argument("--checkpoint", help="checkpoint file [MODEL.ckpt]")
    o.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint (also to extend a finished run: "
                        "raise --steps)")
    o.add_argument("--quiet", action="store_true", help="no progress bar")


@command("train", "train a fast style network on a folder of photos: STYLE --data DIR "
                  "-o MODEL (multi-GPU/CPU: run under torchrun)", _configure_train)
def train(args: argparse.Namespace) -> int:
    from brushwork.fast.train import TrainOptions
    from brushwork.fast.train import train as run_training
    from brushwork.fast.universal import STYLE_ONLY, DecoderOptions, train_decoder

    if args.decoder:
        if args.style:
            raise BrushworkError(f"{args.style}: a decoder is trained on photos alone; give "
                                 "no STYLE with --decoder")
        options = DecoderOptions(data=args.data, output=args.output, layer=args.decoder,
                                 width=args.width, progress=not args.quiet,
                                 **{k: getattr(args, k) for k in TRAIN_FIELDS
                                    if k not in STYLE_ONLY})
        run = train_decoder
    else:
        if not args.style:
            raise BrushworkError("give a STYLE image to train a style network, or --decoder "
                                 "LAYER to train a decoder for `brushwork fast STYLE_IMAGE`")
        options = TrainOptions(args.style, args.data, args.output, progress=not args.quiet,
                               **{k: getattr(args, k) for k in TRAIN_FIELDS})
        run = run_training
    try:
        run(options, resume=args.resume)
    except KeyboardInterrupt as stop:
        print(f"brushwork: interrupted; continue with the same command and --resume "
              f"(checkpoint {options.checkpoint_path})", file=sys.stderr)
        return 128 + signum_of(stop)
    return 0


def _configure_fast(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a shipped model's name (see `brushwork models`), a model "
                   "or checkpoint file, or a style image: any style in one pass through the "
                   "decoders of --decoders")
    p.add_argument("input", help="an image, a folder of images, or a video")
    p.add_argument("-o", "--output", help="image, folder or video to write "
                   "[INPUT_MODEL beside the input]")
    p.add_argument("--strength", type=float, default=1.0,
                   help="0 gives the photo, 1 the full style [%(default)s]")
    p.add_argument("--preserve-colour", "--preserve-color", choices=COLOUR_MODES,
                   default="none", help="keep the photo's colours: its chrominance under the "
                   "output's luminance, or the output recoloured to its colour statistics "
                   "[%(default)s]")
    p.add_argument("--smooth", type=float, nargs="?", const=0.5, default=0.0, metavar="WEIGHT",
                   help="video: blend each frame with the flow-warped previous output "
                        "(WEIGHT of the previous, 0.5 if no value)")
    p.add_argument("--size", type=int, help="resize the input's longest side first")
    p.add_argument("--batch-size", type=int, default=4,
                   help="images or frames per forward pass [%(default)s]")
    p.add_argument("--max-tile", type=int, metavar="PIXELS",
                   help="longest tile side for large images; at least twice the model's tile "
                   "overlap, which the error names [from free memory]")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--precision", default="auto",
                   choices=("auto", "float32", "bfloat16", "float16"))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    u = p.add_argument_group("a style image in place of a model (universal style transfer)")
    u.add_argument("--decoders", metavar="DIR", help="folder of decoder files (`brushwork "
                   "train --decoder LAYER`) [the package's models/decoders]")
    u.add_argument("--style-size", type=int, default=512,
                   help="longest side of the style image [%(default)s]")
    u.add_argument("--transform", choices=("wct", "adain"), default="wct",
                   help="whitening and colouring (Li et al.), or AdaIN (Huang & Belongie): "
                        "channel means and deviations only [%(default)s]")


def default_output(source: Path, model: str) -> Path:
    """INPUT_MODEL beside the input: a folder, a video of the same type, or an image."""
    from brushwork.video import is_video

    if source.is_dir():
        return source.with_name(f"{source.name}_{model}")
    keep = is_video(source) or source.suffix.lower() in io.SAVE_FORMATS
    return source.with_name(f"{source.stem}_{model}{source.suffix if keep else '.png'}")


@command("fast", "stylise an image, a folder or a video with a trained network: "
                 "MODEL INPUT [-o OUT]", _configure_fast)
def fast(args: argparse.Namespace) -> int:
    from brushwork.fast.stylise import FastOptions, Stylist, stylise_folder, stylise_image
    from brushwork.fast.universal import UniversalStylist, is_style_image
    from brushwork.video import is_video, stylise_video

    source = Path(args.input)
    if not source.exists():
        raise BrushworkError(f"{source}: no such file or folder")
    options = FastOptions(args.strength, args.preserve_colour, args.device, args.precision,
                          args.batch_size, args.size, args.max_tile).check()
    if args.smooth and not is_video(source):
        warnings.warn(f"--smooth blends consecutive video frames; {source} is not a video, "
                      "so it has no effect", stacklevel=1)
    if is_style_image(args.model):
        stylist = UniversalStylist(args.model, options=options, style_size=args.style_size,
                                   transform=args.transform, folder=args.decoders)
    else:
        stylist = Stylist(args.model, options)
    output = Path(args.output) if args.output else default_output(source, stylist.name)
    if output.is_dir() and not source.is_dir():  # -o FOLDER/ for one file: the file goes in it
        output = output / default_output(source, stylist.name).name
    if source.is_dir() and output.exists() and not output.is_dir():
        raise BrushworkError(f"-o {output}: that is a file, and a folder of images is written "
                             "to a folder; give -o a folder (new or existing)")
    if output.resolve() == source.resolve():
        raise BrushworkError(f"{output}: that is the input; give another -o so that the "
                             "input is kept")
    if source.is_dir():
        written = stylise_folder(stylist, source, output, progress=not args.quiet)
        print(f"wrote {len(written)} images to {output}")
    elif is_video(source):
        result = stylise_video(stylist, source, output, args.smooth, progress=not args.quiet)
        f = result.flicker
        print(f"wrote {output}: {result.frames} frames at {result.fps:.1f} frames/s"
              + ("" if result.audio else " (no ffmpeg: sound not copied)"))
        if "output" in f:
            line = (f"flicker (mean warping error): input {f['input']:.5f}, "
                    f"stylised {f['output']:.5f}")
            if "smoothed" in f:
                line += f", smoothed {f['smoothed']:.5f}"
            print(line)
    else:
        stylise_image(stylist, source, output)
        print(f"wrote {output}")
    return 0


def _configure_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a shipped model's name or a model file")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--opset", type=int, default=18,
                   help="ONNX opset, 18 up to the newest the installed onnx knows "
                        "[%(default)s]")


@command("export", "export a trained network to ONNX and check it in onnxruntime",
         _configure_export)
def export(args: argparse.Namespace) -> int:
    from brushwork.fast.export import export_onnx
    from brushwork.fast.model import load_model

    path, difference = export_onnx(load_model(args.model), args.onnx, args.opset)
    print(f"wrote {path}; onnxruntime matches PyTorch to {difference:.1e}")
    return 0


def _configure_mix(p: argparse.ArgumentParser) -> None:
    p.add_argument("first", help="a model (shipped name or file)")
    p.add_argument("second", help="a model fine-tuned from the first, or the other way round")
    p.add_argument("--weight", type=float, required=True,
                   help="share of the second model's weights, 0..1")
    p.add_argument("-o", "--output", required=True, help="the model file to write (.pt)")


@command("mix", "a model between two of one style: FIRST SECOND --weight W -o MODEL",
         _configure_mix)
def mix_models(args: argparse.Namespace) -> int:
    from brushwork.fast.model import check_model_path, load_model, mix, save_model

    check_model_path(args.output)
    mixed = mix(load_model(args.first), load_model(args.second), args.weight)
    path = save_model(mixed.net, args.output, mixed.style, mixed.settings)
    print(f"wrote {path}")
    return 0


def _configure_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--path", action="store_true", help="also print each model's file")


@command("models", "list the trained models that ship with brushwork", _configure_models)
def models(args: argparse.Namespace) -> int:
    from brushwork.fast import universal
    from brushwork.fast.model import MODELS_DIR, describe, shipped

    found = shipped()
    if not found:
        print(f"no models in {MODELS_DIR}; train one with `brushwork train`")
    for path in found.values():
        print(describe(path) + (f"\n    {path}" if args.path else ""))
    if any(universal.DECODERS_DIR.glob("*.pt")):
        print("decoders, for a style image in place of a model (`brushwork fast STYLE_IMAGE`):")
        for decoder in universal.find_decoders().values():
            print(f"  {universal.describe_decoder(decoder)}"
                  + (f"\n    {decoder.path}" if args.path else ""))
    return 0
