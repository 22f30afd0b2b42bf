"""The spirit engine as a map of phases (issue 12 §5): one module per phase, each holding what a
step does for a table in that phase; `engine.py` only owns the connection and the tables and
dispatches by phase (`table.WORK` for the per-table phases, `cutting_over` for the operation's
cutover, `attaching` and `failing` at the edges). The phases themselves are
`checkpoint.Phase`, stored as their string values."""
