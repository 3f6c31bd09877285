"""Command line: ``collect`` prints (or with --push sends) one pass; ``serve`` is pull mode.

Exit status: 0 done (down targets are data, not failure), 2 configuration error, 1 the push
failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from .bounds import log_projected_cost
from .config import ConfigError
from .config.extra import apply_extra
from .kafka_stream import build_stream, push_and_stream, send_reserve_seconds
from .logs import scrubber, setup_logging
from .runtime import Runtime, build_sink, collection_budget, stdout_sink, summary
from .shards import ALL
from .sinks import PushError, PushgatewaySink

logger = logging.getLogger("middleware_monitoring.cli")

EXIT_OK, EXIT_PUSH_FAILED, EXIT_CONFIG = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m middleware_monitoring", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    collect = commands.add_parser("collect", help="run one collection pass")
    collect.add_argument(
        "--push", action="store_true", help="send to the configured sink instead of stdout"
    )
    collect.add_argument(
        "--budget",
        type=float,
        default=50.0,
        metavar="SECONDS",
        help="time the pass may take, sending included (default 50)",
    )
    commands.add_parser(
        "serve", help="pull mode: serve /metrics on SERVER_PORT (default 9010), a pass per scrape"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = _parser().parse_args(argv)
    apply_extra(os.environ)
    setup_logging(stream=sys.stderr, level=os.environ.get("LOG_LEVEL", "INFO"))
    try:
        runtime = Runtime.from_environ(os.environ)
        pushing = args.command == "collect" and args.push
        sink = build_sink(runtime.settings, runtime.builder.secrets) if pushing else stdout_sink()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    scrubber.add(runtime.settings.secrets())
    if args.command == "serve":
        from .serve import serve  # http.server is only paid for in pull mode

        return serve(runtime)
    # Only a push streams statements to Kafka: printing a pass is for looking, not sending.
    stream = build_stream(runtime.settings.kafka) if pushing else None
    # The budget holds everything from here: collection, then the push under one deadline.
    deadline = started + args.budget
    reserve = send_reserve_seconds(stream, sink.reserve_seconds())
    runtime.pushgateway = isinstance(sink, PushgatewaySink)
    result = runtime.collect(collection_budget(deadline - time.monotonic(), reserve))
    settings = runtime.settings
    sink_name = settings.sink if pushing else "stdout"
    sent, series = runtime.budget.apply(result, sink_name)
    try:
        push_and_stream(sink, stream, result, deadline, to_sink=sent)
    except PushError as error:
        logger.error("push failed", extra={"detail": str(error)})
        return EXIT_PUSH_FAILED
    if pushing:
        log_projected_cost(sink, sink_name, series, settings.schedule_minutes)
    runtime.remove_stale_groups(ALL, deadline)
    logger.info("pass done", extra=summary(sent))
    return EXIT_OK


if __name__ == "__main__":
    status = main()
    # Workers the pass gave up on (a silent server) are threads Python would wait for at
    # exit, up to their socket timeouts: the pass is over and reported, so leave now.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
