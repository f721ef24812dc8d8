"""Spark adapter: embed texts and predict on DataFrames with the same featx artifact.

::

    from featx.spark import answer, embed, predict
    out = embed(df, "text", "models/minilm")                 # + "embedding": array<float>
    out = predict(df, "text", "models/sentiment")            # + "label", "probability"
    out = answer(df, "question", "context", "models/squad")  # + "answer": struct

On the driver, :func:`embed`, :func:`predict` and :func:`answer` check the columns and the
artifact, then ship the artifact once per Spark application: its files go into an
uncompressed tar named after the manifest's sha256, added with ``SparkContext.addArchive``
(``addFile`` refuses local directories outside local mode), which every executor fetches
and unpacks once.
On the executors, ``DataFrame.mapInArrow`` hands each Python worker Arrow batches
(``spark.sql.execution.arrow.maxRecordsPerBatch`` rows, 10,000 by default); the worker
loads the artifact once, verifying its checksums, and reuses it for every later batch and
task. Other columns pass through as Arrow data, untouched and in order. Null and empty
texts give null outputs. ONNX Runtime runs ``spark.task.cpus`` threads per task (1 by
default), so the tasks of an executor do not fight over its cores.

Needs the ``spark`` extra: ``pip install 'featx[spark]'``. ``import featx`` never imports
this package. :mod:`~featx.spark.driver` runs on the driver, :mod:`~featx.spark.ship`
sends the artifact, :mod:`~featx.spark.worker` runs in the executors' Python workers,
and :mod:`~featx.spark.job` is what passes between them.
"""

from __future__ import annotations

from featx.extras import require

require("spark", "featx.spark")

from featx.spark.driver import JobStats, answer, embed, predict  # noqa: E402 - after the check

__all__ = ["JobStats", "answer", "embed", "predict"]
