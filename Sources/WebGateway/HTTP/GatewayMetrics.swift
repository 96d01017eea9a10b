import Prometheus

/// The gateway's Prometheus series, served by `GET /metrics`. Made from a registry rather than the
/// global MetricsSystem, so each application (and each test) has its own.
///
/// ```swift
/// let metrics = GatewayMetrics(registry: PrometheusCollectorRegistry())
/// metrics.originate("accepted")
/// ```
struct GatewayMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    let originateToRinging: DurationHistogram
    let commandLatency: DurationHistogram
    let liveCalls: Gauge

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        let buckets: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                                   .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10)]
        originateToRinging = registry.makeDurationHistogram(
            name: "switchboard_gateway_originate_to_ringing_seconds", buckets: buckets,
            help: "From the originate HTTP request to party A's first ringing event")
        commandLatency = registry.makeDurationHistogram(
            name: "switchboard_gateway_command_seconds", buckets: buckets, help: "Bus command round trips")
        liveCalls = registry.makeGauge(name: "switchboard_gateway_live_calls", help: "Calls in the live table")
    }

    /// HTTP responses by method and status.
    func request(method: String, status: Int) {
        registry.makeCounter(name: "switchboard_gateway_http_requests_total",
                             labels: [("method", method), ("status", String(status))]).increment()
    }

    /// Originate outcomes: `accepted`, `existing`, `denied`, `concurrency`, `bridge_error`.
    func originate(_ result: String) {
        registry.makeCounter(name: "switchboard_gateway_originates_total", labels: [("result", result)]).increment()
    }

    /// Destination policy refusals by rule.
    func denied(rule: String) {
        registry.makeCounter(name: "switchboard_gateway_policy_denials_total", labels: [("rule", rule)]).increment()
    }

    /// 429s by scope: `key`, `source`, `concurrency`.
    func rateLimited(scope: String) {
        registry.makeCounter(name: "switchboard_gateway_rate_limited_total", labels: [("scope", scope)]).increment()
    }

    func authenticationFailed(reason: String) {
        registry.makeCounter(name: "switchboard_gateway_auth_failures_total", labels: [("reason", reason)]).increment()
    }
}
