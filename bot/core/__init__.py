"""What every layer of the bot shares: the error tree, the Slack port, the crash points and the log context."""
