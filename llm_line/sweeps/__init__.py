"""Running sweeps: the plan of a sweep, claims on cells, the result store, the manifests of submissions,
a sweep's status and the hub's revisions and preflight."""
