"""The ``writeback`` command line (DESIGN §3)."""


def main(argv=None) -> int:  # noqa: ANN001 - the console script's entry point
    from worker.cli.main import main as run

    return run(argv)
