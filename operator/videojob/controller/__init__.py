"""The Kopf operator: pure planners and builders, a thin layer of API calls, and a level-based reconcile loop.

Pure (table-tested in tests/unit/test_controller_*.py):
    settings    the configuration, one environment variable per field
    admission   the queue: order, limits, hardware choice, queue positions
    jobs        the transcoder Job manifest (and why the spec travels in an environment variable)
    rbac        the operator's ClusterRole rules and the per-namespace transcoder Role
    status      the VideoJob status derived from its Job and pods; minimal patches; Events of a transition
    index       the in-memory view of VideoJobs, Jobs and pods

I/O:
    kube        every Kubernetes API call the operator makes
    reconciler  the debounced reconcile pass and the background status writer
    handlers    Kopf wiring: watches feed the index; startup/cleanup of the loop and the metrics server
    metrics     Prometheus metrics, /healthz, JSON logs
    memory      the process and glibc's allocator: arenas capped, free pages given back after passes
    main        the `videojob-operator` entry point
"""
