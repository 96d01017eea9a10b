import Billing
import Prometheus

/// The accounting worker's Prometheus series, one sample per finished CDR, labelled by account and
/// rated route. ASR, ACD and calls per interval are PromQL over these counters (README, "Rated
/// CDRs"), so any window can be asked for; PDD is a histogram.
///
/// ```swift
/// let metrics = AccountingMetrics(registry: PrometheusCollectorRegistry())
/// metrics.record(finishedCDR)
/// ```
struct AccountingMetrics: Sendable {
    let registry: PrometheusCollectorRegistry

    /// 100 ms to 30 s: a PDD under 100 ms is a local phone, one past 30 s has timed out somewhere.
    static let pddBuckets: [Duration] = [0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30].map { .milliseconds(Int64($0 * 1000)) }

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Counts a CDR that will not change any more (a redirect, a reject, or a call's end).
    func record(_ cdr: CDR) {
        let labels = [("account", cdr.payingAccount ?? CallStatistics.noAccount), ("route", cdr.rateRoute ?? CallStatistics.unrated)]
        let result = CallRecord.outcome(cdrOutcome: cdr.outcome, sipStatus: cdr.sipStatus, endedAt: cdr.endedAt)
        registry.makeCounter(descriptor: .init(metricName: "switchboard_cdr_calls_total",
                                               helpText: "Finished calls by account, rated route and result (answered, failed, redirected)"),
                             labels: labels + [("result", result.rawValue)]).increment()
        if result == .answered {
            registry.makeCounter(descriptor: .init(metricName: "switchboard_cdr_talk_seconds_total", helpText: "Talk time of answered calls"),
                                 labels: labels).increment(by: (cdr.talkMs ?? 0) / 1000)
        }
        if let billed = cdr.billedSeconds {
            registry.makeCounter(descriptor: .init(metricName: "switchboard_cdr_billed_seconds_total",
                                                   helpText: "Talk time as billed, rounded up to the rate's increments"),
                                 labels: labels).increment(by: billed)
        }
        if let charge = cdr.chargeMicros {
            // Integer micro-units: a float sum of many small charges would drift.
            registry.makeCounter(descriptor: .init(metricName: "switchboard_cdr_charge_micros_total",
                                                   helpText: "Charges of rated calls, in millionths of the currency"),
                                 labels: labels + [("currency", cdr.currency ?? "")]).increment(by: charge)
        }
        if let pdd = cdr.pddMs {
            registry.makeDurationHistogram(descriptor: .init(metricName: "switchboard_cdr_pdd_seconds",
                                                             helpText: "Post-dial delay: from the offer to the first 18x"),
                                           labels: labels, buckets: Self.pddBuckets).record(.milliseconds(pdd))
        }
    }
}
