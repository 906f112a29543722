"""The agent: the Claude client, its tools and tool loop, journal steps, context and memory."""
