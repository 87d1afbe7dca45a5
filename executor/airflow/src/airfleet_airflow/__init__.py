"""Apache Airflow 3 executor for the airfleet executor service.

Kept free of imports: Airflow imports executor modules on every ``airflow`` command (for
``get_cli_commands``), and task containers run ``python -m airfleet_airflow.run`` before Airflow loads.
"""

__version__ = "0.1.0"
