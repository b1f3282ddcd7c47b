"""Training the shipped models: `train classifiers|pnc|fixed-rate|costs|dqn`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from edgebus.cli.app import train_app
from edgebus.cli.common import (
    ThreadsOption,
    assets_option,
    fail,
    int_list,
    model_errors,
    wide_console,
)


@train_app.command("classifiers")
def train_classifiers(
    out: Annotated[Path, typer.Option(help="Folder for the ONNX models and cards.")] = Path(
        "edgebus/assets"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the procedural data and training.")] = 0,
    train_images: Annotated[int, typer.Option(min=10, help="Training images.")] = 12000,
    epochs: Annotated[int, typer.Option(min=0, help="Epochs per model; 0 = recipe.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    data: Annotated[
        str,
        typer.Option(
            help="shapes (the procedural set, 64 px) or fashion-mnist (Debian's "
            "dataset-fashion-mnist, 28 px; writes fashion_*_classifier)."
        ),
    ] = "shapes",
) -> None:
    """Train the strong (edge) and weak (camera) classifiers and export them to ONNX."""
    from dataclasses import replace

    from edgebus.ml.train_classifiers import (
        DEFAULT_RECIPES,
        FASHION_RECIPES,
        DataRecipe,
        FashionData,
    )
    from edgebus.ml.train_classifiers import train_and_export_classifiers as run_training

    if data not in ("shapes", "fashion-mnist"):
        fail(f"--data {data!r}: expected shapes or fashion-mnist")
    fashion = data == "fashion-mnist"
    base = FASHION_RECIPES if fashion else DEFAULT_RECIPES
    recipes = tuple(replace(r, epochs=epochs) if epochs else r for r in base)
    source = FashionData(seed=seed) if fashion else DataRecipe(seed=seed, train=train_images)
    try:
        cards = run_training(out, source, recipes, progress, "fashion_" if fashion else "")
    except model_errors() as exc:
        fail(str(exc), 1)
    table = Table(title=f"classifiers in {out} ({data})")
    for column in ("model", "params", "multiply-adds", "test top-1", "test top-5", "train s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for card in cards.values():
        table.add_row(
            card["name"],
            f"{card['parameters']:,}",
            f"{card['multiply_adds']:,}",
            f"{100 * card['test_top1']:.2f}%",
            f"{100 * card['test_top5']:.2f}%",
            f"{card['train_seconds']:.0f}",
        )
    wide_console().print(table)


def _train_autoencoders(
    which: str,
    out: Path,
    classifiers: Path,
    seed: int,
    image_size: int,
    stride: int,
    scale: float,
    train_images: int,
    distil: bool,
    threads: int,
    progress: bool,
    fixed_k: tuple[int, ...] = (2, 4, 6, 8, 10),
    data: str = "shapes",
) -> None:
    from edgebus.ml.train_pnc import DATA_SIZES, PNC_DATA, train_and_export

    if data not in PNC_DATA:
        fail(f"--data: expected one of {', '.join(PNC_DATA)}, got {data!r}")
    image_size = DATA_SIZES.get(data, image_size)  # Fashion-MNIST's and the photos' own
    try:
        cards = train_and_export(
            which, out, classifiers, seed, image_size, stride, 10, scale, train_images, distil,
            threads, progress, fixed_k, data,
        )  # fmt: skip
    except model_errors() as exc:
        fail(str(exc))
    table = Table(title=f"{which} models in {out}")
    for column in ("model", "features", "bytes/unit (train)", "top-1 by kept features", "train s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for card in cards:
        top1 = card.get("test", {}).get("top1_by_features", [])
        table.add_row(
            card["name"],
            "x".join(str(v) for v in card["feature_shape"]),
            f"{sum(card['mean_unit_bytes_train']) / len(card['mean_unit_bytes_train']):.1f}",
            " ".join(f"{100 * v:.0f}" for v in top1) or "-",
            f"{card['train_seconds']:.0f}",
        )
    wide_console().print(table)


_AE_OUT = Annotated[Path, typer.Option(help="Folder for models, tables and cards.")]
_AE_CLF = Annotated[Path, typer.Option(help="Folder holding strong_classifier.json.")]
_AE_SIZE = Annotated[int, typer.Option(min=16, help="Image size in pixels.")]
_AE_STRIDE = Annotated[int, typer.Option(help="Total encoder stride: 2, 4, 7 or 8.")]
_AE_SCALE = Annotated[float, typer.Option(min=0.0001, help="Multiplier on training steps.")]
_AE_TRAIN = Annotated[int, typer.Option(min=10, help="Training images.")]
_AE_DISTIL = Annotated[bool, typer.Option(help="Run stage 2 (distillation).")]
_AE_DATA = Annotated[
    str,
    typer.Option(
        help="shapes (procedural, --image-size), fashion-mnist (28 px; the teacher is "
        "fashion_strong_classifier, models are named fashion_*) or photos (224 px crops of "
        "scikit-image's photos, distilled from the ImageNet classifier; use --stride 7)."
    ),
]


@train_app.command("pnc")
def train_pnc(
    out: _AE_OUT = Path("edgebus/assets"),
    classifiers: _AE_CLF = Path("edgebus/assets"),
    seed: Annotated[int, typer.Option(help="Seed of the data split.")] = 0,
    image_size: _AE_SIZE = 64,
    stride: _AE_STRIDE = 4,
    scale: _AE_SCALE = 1.0,
    train_images: _AE_TRAIN = 12000,
    distil: _AE_DISTIL = True,
    threads: ThreadsOption = 2,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    data: _AE_DATA = "shapes",
) -> None:
    """Train PNC (stochastic taildrop, MSE then distillation) and ship encoder, decoder and
    Huffman tables. The 224 px timing model: --image-size 224 --stride 7 --no-distil."""
    _train_autoencoders(
        "pnc", out, classifiers, seed, image_size, stride, scale, train_images, distil,
        threads, progress, data=data,
    )  # fmt: skip


@train_app.command("fixed-rate")
def train_fixed_rate(
    out: _AE_OUT = Path("edgebus/assets"),
    classifiers: _AE_CLF = Path("edgebus/assets"),
    seed: Annotated[int, typer.Option(help="Seed of the data split.")] = 0,
    image_size: _AE_SIZE = 64,
    stride: _AE_STRIDE = 4,
    scale: _AE_SCALE = 1.0,
    train_images: _AE_TRAIN = 12000,
    distil: _AE_DISTIL = True,
    threads: ThreadsOption = 2,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    k: Annotated[str, typer.Option("--k", help="Feature counts to train.")] = "2,4,6,8,10",
    data: _AE_DATA = "shapes",
) -> None:
    """Train the fixed-rate comparators (K = 2, 4, 6, 8, 10 features, no taildrop)."""
    fixed_k = tuple(int_list(k, "--k"))
    _train_autoencoders(
        "fixed-rate", out, classifiers, seed, image_size, stride, scale, train_images, distil,
        threads, progress, fixed_k, data,
    )  # fmt: skip


@train_app.command("costs")
def train_costs(
    out: Annotated[Path, typer.Option(help="The costs npz to write.")] = Path(
        "edgebus/assets/offloading_costs_top1.npz"
    ),
    images: Annotated[int, typer.Option(min=8, help="Held-out images to score.")] = 30_000,
    k: Annotated[int, typer.Option("--k", min=1, max=10, help="Top-k loss.")] = 1,
    assets: Annotated[Path | None, typer.Option(help="Models folder (default: shipped).")] = None,
    threads: Annotated[int, typer.Option(min=1, max=16, help="onnxruntime threads.")] = 2,
    data: Annotated[
        str,
        typer.Option(
            help="shapes (the shipped classifiers on fresh shapes) or fashion-mnist (the "
            "fashion_* classifiers on the 15,000 images they were not trained on; "
            "--images does not apply)."
        ),
    ] = "shapes",
) -> None:
    """Score the weak and strong classifiers on held-out images and fit the offloading metric:
    the costs npz (wcost, scost, metric and the fitted metric) that the offloading policies
    and cameras use."""
    from edgebus.experiments.offloading_costs import (
        classifier_costs,
        fashion_classifier_costs,
        save_classifier_costs,
    )

    if data not in ("shapes", "fashion-mnist"):
        fail(f"--data {data!r}: expected shapes or fashion-mnist")
    try:
        with Progress(console=wide_console()) as bar:
            if data == "fashion-mnist":
                task = bar.add_task("costs", total=15_000)
                arrays, fitted = fashion_classifier_costs(
                    k, assets_option(assets), threads, lambda n: bar.advance(task, n)
                )
            else:
                task = bar.add_task("costs", total=images)
                arrays, fitted = classifier_costs(
                    images, k, assets_option(assets), threads, lambda n: bar.advance(task, n)
                )
        save_classifier_costs(out, arrays, fitted)
    except model_errors(ValueError) as exc:
        fail(str(exc))
    weak, strong = arrays["wcost"].mean(), arrays["scost"].mean()
    wide_console().print(
        f"wrote {out}: {len(arrays['wcost'])} images, top-{k} loss weak {weak:.4f}, "
        f"strong {strong:.4f}"
    )


@train_app.command("dqn")
def train_dqn(
    out: Annotated[Path, typer.Option(help="Folder for the ONNX policy and card.")] = Path(
        "edgebus/assets"
    ),
    name: Annotated[str, typer.Option(help="File stem; default from the traces.")] = "",
    costs: Annotated[Path | None, typer.Option(help="Costs npz (default: shipped).")] = None,
    rate: Annotated[float, typer.Option(help="Token rate r per slot.")] = 0.1,
    bucket: Annotated[float, typer.Option(help="Bucket depth b in tokens.")] = 4.0,
    trace: Annotated[str, typer.Option(help="Image trace: locreset or iid.")] = "locreset",
    spread: Annotated[float, typer.Option(help="locreset spread sp.")] = 0.1,
    rprob: Annotated[float, typer.Option(help="locreset reset probability.")] = 0.1,
    arrivals: Annotated[str, typer.Option(help="periodic or markov.")] = "periodic",
    gaps: Annotated[str, typer.Option(help="Markov gaps I1,I2.")] = "1,3",
    tprob: Annotated[str, typer.Option(help="Markov switching tprob1,tprob2.")] = "0.001,0.0005",
    history: Annotated[int, typer.Option(min=2, help="History T (T-1 metrics in X).")] = 97,
    iterations: Annotated[int, typer.Option(min=1, help="Q iterations.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of traces and weights.")] = 0,
    threads: ThreadsOption = 1,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a DQN offloading policy on the training split of a costs file and export it."""
    from edgebus.experiments.offloading import scenario_from_options, train_policy

    try:
        scenario = scenario_from_options(rate, bucket, trace, spread, rprob, arrivals, gaps, tprob)
        with Progress(console=wide_console(), disable=not progress) as bar:
            task = bar.add_task("dqn", total=iterations)
            card = train_policy(
                out, name, costs, scenario, history, iterations, seed, threads,
                lambda i, loss: bar.update(task, completed=i, description=f"dqn loss {loss:.4f}"),
            )  # fmt: skip
    except model_errors(ValueError) as exc:
        fail(str(exc))
    wide_console().print(f"wrote {card} and {card.with_suffix('.onnx')}")


@train_app.command("imagenet")
def train_imagenet(
    out: Annotated[
        Path | None, typer.Option(help="Folder for the ONNX model (default: the package's).")
    ] = None,
) -> None:
    """Export the ImageNet-1k classifier (EfficientNet-Lite0) for real photos to ONNX, from
    the installed packages; `make setup` runs this once."""
    from edgebus.ml.imagenet_export import export_imagenet_classifier

    try:
        report = export_imagenet_classifier(out)
    except OSError as exc:
        fail(f"model folder {out or 'edgebus/assets'}: {exc.strerror or exc}", 1)
    except model_errors() as exc:
        fail(str(exc), 1)
    print(
        f"wrote {report.path} ({report.path.stat().st_size / 1e6:.1f} MB) in "
        f"{report.seconds:.0f} s; logits within {report.max_logit_difference:.1e} of torch"
    )
