"""``[logging] logging_config_class = airfleet_airflow.log_config.LOGGING_CONFIG``: Airflow's own logging
config plus ``REMOTE_TASK_LOG``, which reads finished tasks' logs from the airfleet service. So the
api-server shows the log of a task that ran on any worker, with no shared disk and no remote log store;
running tasks are served by ``AirfleetExecutor.get_task_log``.
"""

from __future__ import annotations

from copy import deepcopy

from airflow.config_templates.airflow_local_settings import DEFAULT_LOGGING_CONFIG

from airfleet_airflow.remote_log import AirfleetRemoteLogIO

LOGGING_CONFIG = deepcopy(DEFAULT_LOGGING_CONFIG)
REMOTE_TASK_LOG = AirfleetRemoteLogIO()
