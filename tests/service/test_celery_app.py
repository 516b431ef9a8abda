"""The Celery app's configuration, as the deployed processes get it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from worker.service.celery_app import celery_config
from worker.settings import Settings, parse_config


def test_reliability_settings_follow_the_config():
    config = parse_config({"worker": {"soft_time_limit_s": 20, "time_limit_s": 30}, "retry": {"max_s": 40},
                           "poll": {"interval_s": 15}}, env={})
    conf = celery_config(Settings(broker_url="redis://broker:6379/0", config=config))

    assert (conf["task_acks_late"], conf["task_reject_on_worker_lost"]) == (True, True)
    assert (conf["task_soft_time_limit"], conf["task_time_limit"]) == (20, 30)
    # A vanished worker's task returns after its longest run plus its longest retry wait, not after an hour.
    assert conf["broker_transport_options"]["visibility_timeout"] == 30 + 40 + 10
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["beat_schedule"]["poll"]["task"] == "worker.tasks.poll"
    assert conf["beat_schedule"]["poll"]["schedule"] == 15


@pytest.mark.e2e  # starts processes
def test_celery_with_a_broken_config_exits_2_with_one_line(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WRITEBACK_", "SIRO_"))},
           "WRITEBACK_CONFIG": str(tmp_path / "missing.toml")}
    result = subprocess.run([sys.executable, "-m", "celery", "-A", "worker", "worker"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert result.stderr.strip() == f"writeback: config file not found: {tmp_path / 'missing.toml'}"
