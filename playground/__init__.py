"""The local Slack and Anthropic stand-ins: the integration tests' fakes and `python -m bot dev`'s playground.

Both speak the real wire formats (Slack's Web API, Events API signing, Socket Mode; Anthropic's Messages API
with streaming and prompt-cache usage), so the bot runs against them unchanged. One emulator serves both uses.
"""
