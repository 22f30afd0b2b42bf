"""Plan before apply (issue 13): the declarative differ, lint, the rehearsal that learns how the
server would run each statement (on an empty copy, the target as final judge: docs/architecture.md
§9), and the plan document."""
