"""AirfleetOperator and @task.airfleet: workloads submitted from a DAG and waited for in the triggerer.

They run under any executor; they need a triggerer and the `airfleet_default` connection (or the
[airfleet] section): see executor/airflow/README.md.
"""

from airflow.sdk import dag, task

from airfleet_airflow.operators import AirfleetOperator


@dag(schedule=None, catchup=False, tags=["airfleet"])
def airfleet_operator():
    # argv as a list; the workload's stdout ("45", one trailing newline dropped) is the XCom return_value
    total = AirfleetOperator(
        task_id="total",
        command=["python3", "-c", "print(sum(range(10)))"],
        backend="local",
    )

    # The function runs on the worker with the task's arguments and returns the command; a string runs
    # through `sh -c`. Every AirfleetOperator argument goes to the decorator.
    @task.airfleet(backend="local", env={"UNIT": "apples"})
    def report(value: str) -> str:
        return f'echo "{value} $UNIT"'

    report(total.output)


airfleet_operator()
