"""Prometheus metrics of one plugin instance (``pip install 'monument-ws[metrics]'``).

The only module that imports prometheus_client. Nothing here runs per frame:
the hot path increments plain counters (:mod:`monument_ws.connection.stats`) and this
collector turns them, the hub and the broker into metric families when
Prometheus scrapes. Each application gets its own ``CollectorRegistry`` (never
the process-global one), so several apps -- or tests -- in one process never
collide.

Labels are bounded: frame kinds, routes, error codes and refusal reasons are
fixed vocabularies of this package, and channels are counted per configured
namespace pattern (``default`` for the rest) -- never by a name a client chose.

==========================================  =======  ===========================
metric                                      type     labels
==========================================  =======  ===========================
monument_ws_sockets_open                    gauge
monument_ws_connections_total               counter
monument_ws_live_values                     gauge    (live data values watched by sockets)
monument_ws_frames_received_total           counter  kind: event, command, invalid, refused
monument_ws_frames_sent_total               counter  kind: push, reply, error, publication
monument_ws_errors_total                    counter  code (every protocol error code)
monument_ws_refused_total                   counter  reason
monument_ws_request_duration_seconds        hist.    route: data, handler, passthrough, command
monument_ws_channels                        gauge    namespace
monument_ws_channel_subscribers             gauge    namespace
monument_ws_presence_members                gauge    namespace (members held by this process)
monument_ws_broker_publish_duration_seconds hist.
monument_ws_broker_publish_errors_total     counter
monument_ws_broker_reconnects_total         counter
monument_ws_broker_up                       gauge
monument_ws_broker_shards_down              gauge    (shards of a sharded Redis broker down)
monument_ws_send_queue_dropped_total        counter  (frames discarded from overflowing queues)
monument_ws_slow_consumers_total            counter  (sockets closed with 4008)
monument_ws_draining                        gauge    (1 during a graceful shutdown)
monument_ws_drained_total                   counter  (sockets closed with 1001 by it)
==========================================  =======  ===========================
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..connection.router import Route
from ..connection.stats import IN_KINDS, OUT_KINDS, Histogram
from ..protocol.frames import ErrorCode

if TYPE_CHECKING:
    from ..server.plugin import MonumentWS

PREFIX = "monument_ws"
ROUTES = (Route.DATA.value, Route.HANDLER.value, Route.PASSTHROUGH.value, Route.COMMAND.value)


def _histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)


def _observe(family: HistogramMetricFamily, labels: list[str], histogram: Histogram) -> None:
    family.add_metric(labels, histogram.cumulative(), sum_value=histogram.sum)


def _counter_by(
    name: str, doc: str, label: str, counts: Iterable[tuple[str, int]]
) -> CounterMetricFamily:
    """A counter family with one sample per ``(label value, count)``, in the given order."""
    family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=[label])
    for label_value, count in counts:
        family.add_metric([label_value], count)
    return family


class PluginCollector(Collector):
    """Reads a plugin's counters, hub, presence and broker at scrape time.

    Families come out in the order of the table in this module's docstring, one
    step per group.
    """

    def __init__(self, plugin: MonumentWS) -> None:
        self.plugin = plugin

    def collect(self) -> Iterator[Metric]:
        yield from self._sockets()
        yield from self._frames()
        yield from self._requests()
        yield from self._channels()
        yield from self._broker()
        yield from self._overload_and_shutdown()

    def _sockets(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            f"{PREFIX}_sockets_open", "Open sockets.", value=len(self.plugin.hub)
        )
        yield CounterMetricFamily(
            f"{PREFIX}_connections", "Sockets accepted.", value=self.plugin.stats.connections
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_live_values",
            "Live data values watched by this process's sockets.",
            value=len(self.plugin.live),
        )

    def _frames(self) -> Iterator[Metric]:
        """Frames by kind, then error frames by code and refusals by reason."""
        stats = self.plugin.stats
        yield _counter_by(
            "frames_received",
            "Frames received, by kind.",
            "kind",
            zip(IN_KINDS, stats.frames_in_by, strict=True),
        )
        yield _counter_by(
            "frames_sent",
            "Frames accepted for sending, by kind.",
            "kind",
            zip(OUT_KINDS, stats.frames_out_by, strict=True),
        )
        # Every code, also those never sent, so a rate query finds a zero instead of nothing.
        yield _counter_by(
            "errors",
            "Error frames, by protocol code.",
            "code",
            ((code.value, stats.errors[code]) for code in ErrorCode),
        )
        yield _counter_by(
            "refused",
            "Refusals (upgrades, frames, auth), by reason.",
            "reason",
            sorted(stats.refused.items()),
        )

    def _requests(self) -> Iterator[Metric]:
        latency = _histogram(
            "request_duration_seconds",
            "Seconds from a request's start to its final answer, by route.",
            ["route"],
        )
        for route in ROUTES:
            _observe(latency, [route], self.plugin.stats.route_latency(route))
        yield latency

    def _channels(self) -> Iterator[Metric]:
        """Channels, subscriptions and presence members, counted per namespace pattern."""
        plugin = self.plugin
        channels = GaugeMetricFamily(
            f"{PREFIX}_channels", "Channels with local subscribers.", labels=["namespace"]
        )
        subscribers = GaugeMetricFamily(
            f"{PREFIX}_channel_subscribers", "Local channel subscriptions.", labels=["namespace"]
        )
        by_namespace: Counter[str] = Counter()
        subscribed: Counter[str] = Counter()
        for channel, count in plugin.hub.channels().items():
            namespace = plugin.namespaces.namespace(channel)
            by_namespace[namespace] += 1
            subscribed[namespace] += count
        for namespace in sorted(by_namespace):
            channels.add_metric([namespace], by_namespace[namespace])
            subscribers.add_metric([namespace], subscribed[namespace])
        yield channels
        yield subscribers
        members = GaugeMetricFamily(
            f"{PREFIX}_presence_members",
            "Presence members held by this process's sockets.",
            labels=["namespace"],
        )
        for namespace, count in sorted(
            Counter(
                plugin.namespaces.namespace(c) for c in plugin.presence.local_channels()
            ).items()
        ):
            members.add_metric([namespace], count)
        yield members

    def _broker(self) -> Iterator[Metric]:
        stats, broker = self.plugin.stats, self.plugin.broker
        publish = _histogram(
            "broker_publish_duration_seconds",
            "Seconds a broker publish took (offset, history and announcement).",
            [],
        )
        _observe(publish, [], stats.publish_latency)
        yield publish
        yield CounterMetricFamily(
            f"{PREFIX}_broker_publish_errors",
            "Publishes the broker refused.",
            value=stats.publish_errors,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_broker_reconnects",
            "Times the broker lost its connection and got it back.",
            value=broker.reconnects,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_broker_up", "1 while the broker is connected.", value=int(broker.healthy)
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_broker_shards_down",
            "Shards of a sharded Redis broker that cannot serve (their channels fail).",
            value=len(broker.down),
        )

    def _overload_and_shutdown(self) -> Iterator[Metric]:
        """Slow consumers and their dropped frames, then the graceful shutdown."""
        stats = self.plugin.stats
        yield CounterMetricFamily(
            f"{PREFIX}_send_queue_dropped",
            "Frames discarded from overflowing send buffers.",
            value=stats.send_queue_dropped,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_slow_consumers",
            "Sockets closed with 4008 because their send buffer overflowed.",
            value=stats.slow_consumers,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_draining", "1 during a graceful shutdown.", value=int(self.plugin.draining)
        )
        yield CounterMetricFamily(
            f"{PREFIX}_drained",
            "Sockets closed with 1001 by a graceful shutdown.",
            value=stats.drained,
        )


def registry_for(plugin: MonumentWS) -> CollectorRegistry:
    """A new registry holding ``plugin``'s collector (and nothing of the global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PluginCollector(plugin))
    return registry


def handler(registry: CollectorRegistry) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler that serves ``registry`` in the Prometheus text format."""

    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return metrics
