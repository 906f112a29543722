"""Task execution: intake, the runner, the executor's handlers and the reply message."""
