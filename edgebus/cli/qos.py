"""The QoS orchestrator's commands: `qos set|show|diag`, `models list|train|search` and
`experiment qos`."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgebus.cli.app import app, experiment_app
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
        "<data_dir>/qos_pool, else the shipped accelerometer pool).",
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


def experiment_qos(
    out: Annotated[Path, typer.Option(help="Results folder (CSV + PNG).")] = Path("results/qos"),
    pool: PoolOption = None,
    changes: Annotated[int, typer.Option(min=2, help="Live QoS changes.")] = 100,
    sweep_all: Annotated[bool, typer.Option(help="Also train every d (Table 3 'all').")] = True,
    bandwidth: Annotated[str, typer.Option(help="Emulated link for job cost.")] = "200kbps",
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker", "-b", help="Broker for the live run (default: an embedded amqtt broker)."
        ),
    ] = None,
    prefetch: Annotated[
        bool, typer.Option(help="Nodes fetch every pool model before the live run.")
    ] = False,
    search_dataset: Annotated[
        str, typer.Option(help="Data set of the search-cost part (accelerometer or shapes28).")
    ] = "accelerometer",
) -> None:
    """Search cost (Table 3), data savings (Table 4), job cost (Eqs. 7-9), live switching."""
    console = Console()
    from edgebus.broker.address import BrokerUrlError, parse_broker_url
    from edgebus.experiments import qos

    loaded = _pool(pool)
    rate = parse_rate(bandwidth)
    if search_dataset not in ("accelerometer", "shapes28"):
        raise _fail(f"--search-dataset: expected accelerometer or shapes28, got {search_dataset!r}")
    if broker is not None:
        try:
            parse_broker_url(broker)
        except BrokerUrlError as exc:
            raise _fail(f"--broker: {exc}") from None
    with Progress(console=console) as bar:
        task = bar.add_task("experiment qos", total=None)
        result = qos.run(out, loaded.root, sweep_all, changes, rate,
                         lambda what: bar.update(task, description=what),
                         broker_url=broker, prefetch=prefetch,
                         search_dataset=search_dataset)  # fmt: skip
    table = Table(title=f"search cost (ECO on {search_dataset}, small recipe)")
    for column in ("strategy", "models", "seconds", "chosen d", "its accuracy", "target"):
        table.add_column(column, justify="right")
    for s in result.searches:
        at = next((t.qos for t in s.trials if t.d == s.chosen_d), float("nan"))
        table.add_row(s.strategy, str(s.models_trained), f"{s.seconds:.1f}", str(s.chosen_d),
                      f"{at:.3f}", f"{s.target:.3f}")  # fmt: skip
    console.print(table)
    table = Table(title=f"100 frames, link {rate:,.0f} bit/s (Table 4, Eqs. 7-9)")
    for column in ("config", "d", "payload B", "message B", "saving %", "E ms", "D ms", "C ms",
                   "T ms", "C_T s", "E_a %", "accuracy"):  # fmt: skip
        table.add_column(column, justify="right")
    for j in result.jobs:
        table.add_row(j.configuration, str(j.d), str(j.payload_bytes), str(j.message_bytes),
                      f"{j.saving_pct:.1f}", f"{j.encode_ms:.3f}", f"{j.decode_ms:.3f}",
                      f"{j.classify_ms:.3f}", f"{j.transfer_ms:.1f}", f"{j.total_s:.2f}",
                      f"{j.gain_vs_co_pct:.1f}", f"{j.accuracy:.2f}")  # fmt: skip
    console.print(table)
    import numpy as np

    live = result.live
    latencies = live.latencies()
    console.print(
        f"live ({live.broker}): {len(live.rows)} switches, {live.timeouts} without every ack; "
        f"latency p50 {np.percentile(latencies, 50):.1f} ms, p99 "
        f"{np.percentile(latencies, 99):.1f} ms, max {latencies.max():.1f} ms; {live.fetches} "
        f"bundles fetched; frames sent {live.frames_sent}, decoded {live.frames_decoded} "
        f"(2 receivers), wrong-model {live.wrong_model}, rejected {live.rejected}"
    )
    if prefetch:
        console.print(f"prefetch of the whole pool by 3 nodes: {live.fetch_seconds:.2f} s")
    console.print(f"wrote {out}/search_cost.csv, job_cost.csv, live_switching.csv, qos.png")


app.add_typer(qos_app, name="qos")
app.add_typer(models_app, name="models")
experiment_app.command("qos")(experiment_qos)
