"""moto's server, unchanged, with one addition for the test harness: every container moto's Batch backend
starts carries the labels in AIRFLEET_MOTO_CONTAINER_LABELS (a JSON object). The integration tier labels
every container of a test run so that its teardown removes what a crashed suite left behind
(integration/src/docker-env.ts); moto itself has no setting for container labels.

Usage: python moto_server_labelled.py [moto_server arguments...]
"""

import json
import os
import sys

import docker.models.containers
from moto.server import main

LABELS = json.loads(os.environ.get("AIRFLEET_MOTO_CONTAINER_LABELS") or "{}")
_run = docker.models.containers.ContainerCollection.run


def _run_labelled(self, image, command=None, **kwargs):
    kwargs["labels"] = {**LABELS, **(kwargs.get("labels") or {})}
    return _run(self, image, command, **kwargs)


docker.models.containers.ContainerCollection.run = _run_labelled

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
