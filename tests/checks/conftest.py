"""Fixtures the check tests share: the scripted OpenAI-compatible judge server (tests/chat_servers.py)."""

from chat_servers import _one_torch_thread, scripted_server  # noqa: F401  (pytest fixtures)
