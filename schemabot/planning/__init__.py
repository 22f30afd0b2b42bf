"""Plan before apply (docs/architecture.md §1): the declarative differ, lint, the rehearsal that
learns how the server would run each statement, and the plan document."""
