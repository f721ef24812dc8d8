"""``featx spark-embed``: embed a table on Apache Spark, locally or under spark-submit."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from featx.cli import options
from featx.cli.options import friendly_errors
from featx.cli.values import choices
from featx.config import LongText
from featx.extras import require

# featx's input formats that Spark reads, and Spark's name for each (JSON lines: "json").
SPARK_FORMATS = {"parquet": "parquet", "csv": "csv", "jsonl": "json", "json": "json"}
_BY_SUFFIX = {".parquet": "parquet", ".csv": "csv", ".json": "jsonl", ".jsonl": "jsonl"}


def _input_format(path: str, fmt: str | None) -> str:
    """Spark's name for the input format: as given, else from the suffix."""
    if fmt is not None:
        return SPARK_FORMATS[fmt]
    suffix = Path(path.rstrip("/")).suffix.lower()
    if suffix in _BY_SUFFIX:
        return SPARK_FORMATS[_BY_SUFFIX[suffix]]
    if suffix == "" and "://" not in path and Path(path).is_dir():
        return "parquet"  # a folder of part files, as Spark writes them
    raise ValueError(
        f"Cannot tell the format of {path!r} from its name; pass --format "
        f"({', '.join(SPARK_FORMATS)})."
    )


def _artifact(model: str | None) -> str:
    """The artifact to ship: ``model`` if it is one, else its export (the default model's)."""
    from featx.artifact import is_artifact

    if model is not None and (is_artifact(model) or Path(model).is_dir() or "://" in model):
        return model  # an artifact, or a folder the driver refuses with the reason
    from featx.api import load
    from featx.encoders import OnnxEncoder

    encoder = load(model)
    assert isinstance(encoder, OnnxEncoder) and encoder.path is not None  # exported
    return str(encoder.path)


def _session(master: str | None) -> tuple[Any, bool]:
    """The active SparkSession (spark-submit's), else a new one; and whether we made it."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    existing = SparkContext._active_spark_context is not None
    # Under spark-submit the JVM started this Python process and chose the master.
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    builder = SparkSession.builder.appName("featx spark-embed")
    if master and not (existing or submitted):
        builder = builder.master(master)
        if master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
            # Workers must import the same featx as this process.
            builder = builder.config("spark.pyspark.python", sys.executable)
    elif master:
        click.echo(f"featx: --master {master} ignored: the Spark master is already set.", err=True)
    spark = builder.getOrCreate()
    return spark, not existing


@click.command("spark-embed")
@click.argument("input")
@click.argument("output")
@options.model()
@options.text_col()
@options.input_format(tuple(SPARK_FORMATS))
@click.option("--out-col", default="embedding", show_default=True, help="Embedding column.")
@click.option("--vector", is_flag=True, help="Write Spark ML vectors instead of float arrays.")
@click.option("--partitions", type=click.IntRange(1), help="Repartition the input first.")
@click.option(
    "--master", help="Spark master when not run by spark-submit, e.g. local[2] (default local[*])."
)
@options.precision()
@click.option(
    "--long-text",
    type=choices(LongText, "long_text"),
    help="Over-long texts (default: the artifact's setting).",
)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--threads", type=click.IntRange(1), help="ONNX threads per task (spark.task.cpus).")
@click.option(
    "--ship/--no-ship",
    default=True,
    show_default=True,
    help="Send the artifact to the executors; --no-ship when every executor can read it.",
)
@options.force()
@friendly_errors
def spark_embed(
    input: str,
    output: str,
    model: str | None,
    text_col: str,
    fmt: str | None,
    out_col: str,
    vector: bool,
    partitions: int | None,
    master: str | None,
    precision: str | None,
    long_text: str | None,
    batch_size: int,
    threads: int | None,
    ship: bool,
    force: bool,
) -> None:
    """Embed the TEXT-COL of INPUT (parquet, csv or jsonl) on Spark; write parquet OUTPUT.

    OUTPUT has every input column plus the embedding. Paths may be anything Spark reads
    (hdfs://, s3a://, ...); --model is an artifact readable on the driver, or an alias or
    model folder exported first (default: the default model). A folder input is parquet;
    CSV needs a header.
    """
    require("spark", "featx spark-embed")
    from pyspark.errors import PySparkException

    from featx.spark import JobStats, embed

    fmt = _input_format(input, fmt)
    artifact = _artifact(model)
    with warnings.catch_warnings():
        # pyspark warns about pandas 3 on several paths; this one exchanges Arrow only.
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas")
        spark, created = _session(master)
        try:
            reader = spark.read.format(fmt)
            if fmt == "csv":
                reader = reader.option("header", True).option("multiLine", True)
            df = reader.load(input)
            if partitions:
                df = df.repartition(partitions)
            stats = JobStats(spark)
            out = embed(
                df,
                text_col,
                artifact,
                out_col=out_col,
                vector=vector,
                batch_size=batch_size,
                threads=threads,
                precision=precision,
                long_text=long_text,
                ship=ship,
                stats=stats,
            )
            out.write.mode("overwrite" if force else "errorifexists").parquet(output)
            done = stats.to_dict()
        except PySparkException as err:
            if getattr(err, "getCondition", lambda: None)() == "PATH_ALREADY_EXISTS":
                raise FileExistsError(
                    f"{output} already exists. Choose another path or pass --force."
                ) from err
            raise click.ClickException(f"Spark: {err}") from err
        finally:
            if created:
                spark.stop()
    click.echo(
        f"wrote {int(done['texts'])} embeddings ({int(done['nulls'])} null or empty texts, "
        f"{int(done['truncated'])} truncated) to {output}",
        err=True,
    )
