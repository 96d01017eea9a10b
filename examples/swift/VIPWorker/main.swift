// A complete custom worker: VIP callers go to the premium gateway, everyone else is refused.
import BusSchema
import Logging
import ServiceLifecycle
import WorkerSDK

let logger = Logger(label: "vip-worker")
let worker = Worker(configuration: .init(bridges: ["tcp://127.0.0.1:5571"], workerId: "vip"), logger: logger)
worker.onOffer { offer in
    guard offer.authUser == "alice", let number = offer.requestUri.user else { return .reject(status: 403, reason: "VIPs only") }
    return .redirect([Target(uri: "sip:\(number)@premium-gw.example.com", q: 1.0)])
}
try await ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
