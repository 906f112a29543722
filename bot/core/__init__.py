"""What every layer of the bot shares: the error tree, the Slack port and the crash points."""
