"""The ``posezoo`` command line (typer).

Every user-caused failure is a :class:`posezoo.errors.PosezooError`: ``main()`` prints it as one
line, ``posezoo: error: ...``, and exits with its code. Usage errors exit with 2 (click's rule).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import typing
from pathlib import Path
from typing import List, Optional

import typer

from posezoo.version import __version__
from posezoo.errors import FetchError, PosezooError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Run pose-estimation models from a verified model zoo.",
)
cache_app = typer.Typer(no_args_is_help=True, help="Manage downloaded models (the cache).")
app.add_typer(cache_app, name="cache")

OptionOpt = typer.Option(
    None,
    "--option",
    metavar="KEY=VALUE",
    help="A family option (repeatable), e.g. --option fps=25; `posezoo info MODEL` lists the model's options.",
)


def _family_options(pairs: Optional[List[str]]) -> dict:
    """``--option KEY=VALUE`` pairs as keyword options (typed and checked against the model's family)."""
    from posezoo.errors import UsageError

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option {pair!r} is not KEY=VALUE", "e.g. --option fps=25; `posezoo info MODEL` lists the options")
        out[key.strip().replace("-", "_")] = value
    return out


MirrorOpt = typer.Option(
    None, "--mirror", envvar="POSEZOO_MIRROR", help="Fetch files from this mirror (URL or folder) instead of upstream."
)
OfflineOpt = typer.Option(
    False, "--offline", envvar="POSEZOO_OFFLINE", help="Never use the network; use only the cache or a local mirror."
)
QuietOpt = typer.Option(
    False, "--quiet", "-q", help="No progress lines on stderr for downloads and conversions (errors still print)."
)


def _quiet(quiet: bool) -> None:
    """``--quiet``: no progress lines, here or in the workers (which inherit the environment)."""
    if quiet:
        from posezoo.supply.progress import PROGRESS_ENV

        os.environ[PROGRESS_ENV] = "0"


def _check_device(device: str) -> None:
    """``--device`` refused before anything is fetched: an unknown name, or CUDA where onnxruntime has
    none (a UsageError, exit 2)."""
    from posezoo.inference.runtime import available_device

    available_device(device)


def _zoo():
    from posezoo.zoo.resolve import get_zoo, warn_plugins

    zoo = get_zoo()
    warn_plugins(zoo)
    return zoo


def _echo_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


# --------------------------------------------------------------------------------------------- run


@app.command()
def run(
    model: Optional[str] = typer.Argument(None, help="Model name (see `posezoo list`; default: the zoo's default model, marked * there)."),
    input: Optional[List[Path]] = typer.Option(
        None, "-i", "--input", help="Image file or folder of images (repeatable)."
    ),
    video: Optional[List[str]] = typer.Option(
        None, "-v", "--video", help="Video file or folder of videos (repeatable), or camera index (-v 0 = webcam)."
    ),
    savepath: Optional[Path] = typer.Option(
        None,
        "-s",
        "--savepath",
        help="Write the annotated image (or video, by extension: .mp4 (H.264), .avi); with several inputs, a folder "
        "mirroring the input tree.",
    ),
    json_out: Optional[str] = typer.Option(
        None,
        "--json",
        help="Write JSON Lines: one object per image or frame (several inputs: in input order; DIR/ with a "
        "trailing slash: one file per input; -: standard output, and posezoo's messages to stderr).",
    ),
    variant: Optional[str] = typer.Option(None, "--variant", help="Model variant (see `posezoo info MODEL`)."),
    threshold: Optional[float] = typer.Option(
        None,
        "--threshold",
        help="Person-score threshold (default: the model's). Two-stage models apply it to the detector's "
        "score and to the landmark model's pose presence.",
    ),
    max_poses: int = typer.Option(1, "--max-poses", min=1, help="At most this many people per image."),
    segmentation: bool = typer.Option(False, "--segmentation", help="Also compute and draw the segmentation mask."),
    no_display: bool = typer.Option(False, "--no-display", help="Do not open a window."),
    static: bool = typer.Option(False, "--static", help="Video: run the detector on every frame (no tracking)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (auto: best onnxruntime provider present)."),
    draw_boxes: bool = typer.Option(False, "--draw-boxes", help="Draw each pose's box with its score (and track id)."),
    draw_mesh: bool = typer.Option(
        False, "--draw-mesh", help="Also draw the model's surface mesh, when it has one (a face mesh's tesselation)."
    ),
    coco: Optional[Path] = typer.Option(
        None,
        "--coco",
        help="Images: write COCO keypoint results (JSON: image_id, category_id, keypoints [x, y, v] x 17, score) "
        "for pycocotools, mmpose, FiftyOne, CVAT; COCO-WholeBody results (also foot_kpts, face_kpts, lefthand_kpts, "
        "righthand_kpts) for a model with feet, face or hand keypoints.",
    ),
    coco_ann: Optional[Path] = typer.Option(
        None, "--coco-ann", help="Take --coco image ids from this COCO annotation file, by file name."
    ),
    world_plot: Optional[Path] = typer.Option(
        None,
        "--world-plot",
        help="Draw the first person's world landmarks (metres) in 3D to this image (.png, .jpg, .svg, .pdf; "
        "needs matplotlib: pip install \"posezoo[plot]\").",
    ),
    family_options: Optional[List[str]] = OptionOpt,
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", min=1, help="Workers for several inputs (default: one per core; 1: in this process)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Several inputs: skip those whose outputs under -s DIR / --json DIR/ exist."
    ),
    fps_overlay: bool = typer.Option(
        False, "--fps-overlay", help="Draw the measured frames per second into the video saved with -s (the window always shows it)."
    ),
    mirror: Optional[str] = MirrorOpt,
    offline: bool = OfflineOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Run MODEL on images, videos or a camera; with no input, on the bundled sample image.

    Several inputs (folders, repeated -i / -v) run on a process pool, one worker per core."""
    _quiet(quiet)
    _check_device(device)
    from posezoo.drivers.frames import PredictOptions
    from posezoo.drivers.many import run_many, wants_many
    from posezoo.drivers.run import RunOptions, run_model
    from posezoo.io.sinks import data_stdout, is_stdout, refuse_stdout

    refuse_stdout("-s", savepath, "an annotated image or video")
    refuse_stdout("--coco", coco, "COCO results (a file written once the run is over)")
    refuse_stdout("--world-plot", world_plot, "a plot image")
    zoo = _zoo()
    videos = list(video or [])
    opts = RunOptions(
        model=model or zoo.registry.default(),
        variant=variant,
        predict=PredictOptions(
            max_poses=max_poses,
            threshold=threshold,
            static=static,
            options=_family_options(family_options) or None,
            features=("segmentation",) if segmentation else (),
        ),
        inputs=list(input or []),
        videos=videos,
        savepath=savepath,
        json_out=Path(json_out) if json_out else None,
        json_dir=bool(json_out) and json_out.endswith(("/", os.sep)),
        display=not no_display,
        device=device,
        mirror=mirror,
        offline=offline,
        coco_out=coco,
        coco_ann=coco_ann,
        draw_boxes=draw_boxes,
        draw_mesh=draw_mesh,
        world_plot=world_plot,
        jobs=jobs,
        resume=resume,
        fps_overlay=fps_overlay,
    )
    resolution = zoo.resolve(opts.model, opts.variant)  # once: the drivers take it from here
    with data_stdout() if is_stdout(json_out) else contextlib.nullcontext():  # --json -: stdout is JSON only
        if wants_many(opts):
            run_many(opts, resolution)
        else:
            run_model(opts, resolution)


@app.command("batch")
def batch_cmd(
    model: str = typer.Argument(..., help="Model name (see `posezoo list`)."),
    inputs: List[str] = typer.Argument(
        ..., help="Image or video files, folders (searched recursively), or URIs pyarrow.fs understands (s3://...)."
    ),
    out: str = typer.Option(..., "--out", "-o", help="Folder or URI to write the Parquet files (and _media/) to."),
    ray: Optional[str] = typer.Option(
        None, "--ray", help="Run on Ray Data: 'local' (start Ray here), or a cluster address ('auto', ray://HOST:10001)."
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=1, help="Workers (Ray actors), one model each (default: one per core; Ray cluster: per CPU)."
    ),
    save_media: bool = typer.Option(False, "--save-media", help="Also write annotated images and videos under OUT/_media/."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Model variant (see `posezoo info MODEL`)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Person-score threshold (default: the model's)."),
    max_poses: int = typer.Option(1, "--max-poses", min=1, help="At most this many people per image."),
    static: bool = typer.Option(False, "--static", help="Video: run the detector on every frame (no tracking)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (auto: best onnxruntime provider present)."),
    family_options: Optional[List[str]] = OptionOpt,
    resume: bool = typer.Option(
        False, "--resume", help="Finish an interrupted run in --out (its inputs with rows there are skipped)."
    ),
    mirror: Optional[str] = MirrorOpt,
    offline: bool = OfflineOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Poses of whole data sets into Parquet: one row per person per frame, on this machine's cores or on Ray.

    Without --ray the local process pool runs it; with --ray, a Ray Data pipeline (pip install
    "posezoo[ray]"). The rows are the same either way; read them with pandas.read_parquet(OUT) or
    pyarrow.dataset.dataset(OUT)."""
    _quiet(quiet)
    if ray is None or ray == "local":  # (a cluster's workers may have the GPU this machine lacks)
        _check_device(device)
    from posezoo.drivers.batch import batch
    from posezoo.io.sinks import refuse_stdout

    refuse_stdout("--out", out, "Parquet files (a folder)")
    _zoo()
    result = batch(
        model, list(inputs), out, ray=ray, workers=workers, save_media=save_media, variant=variant,
        max_poses=max_poses, threshold=threshold, static=static, device=device, mirror=mirror, offline=offline,
        options=_family_options(family_options) or None, resume=resume,
    )  # fmt: skip
    if result.failures:
        from posezoo.errors import InputError

        raise InputError(
            f"{len(result.failures)} of {result.inputs} inputs failed (first: {result.failures[0]})",
            f"each is listed under {result.out}/_errors/",
        )


@app.command()
def bench(
    model: Optional[str] = typer.Argument(None, help="Model name (see `posezoo list`; default: the zoo's default model, marked * there)."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Model variant (see `posezoo info MODEL`)."),
    image: Optional[Path] = typer.Option(
        None, "-i", "--input", help="Bench on a 640x480 pan-and-zoom clip over this image (default: the bundled sample)."
    ),
    video: Optional[Path] = typer.Option(None, "-v", "--video", help="Bench on this video file (looped when short)."),
    frames: int = typer.Option(200, "--frames", min=1, help="Frames timed per mode (after the warm-up)."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Frames run before timing starts."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (auto: best onnxruntime provider present)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    mirror: Optional[str] = MirrorOpt,
    offline: bool = OfflineOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Time MODEL's video pipeline per stage, static and tracking, against its bare onnxruntime models."""
    _quiet(quiet)
    _check_device(device)
    from posezoo.drivers.bench import open_input, run_bench

    if image is not None and video is not None:
        raise typer.BadParameter("give either -i or -v, not both")
    zoo = _zoo()
    model = model or zoo.registry.default()
    resolution = zoo.resolve(model, variant)
    frames_in = open_input(image, video)
    loaded = resolution.load(device=device, mirror=mirror, offline=offline, progress=True)
    report = run_bench(loaded, frames_in, frames=frames, warmup=warmup, model_name=model)
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.table())


@app.command("eval")
def eval_cmd(
    models: List[str] = typer.Argument(
        ..., help="Models to compare (see `posezoo list`); MODEL:VARIANT picks a variant (see `posezoo info MODEL`)."
    ),
    ann: Path = typer.Option(..., "--ann", help="COCO person-keypoint annotation file (17 keypoints, or COCO-WholeBody's 133)."),
    images: Path = typer.Option(..., "--images", help="Folder holding the annotation file's images (by file_name)."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Variant for models named without one."),
    max_poses: Optional[int] = typer.Option(
        None, "--max-poses", min=1, help="At most this many people per image (default 20, COCO's; lowered to a model's limit)."
    ),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Person-score threshold (default: each model's)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the scores (all ten COCO numbers; per part on COCO-WholeBody) as JSON (-: to standard output, the table to stderr)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (auto: best onnxruntime provider present)."),
    mirror: Optional[str] = MirrorOpt,
    offline: bool = OfflineOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Compare MODELs on a COCO keypoint annotation file and its images: AP, AP50, AP75, AR (pycocotools' COCOeval), PCK@0.2.

    A COCO-WholeBody file (133 keypoints) is scored per part too: body, foot, face, left and right hand
    (each with its own sigmas), and whole-body AP over all 133."""
    _quiet(quiet)
    _check_device(device)
    from posezoo.drivers.evaluate import evaluate, report, table, write_report
    from posezoo.io.sinks import check_writable, data_stdout, data_stream, is_stdout, stdout_error

    _zoo()
    if is_stdout(json_out):  # --json -: the scores on stdout, the table on stderr
        with data_stdout():
            evalset, scores = evaluate(
                models, ann, images, variant=variant, max_poses=max_poses, threshold=threshold,
                device=device, mirror=mirror, offline=offline,
            )  # fmt: skip
            typer.echo(table(evalset, scores), err=True)
            try:
                data_stream().write(json.dumps(report(evalset, scores), indent=2) + "\n")
                data_stream().flush()
            except OSError as exc:
                raise stdout_error(exc) from None
        return
    if json_out is not None:
        check_writable(json_out)
    evalset, scores = evaluate(
        models, ann, images, variant=variant, max_poses=max_poses, threshold=threshold,
        device=device, mirror=mirror, offline=offline,
    )  # fmt: skip
    typer.echo(table(evalset, scores))
    if json_out is not None:
        write_report(json_out, evalset, scores)
        print(f"posezoo: wrote {json_out}", file=sys.stderr)


@app.command("serve")
def serve_cmd(
    models: Optional[List[str]] = typer.Argument(
        None, help="Models to serve, MODEL or MODEL:VARIANT (default: the zoo's default model); the first is the page's default."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; any but loopback needs an API key."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port, printed at start)."),
    api_key: Optional[str] = typer.Option(
        None, "--api-key", envvar="POSEZOO_API_KEY", help="Bearer token required on /v1/* and /metrics (prefer the environment variable)."
    ),
    ray: Optional[str] = typer.Option(
        None, "--ray", help="Deploy on Ray Serve: 'local' (start Ray here) or a cluster address ('auto', ray://HOST:10001)."
    ),
    replicas: int = typer.Option(1, "--replicas", min=1, help="Ray Serve replicas (each loads the models once)."),
    workers: int = typer.Option(0, "--workers", min=0, help="Model runs at once, per process or replica, each with cores / workers threads (0: one per core)."),
    max_queue: int = typer.Option(16, "--max-queue", min=0, help="Requests that may wait for a worker; past that: 503 with Retry-After."),
    max_body: int = typer.Option(16 << 20, "--max-body", min=1, help="Largest request body or stream frame, in bytes."),
    max_pixels: int = typer.Option(50_000_000, "--max-pixels", min=1, help="Largest image, width x height (read from its header before decoding)."),
    max_streams: int = typer.Option(16, "--max-streams", min=1, help="WebSocket streams open at once."),
    max_fps: float = typer.Option(30.0, "--max-fps", help="Frames per second one stream may send; more are dropped (and counted)."),
    request_timeout: float = typer.Option(30.0, "--request-timeout", help="Seconds from a request's arrival to its answer (408 / 504 past it)."),
    idle_timeout: float = typer.Option(60.0, "--idle-timeout", help="Seconds a stream or a kept-alive connection may stay silent."),
    drain_timeout: float = typer.Option(30.0, "--drain-timeout", help="Seconds Ctrl-C / SIGTERM waits for requests in flight."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (auto: best onnxruntime provider present)."),
    mirror: Optional[str] = MirrorOpt,
    offline: bool = OfflineOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Serve models over HTTP and WebSocket, with a webcam page at / (pip install "posezoo[serve]").

    Models are fetched, verified and converted at start, never at request time. Ctrl-C or SIGTERM
    drains the requests in flight and exits 0. The server documents its API at /docs (OpenAPI at
    /openapi.json)."""
    _quiet(quiet)
    if ray is None or ray == "local":  # (a cluster's workers may have the GPU this machine lacks)
        _check_device(device)
    from posezoo.serve import Limits, ServeConfig, parse_model_arg, serve

    _zoo()
    limits = Limits(
        max_body_bytes=max_body, max_pixels=max_pixels, workers=workers, max_queue=max_queue, max_streams=max_streams,
        max_fps=max_fps, request_timeout=request_timeout, idle_timeout=idle_timeout, drain_timeout=drain_timeout,
    )  # fmt: skip
    config = ServeConfig(
        models=tuple(parse_model_arg(m) for m in models or []), host=host, port=port, api_key=api_key,
        device=device, mirror=mirror, offline=offline, limits=limits,
    )  # fmt: skip
    serve(config, ray=ray, replicas=replicas)


# --------------------------------------------------------------------------------------------- zoo


@app.command("list")
def list_cmd() -> None:
    """List the models of the zoo: variants, plugin, whether their files are cached."""
    from posezoo.supply.cache import Cache

    zoo = _zoo()
    cache = Cache()
    rows = []
    for name, entry in zoo.registry.models.items():
        variants = ", ".join(v + ("*" if v == entry.default_variant else "") for v in entry.variants)
        cached = [v for v, var in entry.variants.items() if all(cache.is_cached(f) for f in var.all_files())]
        mark = "*" if name == zoo.registry.default() else ""
        rows.append([name + mark, variants, entry.plugin, ", ".join(cached) if cached else "no"])
    _echo_table(rows, ["MODEL (*default)", "VARIANTS (*default)", "PLUGIN", "CACHED"])


def model_info(name: str) -> dict:
    """Everything `posezoo info` shows, as a JSON-able dict: the model resolved (its capabilities
    known from its spec and family) and its files' cache state; no weights are downloaded."""
    from posezoo.supply.cache import Cache
    from posezoo.io.coco import describe_mapping
    from posezoo.io.wholebody import describe_wholebody
    from posezoo.inference.model import describe_spec

    resolution = _zoo().resolve(name)
    entry, spec = resolution.entry, resolution.spec
    cache = Cache()
    return {
        "model": entry.name,
        "description": entry.description,
        "plugin": entry.plugin,
        "family": resolution.family.name,
        "licence": entry.licence,
        "source": entry.source,
        "paper": entry.paper,
        "default_variant": entry.default_variant,
        **describe_spec(spec),
        **resolution.capabilities.describe(),  # keypoint_names, skeleton, features, max_poses, options
        **_coco_info(spec, describe_mapping),
        **describe_wholebody(spec),
        "variants": {
            vname: {
                "description": var.description,
                **_variant_keypoints(spec, vname),
                "files": {
                    role: {
                        "name": f.name,
                        "url": f.url,
                        "digest": f.digest,
                        "size": f.size,
                        "format": f.format,
                        "licence": f.licence or entry.licence,
                        "cached": all(cache.is_cached(x) for x in f.with_shards()),
                        "path": str(cache.path(f)),
                        "shards": [{"name": x.name, "url": x.url, "digest": x.digest, "size": x.size,
                                    "member": x.member} for x in f.shards],
                        "member": f.member,
                        "archive": None if f.archive is None else {
                            "name": f.archive.name, "url": f.archive.url, "digest": f.archive.digest,
                            "size": f.archive.size, "format": f.archive.format,
                            "cached": cache.is_cached(f.archive),
                        },
                    }
                    for role, f in var.files.items()
                },
            }
            for vname, var in entry.variants.items()
        },
    }


def _variant_keypoints(spec, variant: str) -> dict:
    """``{"keypoints": K}`` for a variant whose spec (``spec.for_variant``) has other keypoints than the
    default's; else nothing."""
    for_variant = getattr(spec, "for_variant", None)
    other = for_variant(variant) if callable(for_variant) else spec
    return {} if tuple(other.keypoint_names) == tuple(spec.keypoint_names) else {"keypoints": len(other.keypoint_names)}


def _coco_info(spec, describe_mapping) -> dict:
    try:
        return describe_mapping(spec)
    except ValueError as exc:  # a plugin's bad coco_keypoints: say so, show the rest
        return {"coco_keypoints": None, "coco_summary": f"invalid mapping: {exc}"}


@app.command()
def info(
    model: str = typer.Argument(..., help="Model name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a model: plugin, family, stages, keypoints, skeleton, features, max poses, options, files and cache state.

    Nothing is downloaded: what a model can do is known from its spec and family."""
    data = model_info(model)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    lines = [
        f"{data['model']}: {data['description']}",
        f"plugin:     {data['plugin']}",
        f"family:     {data['family']}",
        f"licence:    {data['licence']}",
        f"source:     {data['source']}",
        f"paper:      {data['paper'] or '-'}",
    ]
    for line in data.get("summary", []):
        stage, _, rest = line.partition(": ")
        lines.append(f"{stage + ':':<11} {rest}" if rest else line)
    lines += [
        f"keypoints:  {', '.join(data['keypoint_names'])}",
        f"skeleton:   {' '.join(f'{a}-{b}' for a, b in data['skeleton'])}",
        f"features:   {', '.join(data['features']) or 'none'}",
        f"max-poses:  {data['max_poses'] if data['max_poses'] is not None else 'no limit'}",
    ]
    options = data["options"]
    for i, (oname, o) in enumerate(options.items()):
        text = f"{oname}={o['default']!r}" + (f": {o['help']}" if o["help"] else "")
        lines.append(f"{'options:' if i == 0 else '':<11} {text}")
    if not options:
        lines.append("options:    none")
    lines += [f"coco-17:    {data['coco_summary']}", f"wholebody:  {data['wholebody_summary']}", "variants:"]
    for vname, var in data["variants"].items():
        default = " (default)" if vname == data["default_variant"] else ""
        more = f" ({var['keypoints']} keypoints)" if "keypoints" in var else ""
        lines.append(f"  {vname}{default}: {var['description']}".rstrip(": ") + more)
        for role, f in var["files"].items():
            size = f"{f['size']} bytes" if f["size"] else "size unknown"
            state = "cached" if f["cached"] else "not cached"
            lines.append(f"    {role}: {f['name']} [{f['format']}, {size}, {f['licence']}, {state}]")
            if f["archive"]:
                a = f["archive"]
                lines.append(f"      member: {f['member']} of {a['name']} [{a['format']}, {a['size'] or '?'} bytes]")
                lines.append(f"      url:    {a['url']}")
                lines.append(f"      archive digest: {a['digest']}")
            else:
                lines.append(f"      url:    {f['url']}")
            lines.append(f"      digest: {f['digest']}")
            for shard in f["shards"]:
                inside = f", member {shard['member']}" if shard["member"] else ""
                lines.append(f"      shard:  {shard['name']} ({shard['size']} bytes, {shard['digest']}{inside})")
    typer.echo("\n".join(lines))


@app.command()
def plugins() -> None:
    """List the loaded plugins, where they came from, their version, families and models."""
    zoo = _zoo()
    rows = [
        [p.name, p.version, ", ".join(p.families) or "-", ", ".join(p.models) or "-", p.origin]
        for p in zoo.plugins.plugins.values()
    ]
    _echo_table(rows, ["PLUGIN", "VERSION", "FAMILIES", "MODELS", "FROM"])


# --------------------------------------------------------------------------------------------- files


@app.command()
def fetch(
    model: str = typer.Argument(..., help="Model name."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Variant to fetch (default: the model's default)."),
    all_variants: bool = typer.Option(False, "--all-variants", help="Fetch every variant (and print each one's files)."),
    mirror: Optional[str] = MirrorOpt,
    offline: bool = OfflineOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Download, verify and convert a model's files into the cache.

    Prints ROLE: PATH for each file of the variant; with --all-variants, VARIANT ROLE: PATH for each
    file of every variant."""
    _quiet(quiet)
    from posezoo.supply.cache import Cache
    from posezoo.zoo.resolve import model_files

    # the registry alone: the cache verbs need no plugin (a model whose plugin is missing can be fetched)
    entry = _zoo().model(model)
    cache = Cache()
    paths = model_files(entry, variant, all_variants=all_variants, cache=cache, mirror=mirror, offline=offline)
    if not all_variants:
        for role, path in paths.items():
            typer.echo(f"{role}: {path}")
        return
    for name, var in entry.variants.items():
        for role, f in var.files.items():
            typer.echo(f"{name} {role}: {cache.onnx_path(f)}")


@cache_app.command("path")
def cache_path() -> None:
    """Print the cache folder ($POSEZOO_HOME or the platform cache folder)."""
    from posezoo.supply.cache import cache_home

    typer.echo(str(cache_home()))


@cache_app.command("list")
def cache_list() -> None:
    """List cached files: model, file, size, verified."""
    from posezoo.supply.cache import Cache

    records = Cache().entries(_zoo().registry)
    if not records:
        typer.echo("the cache is empty")
        return
    rows = [
        [", ".join(r.models) or "-", r.name + (f" (from {r.archive})" if r.archive else ""), str(r.size),
         "yes" if r.verified else "NO", "-" if r.is_archive else "yes" if r.converted else "no"]
        for r in records
    ]
    _echo_table(rows, ["MODEL", "FILE", "BYTES", "VERIFIED", "CONVERTED"])


@cache_app.command("verify")
def cache_verify() -> None:
    """Re-hash every cached file; remove and report corrupt ones (exit 1 if any)."""
    from posezoo.supply.cache import Cache

    bad = Cache().verify(_zoo().registry)
    for item in bad:
        typer.echo(f"posezoo: {'removed corrupt' if item.removed else 'corrupt'} file: {item}", err=True)
    if bad:
        raise typer.Exit(1)
    typer.echo("all cached files verified")


@cache_app.command("clear")
def cache_clear(model: Optional[str] = typer.Argument(None, help="Only this model's files.")) -> None:
    """Delete cached files (all, or one model's)."""
    from posezoo.supply.cache import Cache

    zoo = _zoo()
    entry = zoo.model(model) if model else None
    cache = Cache()
    cleared = cache.clear(entry, zoo.registry)
    for name in cleared.removed:
        typer.echo(f"removed {name}")
    if cleared.failed:
        path, why = cleared.failed[0]
        more = f" and {len(cleared.failed) - 1} more" if len(cleared.failed) > 1 else ""
        raise FetchError(
            f"could not remove {path}{more} from the cache {cache.root}: {why}",
            "make the cache writable (or remove it by hand) and run `posezoo cache clear` again",
        )
    what = f"the files of {model}" if model else "the cache"
    typer.echo(f"cleared {what}: {len(cleared.removed)} file(s) removed" if cleared.removed else f"{what}: nothing to remove")


@cache_app.command("export")
def cache_export(dest: Path = typer.Argument(..., help="Folder to write the mirror to.")) -> None:
    """Write every verified cached file to DEST as a mirror (use it with --mirror DEST)."""
    from posezoo.supply.cache import Cache
    from posezoo.io.sinks import refuse_stdout

    refuse_stdout("DEST", dest, "a mirror (a folder)")
    written = Cache().export(dest, _zoo().registry)
    for item in written.skipped:
        typer.echo(f"posezoo: warning: not exported: {item.name}: {item.problem} (see `posezoo cache verify`)", err=True)
    typer.echo(f"exported {len(written)} files to {dest}")
    if written.skipped:
        raise typer.Exit(1)


@app.command()
def convert(
    src: Path = typer.Argument(..., help="A .tflite file, or a TF.js graph model's model.json (its .bin shards beside it)."),
    out: Path = typer.Option(..., "-o", "--output", help="The .onnx file to write."),
) -> None:
    """Convert a TFLite or TF.js model to ONNX (exact, NCHW inside, same inputs and outputs)."""
    from posezoo.supply.convert import convert_file, convert_tfjs_file
    from posezoo.io.sinks import refuse_stdout

    refuse_stdout("-o", out, "an ONNX model")
    if src.suffix.lower() == ".json":
        convert_tfjs_file(src, out)
    else:
        convert_file(src, out)
    typer.echo(f"wrote {out}")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"posezoo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version."),
) -> None:
    """Run pose-estimation models from a verified model zoo."""


# What --help shows for each value: a word a user reads (PATH, N, 0..1), never a type name such as
# <list[Path]> or <int range> (what newer typer releases print by default). By parameter name; else
# by type (int: N, float: NUMBER, Path: PATH), else the name in capitals.
_METAVARS = {
    "input": "PATH", "video": "PATH|INDEX", "savepath": "PATH", "json_out": "PATH", "variant": "VARIANT",
    "threshold": "0..1", "device": "auto|cpu|cuda", "coco": "FILE", "coco_ann": "FILE", "world_plot": "FILE",
    "mirror": "URL|DIR", "ray": "ADDRESS", "image": "FILE", "ann": "FILE", "images": "DIR", "host": "HOST",
    "port": "PORT", "api_key": "KEY", "max_body": "BYTES", "max_pixels": "PIXELS", "max_fps": "FPS",
    "request_timeout": "SECONDS", "idle_timeout": "SECONDS", "drain_timeout": "SECONDS",
    # arguments
    "model": "MODEL", "models": "MODEL", "inputs": "INPUT", "dest": "DIR", "src": "FILE",
}
_COMMAND_METAVARS = {("batch", "out"): "DIR|URI", ("convert", "out"): "FILE", ("bench", "video"): "FILE"}


def _metavar(command_name: str, param, hints: dict) -> str:
    found = _COMMAND_METAVARS.get((command_name, param.name)) or _METAVARS.get(param.name)
    if found:
        return found
    hint = hints.get(param.name)
    args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) is typing.Union else []
    hint = args[0] if len(args) == 1 else hint
    hint = (typing.get_args(hint) or [hint])[0] if typing.get_origin(hint) in (list, tuple) else hint
    return {int: "N", float: "NUMBER", Path: "PATH"}.get(hint, param.name.upper())


def _readable_help(command, name: str = "posezoo") -> None:
    """Give every parameter of the command tree a readable metavar (see _METAVARS); arguments show
    as MODEL, [MODEL] or INPUT... in the usage line and without a type beside them."""
    try:
        hints = typing.get_type_hints(getattr(command, "callback", None)) if getattr(command, "callback", None) else {}
    except Exception:  # (a hint that does not resolve: fall back to names)
        hints = {}
    for param in command.params:
        if param.param_type_name == "option" and (param.metavar is not None or getattr(param, "is_flag", False)):
            continue
        metavar = param.metavar or _metavar(name, param, hints)
        param.metavar = metavar
        if param.param_type_name == "argument":
            usage = (metavar if param.required else f"[{metavar}]") + ("..." if param.nargs != 1 else "")
            # (typer >= 0.16 renders arguments itself, as {model} and model <str>; older releases use the metavar)
            param._usage_display_name = lambda usage=usage: usage
            param.display_type_rich = lambda ctx: None
            param._rich_display_name = lambda metavar=metavar, many=param.nargs != 1: metavar + ("..." if many else "")
    for sub_name, sub in (getattr(command, "commands", None) or {}).items():
        _readable_help(sub, sub_name)


def command():
    """The click command tree of the app, as `posezoo` runs it (readable metavars)."""
    import typer.main

    tree = typer.main.get_command(app)
    _readable_help(tree)
    return tree


def _click_exceptions():
    """(ClickException, Abort) of the click typer runs on (typer's own copy in newer releases)."""
    click_exception = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    return click_exception, typer.Abort


_TERMINATED: list[int] = []  # SIGTERM received (see _on_sigterm)


def _on_sigterm(signum, frame) -> None:
    """SIGTERM (kill, timeout, docker stop) stops a command as Ctrl-C does: running work stops
    cleanly (workers included), then one line and exit code 143."""
    _TERMINATED.append(signum)
    raise KeyboardInterrupt


def _interrupted() -> None:
    if _TERMINATED:
        print("posezoo: terminated", file=sys.stderr)
        sys.exit(143)
    print("posezoo: interrupted", file=sys.stderr)
    sys.exit(130)


def _command_path(argv: list[str] | None) -> str:
    """``posezoo run`` for ``run -i``: the (sub)command the arguments name, for an error without one."""
    tree, path = command(), ["posezoo"]
    for token in sys.argv[1:] if argv is None else argv:
        subs = getattr(tree, "commands", None) or {}
        if token in subs:
            tree = subs[token]
            path.append(token)
        elif not token.startswith("-"):
            break
    return " ".join(path)


def _usage_error(exc, argv: list[str] | None = None) -> None:
    """A click usage error (unknown option, bad or missing value) as one line, ``posezoo: error: WHAT
    (see `posezoo COMMAND --help`)``, keeping click's "did you mean"; exit 2. Bare ``posezoo`` or
    ``posezoo cache`` still print their help."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        exc.show()
        sys.exit(exc.exit_code)
    message = " ".join(exc.format_message().split())
    possibilities = getattr(exc, "possibilities", None)
    if possibilities and getattr(exc, "option_name", None):  # click's NoSuchOption
        message = f"no such option: {exc.option_name}; did you mean {' or '.join(sorted(possibilities))}?"
    if message[1:2].islower():
        message = message[0].lower() + message[1:]
    message = message.rstrip(".")
    ctx = getattr(exc, "ctx", None)
    where = getattr(ctx, "command_path", None) or _command_path(argv)
    print(f"posezoo: error: {message} (see `{where} --help`)", file=sys.stderr)
    sys.exit(exc.exit_code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: one-line errors, no tracebacks for user errors, Ctrl-C is
    ``posezoo: interrupted`` (exit 130), SIGTERM ``posezoo: terminated`` (exit 143).

    The app runs with click's standalone mode off, so that Ctrl-C reaches this function instead of
    ending in click's own silent exit or "Aborted!".
    """
    click_exception, abort = _click_exceptions()
    import signal

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # (an ignored SIGTERM stays ignored)
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = command().main(args=argv, prog_name="posezoo", standalone_mode=False)
    except PosezooError as exc:
        print(f"posezoo: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, abort):
        _interrupted()
    except click_exception as exc:  # a usage error: one line, click's exit code (2)
        _usage_error(exc, argv)
    except Exception as exc:  # a bug, not a user error: one line unless debugging
        from posezoo.errors import environment_error

        found = environment_error(exc)  # the machine's fault (full disk, ulimit -n, deleted folder)
        if found is not None and not os.environ.get("POSEZOO_DEBUG"):
            print(f"posezoo: error: {found}", file=sys.stderr)
            sys.exit(found.exit_code)
        if os.environ.get("POSEZOO_DEBUG"):
            raise
        print(
            f"posezoo: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
            "(set POSEZOO_DEBUG=1 for the traceback and please report it)",
            file=sys.stderr,
        )
        sys.exit(70)
    if code == 130:  # (typer turns Ctrl-C into exit code 130 when it catches it first)
        _interrupted()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
