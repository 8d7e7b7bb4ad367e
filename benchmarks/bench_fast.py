"""Speed of fast stylisation: a 512x512 image and a 640x360 video, on this machine.

For each network (a shipped model, a model file, or bare configurations WIDTHxBLOCKS, whose
speed does not depend on the weights) it reports the median over ``--runs`` of the wall
time of ``Stylist(image)`` (network, colour step and blending; no file I/O) and the CPU
time it took, which is the figure to trust on a busy machine: with one thread, CPU time
is what the wall time would be on an idle core. ``--onnx`` adds onnxruntime's time.
``--plain`` times the bare network side by side with the plain form of its upsampling and
output layers (upsample, pad, convolve), which the network computes in a rearranged form.

The video figure stylises a clip synthesised from the bundled Tübingen photo (a slow pan,
unless ``--video`` names one) without and with temporal smoothing, and prints frames per
second, this process's CPU time per frame (ffmpeg's encoding runs in its own process) and
the flicker figures (mean warping error).

    python benchmarks/bench_fast.py --configs 16x5,12x5,12x3 --threads 1
    python benchmarks/bench_fast.py --model starry_night --video-frames 48
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from brushwork.fast.model import FastModel, load_model, shipped
from brushwork.fast.network import TransformerNet
from brushwork.fast.stylise import FastOptions, Stylist

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "brushwork" / "examples"


def networks(args: argparse.Namespace) -> list[FastModel]:
    """The models to time: --model, else --configs, else the first shipped model."""
    if args.model:
        return [load_model(args.model)]
    if args.configs:
        out = []
        for spec in args.configs.split(","):
            width, blocks = (int(v) for v in spec.lower().split("x"))
            out.append(FastModel(TransformerNet(width, blocks).eval(), f"{width}x{blocks}"))
        return out
    models = shipped()
    if models:
        return [load_model(next(iter(models.values())))]
    return [FastModel(TransformerNet(16, 5).eval(), "16x5 (untrained)")]


def time_calls(*fns, runs: int) -> list[tuple[float, float]]:
    """Median wall and CPU seconds of each ``fn()`` over ``runs`` calls after two warm-ups.

    Several functions are called in turn, so that a drift in the machine's speed hits them
    alike and their ratio stays fair."""
    for _ in range(2):
        for fn in fns:
            fn()
    walls: list[list[float]] = [[] for _ in fns]
    cpus: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, wall, cpu in zip(fns, walls, cpus, strict=True):
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall.append(time.perf_counter() - w)
            cpu.append(time.process_time() - c)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(walls, cpus,
                                                                         strict=True)]


def bench_image(model: FastModel, args: argparse.Namespace) -> None:
    cfg = model.net.config()
    image = torch.rand(1, 3, args.size, args.size)
    stylist = Stylist(model, FastOptions(device=args.device, precision=args.precision))
    [(wall, cpu)] = time_calls(lambda: stylist(image), runs=args.runs)
    label = f"{model.name} (width {cfg['channels']}, {cfg['residual_blocks']} blocks)"
    print(f"{label:<40} {args.size}x{args.size} {stylist.device.type} {stylist.dtype}: "
          f"median {wall:.3f} s wall, {cpu:.3f} s CPU ({torch.get_num_threads()} threads)")
    if args.onnx:
        bench_onnx(model, image, args)
    if args.plain:
        bench_plain(model, image, args)


def plain_up(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The network's upsampling half as the layers read: upsample, pad, convolve, normalise."""
    for upsample, (conv, norm, relu) in net.up[:2]:
        x = relu(norm(conv(upsample(x))))
    return net.up[2][1](net.up[2][0](x))  # reflection pad, then the 9x9 convolution


@torch.no_grad()
def bench_plain(model: FastModel, image: torch.Tensor, args: argparse.Namespace) -> None:
    net = model.net.to(args.device, memory_format=torch.channels_last).eval()
    x = image.to(args.device, memory_format=torch.channels_last)
    middle = net.residual(net.down(x))
    check = (net.up(middle) - plain_up(net, middle)).abs().max().item()
    (rearranged, _), (plain, _) = time_calls(lambda: net.up(net.residual(net.down(x))),
                                             lambda: plain_up(net, net.residual(net.down(x))),
                                             runs=args.runs)
    print(f"{'  bare network, rearranged layers':<40} median {rearranged:.3f} s wall; plain "
          f"layers {plain:.3f} s: {plain / rearranged:.2f}x (outputs differ by {check:.1e})")


def bench_onnx(model: FastModel, image: torch.Tensor, args: argparse.Namespace) -> None:
    import onnxruntime

    from brushwork.fast.export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path, _ = export_onnx(model, Path(tmp) / "model.onnx")
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(path), opts,
                                               providers=["CPUExecutionProvider"])
        feed = {"image": image.numpy()}
        [(wall, cpu)] = time_calls(lambda: session.run(None, feed), runs=args.runs)
    print(f"{'  onnxruntime':<40} {args.size}x{args.size} cpu float32: median {wall:.3f} s "
          f"wall, {cpu:.3f} s CPU")


def bench_video(model: FastModel, args: argparse.Namespace) -> None:
    from brushwork.video import pan_clip, stylise_video

    stylist = Stylist(model, FastOptions(device=args.device, precision=args.precision,
                                         batch_size=args.batch_size))
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(args.video) if args.video else pan_clip(
            EXAMPLES / "tubingen.jpg", Path(tmp) / "pan.mp4", 640, 360, args.video_frames)
        for smooth in (0.0, args.smooth):
            cpu = time.process_time()
            result = stylise_video(stylist, clip, Path(tmp) / f"out{smooth}.mp4", smooth,
                                   progress=False)
            cpu = (time.process_time() - cpu) / result.frames
            flicker = ", ".join(f"{k} {v:.5f}" for k, v in result.flicker.items())
            print(f"video {clip.name} {result.frames} frames, smoothing {smooth}: "
                  f"{result.fps:.2f} frames/s ({cpu:.3f} s CPU per frame, encoding aside); "
                  f"flicker: {flicker}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="shipped model name or model file")
    p.add_argument("--configs", help="bare networks to time, e.g. 16x5,12x3 (width x blocks)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--threads", type=int, help="torch threads [PyTorch's default]")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto")
    p.add_argument("--onnx", action="store_true", help="also time onnxruntime")
    p.add_argument("--plain", action="store_true",
                   help="also time the plain form of the upsampling and output layers")
    p.add_argument("--video", help="a video to use instead of the synthesised pan")
    p.add_argument("--video-frames", type=int, default=0,
                   help="frames of the synthesised 640x360 clip; 0 skips the video [0]")
    p.add_argument("--smooth", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=4)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = networks(args)
    for model in models:
        bench_image(model, args)
    if args.video or args.video_frames:
        bench_video(models[0], args)


if __name__ == "__main__":
    main()
