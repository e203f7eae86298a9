"""`videojob-operator`: run the operator against the current kubeconfig (or in-cluster configuration).

Configuration is entirely environment variables (`python -m videojob.controller.settings` lists them); a bad one
stops the operator at once with a message naming it (exit code 2).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from typing import TYPE_CHECKING

from videojob.controller.settings import Settings

if TYPE_CHECKING:
    from videojob.controller.kube import Kube
    from videojob.controller.leader import LeaderElector
    from videojob.controller.metrics import Metrics


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        from videojob.controller.settings import describe

        sys.stdout.write(__doc__ or "")
        sys.stdout.write("\n" + describe() + "\n")
        return 0
    try:
        settings = Settings.from_env()
    except ValueError as e:
        sys.stderr.write(f"videojob-operator: {e}\n")
        return 2

    from videojob.controller.memory import limit_malloc_arenas

    limit_malloc_arenas()

    import kopf

    from videojob.controller.handlers import EventsOnlyMemories, build_registry
    from videojob.controller.kube import Kube, api_client
    from videojob.controller.metrics import Metrics, configure_logging
    from videojob.controller.reconciler import Reconciler, event_workers

    configure_logging(settings.log_format, settings.log_level)
    try:
        # passes, status writes and Events have their own threads: a connection each
        kube = Kube(api_client(2 * settings.api_workers + event_workers(settings)))
    except Exception as e:
        sys.stderr.write(f"videojob-operator: no usable Kubernetes configuration (kubeconfig or in-cluster): {e}\n")
        return 2
    metrics = Metrics()
    reconciler = Reconciler(settings, kube, metrics)
    elector = _elector(settings, kube, metrics) if settings.leader_election else None
    # Set when this replica loses the Lease: Kopf stops, and so does the process. An asyncio.Event binds to the loop
    # kopf.run makes at its first use (a threading.Event would be waited for in a thread that outlives a SIGTERM).
    stop = asyncio.Event()
    registry = build_registry(settings, reconciler, metrics, elector, stop)
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=settings.clusterwide,
        namespaces=settings.namespaces,
        stop_flag=stop,
        memories=EventsOnlyMemories(),
    )
    if elector is not None and elector.lost:
        sys.stderr.write("videojob-operator: lost the leader election Lease; exiting to restart as a standby\n")
        return 1
    return 0


def _elector(settings: Settings, kube: Kube, metrics: Metrics) -> LeaderElector:
    from videojob.controller.jobs import LABEL_MANAGED_BY, MANAGED_BY
    from videojob.controller.leader import LeaderElector, Timings

    # The pod's name (the chart passes it): a restarted container of the same pod may take its Lease back at once.
    identity = os.environ.get("POD_NAME") or socket.gethostname()
    timings = Timings(
        settings.leader_election_lease_duration,
        settings.leader_election_renew_deadline,
        settings.leader_election_retry_period,
    )
    return LeaderElector(
        kube,
        settings.operator_namespace,
        settings.leader_election_lease_name,
        identity,
        timings,
        metrics,
        labels={LABEL_MANAGED_BY: MANAGED_BY},
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
