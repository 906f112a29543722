"""The benchmark suite: `make bench` (python -m benchmarks) measures the bot beside a reference in one run.

Every timing shares the machine with its reference in the same run, since timings on shared machines drift:
acknowledgements beside a Bolt app that only acknowledges (ack), answers beside the model's own latency
(concurrency), resumption beside Python's import of the SDK and beside the lease (recovery), a long thread
beside a naive agent (long_threads), and the bot's Redis, CPU and memory use (footprint). Everything runs
against the local fake Slack and Anthropic servers (playground), a private redis-server and real bot processes.
"""
