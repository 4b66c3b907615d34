"""Who may call, and how often: authentication (JWTs, API keys), authorization from one table of
operations, rate budgets, and the gate every door calls through (``gate.Gate``)."""
