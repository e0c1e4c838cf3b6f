"""``mechscope serve``: the local web workbench (FastAPI + a plain-JavaScript page) over one loaded model.

The model loads once, before the server listens (so the first request is as fast as the others and a
bad ``--model`` fails at once); every request then holds the one model lock. Binds 127.0.0.1 unless
``--host`` says otherwise, and then warns. See docs/web.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mechscope.cli.common import add_json_arg, add_model_arg, add_parser, emit_json

EXAMPLES = """\
  mechscope serve                                  # http://127.0.0.1:8000, Gemma 3 270M
  mechscope serve --port 8765 --runs runs/ --runs ~/saes
  mechscope serve --model ./my-hf-dir --dry-run --json   # check the flags, print the address, do not serve
Open the printed address in a browser: Lens and Intervene pages (docs/web.md). Ctrl-C stops it."""
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(subparsers) -> None:
    from mechscope.web.config import LOCALHOST, WebConfig

    d = WebConfig()
    p = add_parser(subparsers, "serve", "Serve the local web workbench (lens, interventions, ...) on the loaded model.",
                   EXAMPLES)  # fmt: skip
    add_model_arg(p)
    p.add_argument("--host", default=LOCALHOST, help="address to bind; anything but 127.0.0.1 exposes the model to "
                   "your network (a warning is printed)")  # fmt: skip
    p.add_argument("--port", type=int, default=8000, help="TCP port (0 picks a free one)")
    p.add_argument("--runs", action="append", default=[], type=Path, metavar="DIR",
                   help="folder of runs, SAEs, stores or tensor files the workbench may read (repeatable); "
                        "every other path is refused")  # fmt: skip
    p.add_argument("--max-prompt-chars", type=int, default=d.max_prompt_chars, help="longest prompt accepted")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="largest request body accepted")
    p.add_argument("--dry-run", action="store_true", help="check the flags and the port, print the address, exit")
    add_json_arg(p)
    p.set_defaults(func=run)


def _check_port(host: str, port: int) -> int:
    """The port if it can be bound now (0: a free one is picked), else one line."""
    import socket

    from mechscope.errors import ConfigError

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"--host {host!r:.60} is not an address this machine can bind ({exc})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port "
                              "(or stop what is using it)") from None  # fmt: skip
        return s.getsockname()[1]


def run(args) -> int:
    from mechscope.web.config import WebConfig

    config = WebConfig(runs=tuple(args.runs), max_prompt_chars=args.max_prompt_chars, max_body_bytes=args.max_body_bytes)
    port = _check_port(args.host, args.port)
    if args.host not in LOCAL_HOSTS:
        print(f"mechscope: warning: serving on {args.host}, not 127.0.0.1: anyone who can reach this machine can run "
              "the model and read the --runs folders", file=sys.stderr)  # fmt: skip
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{port}/"
    info = {"url": url, "model": args.model, "host": args.host, "port": port, "runs": [str(r) for r in config.runs],
            "limits": config.limits()}  # fmt: skip
    if args.dry_run:
        if args.json:
            emit_json(info)
        else:
            print(f"would serve {args.model} at {url}")
        return 0
    import uvicorn

    from mechscope.web.app import create_app

    app = create_app(model_name=args.model, device=args.device, config=config)
    wb = app.state.workbench
    wb.load()
    if args.json:
        emit_json({**info, "load_seconds": round(wb.load_seconds or 0.0, 3)})
    else:
        print(f"mechscope workbench: {url}  ({args.model} loaded in {wb.load_seconds:.1f} s; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=port, log_level="warning")
    return 0
