"""``@task.airfleet``: the decorated function returns the command, and AirfleetOperator runs it.

Like ``@task.bash``: the function runs on the worker when the task starts, with the task's arguments and
context, and returns argv (a list of strings) or a string run by ``sh -c``. Every AirfleetOperator argument
goes to the decorator: ``@task.airfleet(image="python:3.12-slim", backend="local", secret_env={...})``.
Registered in the provider info (airfleet_airflow.provider), which Airflow reads through the
``apache_airflow_provider`` entry point of pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar

from airflow.sdk.bases.decorator import DecoratedOperator, TaskDecorator, determine_kwargs, task_decorator_factory
from airflow.sdk.definitions._internal.types import SET_DURING_EXECUTION
from airflow.sdk.definitions.context import context_merge

from airfleet_airflow.operators import AirfleetOperator


class _AirfleetDecoratedOperator(DecoratedOperator, AirfleetOperator):
    """The function's return value is the command of an AirfleetOperator."""

    template_fields: Sequence[str] = (*DecoratedOperator.template_fields, *AirfleetOperator.template_fields)
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **DecoratedOperator.template_fields_renderers,
        **AirfleetOperator.template_fields_renderers,
    }
    custom_operator_name: str = "@task.airfleet"
    # The command is known only once the function ran: store it with the rendered fields after that.
    overwrite_rtif_after_execution: bool = True

    def __init__(self, *, python_callable: Callable, op_args: Collection[Any] | None = None,
                 op_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs,
                         command=SET_DURING_EXECUTION, **kwargs)

    def execute(self, context: Any) -> Any:
        context_merge(context, self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, context)
        command = self.python_callable(*self.op_args, **kwargs)
        if isinstance(command, tuple):
            command = list(command)
        if not (isinstance(command, str) and command.strip()) and not (
                isinstance(command, list) and command and all(isinstance(a, str) for a in command)):
            raise TypeError(f"@task.airfleet {self.task_id}: the function must return the command, a non-empty "
                            f"string (run by sh -c) or list of strings (argv), not {command!r:.200}")
        self.command = command
        return AirfleetOperator.execute(self, context)


def airfleet_task(python_callable: Callable | None = None, **kwargs: Any) -> TaskDecorator:
    """``@task.airfleet``: wraps a function returning a command into an AirfleetOperator."""
    return task_decorator_factory(python_callable=python_callable,
                                  decorated_operator_class=_AirfleetDecoratedOperator, **kwargs)
