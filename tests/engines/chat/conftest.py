"""The chat engine's tests run against real servers on 127.0.0.1 and small real models (tests/chat_servers.py)."""

from chat_servers import (  # noqa: F401  (pytest fixtures)
    _one_torch_thread,
    mt_bench_dir,
    scripted_server,
    serve_process,
    served_tiny,
    smollm2_ref,
    tiny_model_dir,
    tiny_model_dir_b,
)
