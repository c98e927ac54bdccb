"""Running sweeps of cells: the plan of a sweep, the manifests of submissions, a sweep's status and the
pre-download of its models and tasks. Builds on llm_line.evaluation (a cell, its store and claims)."""
