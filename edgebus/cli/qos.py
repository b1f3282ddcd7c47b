"""The QoS orchestrator's commands: `qos set|show|diag` and `models list|train|search`
(`experiment qos` is in qos_experiment.py)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgebus.cli.app import app
from edgebus.cli.common import (
    fail,
    one_line_errors,
    settings_from,
    setup_logging,
    tool_bus,
    tool_settings,
)

if TYPE_CHECKING:
    from edgebus.messages import QosDecision

qos_app = typer.Typer(help="QoS requests to the orchestrator.", no_args_is_help=True)
models_app = typer.Typer(help="The orchestrator's model pool.", no_args_is_help=True)
# Each command makes its own Console: one made at import would keep the terminal width
# (COLUMNS) of whichever run imported the module first.

_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmg]?)(bps|bit/s|b/s)?\s*$", re.IGNORECASE)


def parse_rate(text: str) -> float:
    """'200kbps', '1.5Mbps', '9600' (bit/s) -> bit/s; anything else is a one-line error."""
    match = _RATE.match(text)
    if match is None:
        raise _fail(f"--bandwidth: expected a bit rate such as 200kbps or 1.5Mbps, got {text!r}")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    return float(match.group(1)) * scale


PoolOption = Annotated[
    Path | None,
    typer.Option(
        "--pool",
        help="Model pool folder (default: qos_pool setting, else "
        "<data_dir>/qos_pool, else the shipped Fashion-MNIST pool, or the accelerometer "
        "one where Fashion-MNIST is not installed).",
    ),
]
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.")]
BrokerOption = Annotated[str | None, typer.Option("--broker", "-b", help="Broker URL.")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    fail(message, code)
    return typer.Exit(code)  # unreachable: fail raises


def _pool(pool: Path | None, config: Path | None = None):
    from edgebus.qos.model_store import ModelPool, PoolError, resolve_pool

    if pool is None:
        settings = settings_from(config)
        pool = resolve_pool(settings.qos_pool, settings.data_dir)
    try:
        return ModelPool.load(pool)
    except PoolError as exc:
        raise _fail(str(exc)) from None


def _print_decision(d: QosDecision) -> None:
    console = Console()
    verdict = "meets the target" if d.meets_target else "does NOT meet the target"
    console.print(
        f"model {d.model_id} ({d.configuration}, d = {d.latent_dim}), estimated accuracy "
        f"{d.estimated_accuracy:.3f}, {verdict}"
    )
    for reason in d.reasons:
        console.print(f"  - {reason}")


@qos_app.command("set")
def qos_set(
    accuracy: Annotated[float, typer.Option(min=0.0, max=1.0, help="Target accuracy, 0..1.")],
    bandwidth: Annotated[str, typer.Option(help="Available uplink, e.g. 200kbps.")],
    edge_cpu: Annotated[float, typer.Option(min=0.0, max=1.0, help="Free edge CPU share.")] = 1.0,
    edge_memory: Annotated[float, typer.Option(min=0.0, help="Free edge memory, MB.")] = 0.0,
    image_quality: Annotated[
        float | None,
        typer.Option(min=0.0, help="Reconstruction quality target, PSNR dB (ECCD)."),
    ] = None,
    coordinator: Annotated[str, typer.Option(help="Coordinator node id.")] = "coordinator",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Decide locally from --pool; publish nothing.")
    ] = False,
    pool: PoolOption = None,
    config: ConfigOption = None,
    broker: BrokerOption = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the reply.")] = 5.0,
) -> None:
    """Send a QoS request; print the model the orchestrator chose and why."""
    console = Console()
    from edgebus.messages import QosDecision, QosRequest

    request = QosRequest("cli", accuracy, parse_rate(bandwidth), edge_cpu, edge_memory,
                         image_quality)  # fmt: skip
    if dry_run:
        from edgebus.coordinator.orchestrator import decide_for_pool

        try:
            d = decide_for_pool(_pool(pool, config), request)
        except LookupError as exc:
            raise _fail(str(exc)) from None
        _print_decision(QosDecision(d.model_id, 0, d.configuration, d.d, d.estimated_accuracy,
                                    d.meets_target, False, list(d.reasons)))  # fmt: skip
        return
    with one_line_errors():
        settings = tool_settings(config, broker=broker)
        setup_logging("error")  # the outcome is one line; retries are not news

        async def ask() -> QosDecision:
            bus = tool_bus(settings, "qos")
            await bus.start(timeout=timeout)
            try:
                service = bus.topics.request(coordinator, "qos")
                reply = await bus.request(service, request, timeout=timeout)
            finally:
                await bus.close()
            if not isinstance(reply, QosDecision):
                raise _fail(f"coordinator {coordinator} answered {reply.TYPE_NAME}", 1)
            return reply

        decision = asyncio.run(ask())
    _print_decision(decision)
    console.print("switch published" if decision.switched else "current model kept")


@qos_app.command("show")
def qos_show(
    config: ConfigOption = None,
    broker: BrokerOption = None,
    wait: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for it.")] = 2.0,
) -> None:
    """The model in force: the retained model/switch event."""
    console = Console()
    from edgebus.messages import ModelSwitch, to_dict

    with one_line_errors():
        settings = tool_settings(config, broker=broker)
        setup_logging("error")  # the outcome is one line; retries are not news

        async def read() -> ModelSwitch | None:
            bus = tool_bus(settings, "qos-show")
            await bus.start(timeout=wait)
            try:
                sub = await bus.subscribe(bus.topics.model_switch(), qos=1)
                try:
                    message = (await sub.get(wait)).message
                except TimeoutError:
                    return None
                return message if isinstance(message, ModelSwitch) else None
            finally:
                await bus.close()

        switch = asyncio.run(read())
    if switch is None:
        raise _fail(f"no model/switch retained on site {settings.site} within {wait:g} s", 1)
    for key, value in to_dict(switch).items():
        console.print(f"{key}: {value}")


@qos_app.command("diag")
def qos_diag(pool: PoolOption = None, config: ConfigOption = None) -> None:
    """Diagnostics of the pool (Sec. 4.2): P rows, compression range (Eq. 5), QoS range (Eq. 6)
    and the features needed to move up a QoS level."""
    console = Console()
    loaded = _pool(pool, config)
    for configuration in ("ECO", "ECCD"):
        qmap = loaded.qos_map(configuration)
        if not qmap.qos_of:
            continue
        table = Table(title=f"P for {configuration} ({loaded.dataset}, step {loaded.rule.step:g})")
        for column in ("QoS level", "latent sizes", "compression range (Eq. 5)"):
            table.add_column(column, justify="right")
        for row in reversed(qmap.levels()):
            table.add_row(f"{row.level:.2f}", ", ".join(map(str, row.sizes)),
                          str(row.compression_range))  # fmt: skip
        console.print(table)
        console.print(f"QoS range (Eq. 6): {qmap.qos_range():.3f}")
        for t in qmap.transitions():
            console.print(f"  {t.from_level:.2f} -> {t.to_level:.2f}: d {t.from_d} -> {t.to_d} "
                          f"({t.added_features:+d} features)")  # fmt: skip


@models_app.command("list")
def models_list(pool: PoolOption = None, config: ConfigOption = None) -> None:
    """Every model in the pool with its measured QoS and checksum."""
    console = Console()
    loaded = _pool(pool, config)
    table = Table(title=f"{loaded.root} ({loaded.dataset}, D = {loaded.dim}, "
                        f"CO accuracy {loaded.cloud_accuracy:.3f})")  # fmt: skip
    for column in ("model_id", "config", "d", "CR %", "accuracy", "PSNR dB", "version", "sha256"):
        table.add_column(column)
    for m in sorted(loaded.models.values(), key=lambda m: (m.configuration, m.d)):
        cr = 100 * abs(m.d - loaded.dim) / loaded.dim
        table.add_row(m.model_id, m.configuration, str(m.d), f"{cr:.1f}", f"{m.accuracy:.3f}",
                      f"{m.psnr_db:.1f}", str(m.version), m.sha256[:12])  # fmt: skip
    console.print(table)


def _recipe_and_rule(
    epochs: int, hidden: str, tolerance: float, step: float, head_hidden: int, ce_weight: float
):
    from edgebus.ml.dense_ae import Recipe
    from edgebus.ml.errors import TrainingError
    from edgebus.qos.compression_search import QosRule, SearchError

    try:
        widths = tuple(int(w) for w in hidden.split(",") if w.strip())
        recipe = Recipe(hidden=widths, head_hidden=head_hidden, epochs=epochs, ce_weight=ce_weight)
        return recipe, QosRule(tolerance, step)
    except ValueError as exc:
        if isinstance(exc, SearchError):
            raise _fail(str(exc)) from None
        raise _fail(f"--hidden: expected comma-separated widths, got {hidden!r}") from None
    except TrainingError as exc:
        raise _fail(str(exc)) from None


DatasetOption = Annotated[str, typer.Option(help="shapes28, accelerometer or fashion-mnist.")]
HeadOption = Annotated[int, typer.Option(min=1, help="Width of the ECO head's hidden layer.")]
CeOption = Annotated[float, typer.Option(min=0.0, help="Weight of CE against MSE in training.")]
Configs = Annotated[str, typer.Option("--configurations", help="ECO and/or ECCD.")]


@models_app.command("search")
def models_search(
    out: Annotated[Path, typer.Option(help="Pool folder to write.")] = Path(
        "edgebus-data/qos_pool"
    ),
    dataset: DatasetOption = "shapes28",
    root: Annotated[Path | None, typer.Option(help="Fashion-MNIST IDX folder.")] = None,
    configurations: Configs = "ECO,ECCD",
    train_images: Annotated[int, typer.Option(min=50)] = 6000,
    held_out: Annotated[int, typer.Option(min=10)] = 1000,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    hidden: Annotated[str, typer.Option(help="Encoder widths before d.")] = "128,64",
    head_hidden: HeadOption = 64,
    ce_weight: CeOption = 0.1,
    tolerance: Annotated[float, typer.Option(help="'Q_m reaches Q_h' tolerance.")] = 0.03,
    step: Annotated[float, typer.Option(help="QoS bucket step.")] = 0.01,
) -> None:
    """Algorithm 1: binary search over d per configuration; every model is kept in the pool."""
    console = Console()
    from edgebus.ml.errors import MLError
    from edgebus.ml.qos_pool import search_pool

    recipe, rule = _recipe_and_rule(epochs, hidden, tolerance, step, head_hidden, ce_weight)
    configs = [c.strip().upper() for c in configurations.split(",") if c.strip()]
    if not configs or set(configs) - {"ECO", "ECCD"}:
        raise _fail(f"--configurations: expected ECO and/or ECCD, got {configurations!r}")
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("search", total=None)
            pool, results = search_pool(
                out, dataset, configs, train_images, held_out, recipe, rule,
                lambda what: bar.update(task, description=what), root,
            )  # fmt: skip
    except MLError as exc:
        raise _fail(str(exc)) from None
    for r in results:
        console.print(f"{r.strategy}: chosen d = {r.chosen_d}, {r.models_trained} models, "
                      f"{r.seconds:.1f} s (target {r.target:.3f})")  # fmt: skip
    console.print(f"wrote {out / 'pool.json'} ({len(pool.models)} models)")


@models_app.command("train")
def models_train(
    d: Annotated[str, typer.Option("--d", help="Latent sizes to train, comma-separated.")],
    out: Annotated[Path, typer.Option(help="Pool folder.")] = Path("edgebus-data/qos_pool"),
    dataset: DatasetOption = "shapes28",
    root: Annotated[Path | None, typer.Option(help="Fashion-MNIST IDX folder.")] = None,
    configuration: Annotated[str, typer.Option(help="ECO or ECCD.")] = "ECO",
    train_images: Annotated[int, typer.Option(min=50)] = 6000,
    held_out: Annotated[int, typer.Option(min=10)] = 1000,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    hidden: Annotated[str, typer.Option(help="Encoder widths before d.")] = "128,64",
    head_hidden: HeadOption = 64,
    ce_weight: CeOption = 0.1,
) -> None:
    """Train (or retrain, bumping the version) given latent sizes into the pool."""
    console = Console()
    from edgebus.ml.errors import MLError
    from edgebus.ml.qos_pool import open_pool

    configuration = configuration.upper()
    if configuration not in ("ECO", "ECCD"):
        raise _fail(f"--configuration: expected ECO or ECCD, got {configuration!r}")
    try:
        sizes = [int(v) for v in d.split(",") if v.strip()]
    except ValueError:
        raise _fail(f"--d: expected comma-separated integers, got {d!r}") from None
    recipe, rule = _recipe_and_rule(epochs, hidden, 0.03, 0.01, head_hidden, ce_weight)
    try:
        trainer, _ = open_pool(out, dataset, train_images, held_out, recipe, rule, root)
        for size in sizes:
            trainer.train_one(configuration, size)
        trainer.pool.save()
    except MLError as exc:
        raise _fail(str(exc)) from None
    for size in sizes:
        stored = trainer.pool.get(f"{dataset}-{configuration.lower()}-d{size}")
        console.print(f"{stored.model_id} v{stored.version}: accuracy {stored.accuracy:.3f}")


app.add_typer(qos_app, name="qos")
app.add_typer(models_app, name="models")
