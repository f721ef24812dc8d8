"""``featx spark-embed``: embed a table on Apache Spark, locally or under spark-submit."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from featx._cliutil import friendly_errors

SPARK_FORMATS = ("parquet", "csv", "json")
_BY_SUFFIX = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}


def _input_format(path: str, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    suffix = Path(path.rstrip("/")).suffix.lower()
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    if suffix == "" and "://" not in path and Path(path).is_dir():
        return "parquet"  # a folder of part files, as Spark writes them
    raise ValueError(
        f"Cannot tell the format of {path!r} from its name; pass --format "
        f"({', '.join(SPARK_FORMATS)})."
    )


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
@click.option("--artifact", required=True, help="Artifact directory made by featx export.")
@click.option("--text-col", default="text", show_default=True, help="Column holding the text.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(SPARK_FORMATS),
    help="Input format (default: from the suffix; a folder is parquet). CSV needs a header.",
)
@click.option("--out-col", default="embedding", show_default=True, help="Embedding column.")
@click.option("--vector", is_flag=True, help="Write Spark ML vectors instead of float arrays.")
@click.option("--partitions", type=click.IntRange(1), help="Repartition the input first.")
@click.option(
    "--master", help="Spark master when not run by spark-submit, e.g. local[2] (default local[*])."
)
@click.option(
    "--precision", type=click.Choice(["fp32", "int8"]), help="Graph to run (default: artifact's)."
)
@click.option(
    "--long-text",
    type=click.Choice(["truncate", "chunk_mean", "chunk_max"]),
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
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@friendly_errors
def spark_embed(
    input: str,
    output: str,
    artifact: str,
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
    """Embed the TEXT-COL of INPUT (parquet, csv or json) on Spark; write parquet OUTPUT.

    OUTPUT has every input column plus the embedding. Paths may be anything Spark reads
    (hdfs://, s3a://, ...); ARTIFACT must be readable on the driver.
    """
    try:
        from pyspark.errors import PySparkException
    except ImportError as err:
        raise ImportError(
            "featx spark-embed needs pyspark. Install it with: pip install 'featx[spark]'"
        ) from err
    from featx.spark import JobStats, embed

    fmt = _input_format(input, fmt)
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
