"""The pipeline: fetch → resolve → validate → diff → write → record (DESIGN §1).

``runner.Pipeline`` runs recordings through the stages; each stage is a
module (``resolver``, ``coercion``, ``decide``, ``policies``, ``writer``).
Nothing is imported here eagerly: the ledger and the CLI import the stages
they need without loading the rest.
"""


def __getattr__(name: str):  # noqa: ANN202 - ``from worker.pipeline import Pipeline``, as before the split
    if name == "Pipeline":
        from worker.pipeline.runner import Pipeline

        return Pipeline
    raise AttributeError(f"module 'worker.pipeline' has no attribute {name!r}")
