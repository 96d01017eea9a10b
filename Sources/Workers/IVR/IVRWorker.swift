import BusSchema
import Foundation
import Logging
import ServiceLifecycle
import WorkerSDK

/// What the IVR worker needs to run; `switchboard-worker ivr` fills it from the command line.
struct IVRWorkerConfiguration: Sendable {
    var decisions: [String]
    var events: String
    var replay: String
    var commands: String
    var workerId = "ivr-\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
    /// The dialled numbers (Request-URI users) the IVR answers.
    var numbers: Set<String>
    /// Key → where the caller goes.
    var menu: [String: String]
    /// The menu prompt; nil: the beep tone.
    var prompt: String?
    /// Played after a key outside the menu; nil: the busy tone.
    var invalidPrompt: String?
    /// How long the caller has to press a key once the menu has played.
    var timeout: Duration = .seconds(5)
    /// Menu plays before the IVR gives up and hangs up.
    var attempts = 3
    /// How the numbers the IVR does not answer are decided, as the PBX worker would (its rules, and its dial plan
    /// when `routesPath` is set); nil: by the dial plan alone, or 404 without one. A bridge's pool gives any worker
    /// any offer, so the IVR decides every number as the workers beside it do.
    var pbx: PBXWorkerConfiguration?
    /// The dial plan for those numbers when there is no `pbx`.
    var routesPath: String?
    var curve: WorkerConfiguration.Curve?
}

/// Builds the IVR worker: it answers offers for its numbers with an `answer` decision (the bridge answers, media
/// anchored), follows those calls on the events socket, plays the menu, and transfers the caller to the target of
/// the key pressed (`call.dtmf`); a key outside the menu plays the invalid prompt and the menu again, and silence
/// past the timeout plays the menu again, up to `attempts`, then the call is hung up.
func buildIVRWorker(configuration: IVRWorkerConfiguration, logger: Logger) async throws -> ServiceGroup {
    var logger = logger
    logger[metadataKey: "worker.id"] = "\(configuration.workerId)"
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
    let others: @Sendable (CallOffer) async -> Decision
    if let pbx = configuration.pbx {
        let (decider, needed) = try await PBXDecider.make(configuration: pbx, logger: logger)
        services += needed
        others = { offer in await decider.decide(offer) }
    } else if let path = configuration.routesPath {
        let routes = try await RouteCache(store: try RouteStore(path: path), interval: .seconds(1), logger: logger)
        services.append(.init(service: routes))
        others = { offer in routes.table.route(offer).decision }
    } else {
        others = { _ in .reject(status: 404, reason: "Not Found") }
    }
    let worker = Worker(configuration: WorkerConfiguration(bridges: configuration.decisions, workerId: configuration.workerId,
                                                           curve: configuration.curve),
                        logger: logger)
    let numbers = configuration.numbers
    worker.onOffer { offer in
        // A failure step is the PBX's (a forward after a busy or unanswered extension), never a new IVR call.
        if offer.failure == nil, let number = offer.requestUri.user, numbers.contains(number) { return .answer }
        return await others(offer)
    }
    let commands = try CommandClient(endpoint: configuration.commands, curve: configuration.curve, logger: logger)
    let menu = IVRMenu(configuration: configuration, commands: commands, logger: logger)
    // Only live events matter: a call answered before this run started has nobody to play its menu.
    let subscriber = EventSubscriber(configuration: SubscriberConfiguration(events: configuration.events, replay: configuration.replay,
                                                                            topics: ["call."], curve: configuration.curve),
                                     logger: logger)
    subscriber.onEvent { event in await menu.handle(event) }
    services += [.init(service: subscriber), .init(service: worker)]
    return ServiceGroup(configuration: ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                                                                 logger: logger))
}

/// The IVR's calls, each a small state machine driven by its events: the menu playing, waiting for a key, or handed on.
actor IVRMenu {
    private enum Stage {
        case menu(attempt: Int)
        case waiting(attempt: Int, timer: Task<Void, Never>)
        case invalid(attempt: Int)
        case done
    }

    private let configuration: IVRWorkerConfiguration
    private let commands: CommandClient
    private let logger: Logger
    /// Calls this worker answered (`call.routed` with action answer), until connected.
    private var answered: Set<String> = []
    private var calls: [String: Stage] = [:]

    init(configuration: IVRWorkerConfiguration, commands: CommandClient, logger: Logger) {
        self.configuration = configuration
        self.commands = commands
        self.logger = logger
    }

    deinit {
        commands.close()
    }

    func handle(_ event: Event) async {
        guard let callId = event.callId else { return }
        switch event.body {
        case .callRouted(let routed) where routed.action == .answer && routed.workerId == configuration.workerId:
            answered.insert(callId)
        case .callConnected where answered.remove(callId) != nil:
            await playMenu(callId, attempt: 1)
        case .callMediaPlayed(let played) where played.outcome == .finished:
            switch calls[callId] {
            case .menu(let attempt)?:
                let timer = Task { [configuration] in
                    try? await Task.sleep(for: configuration.timeout)
                    if !Task.isCancelled { await self.timedOut(callId, attempt: attempt) }
                }
                calls[callId] = .waiting(attempt: attempt, timer: timer)
            case .invalid(let attempt)?:
                await playMenu(callId, attempt: attempt + 1)
            default:
                break
            }
        case .callDTMF(let pressed) where pressed.leg == .a:
            await keyPressed(pressed.digit, callId: callId)
        case .callEnded:
            answered.remove(callId)
            if case .waiting(_, let timer)? = calls.removeValue(forKey: callId) { timer.cancel() }
        default:
            break
        }
    }

    private func keyPressed(_ digit: String, callId: String) async {
        let attempt: Int
        switch calls[callId] {
        case .menu(let current)?: attempt = current
        case .waiting(let current, let timer)?:
            timer.cancel()
            attempt = current
        default: return
        }
        guard let target = configuration.menu[digit] else {
            logger.info("ivr: key outside the menu", metadata: ["call.id": "\(callId)", "ivr.key": "\(digit)"])
            calls[callId] = .invalid(attempt: attempt)
            await send(.play(callId: callId, leg: .a, playback: Playback(prompt: configuration.invalidPrompt,
                                                                        tone: configuration.invalidPrompt == nil ? .busy : nil)), callId: callId)
            return
        }
        calls[callId] = .done
        logger.info("ivr: caller chose", metadata: ["call.id": "\(callId)", "ivr.key": "\(digit)", "ivr.target": "\(target)"])
        await send(.transfer(callId: callId, leg: .a, target: target), callId: callId)
    }

    private func timedOut(_ callId: String, attempt: Int) async {
        guard case .waiting(let current, _)? = calls[callId], current == attempt else { return }
        await playMenu(callId, attempt: attempt + 1)
    }

    private func playMenu(_ callId: String, attempt: Int) async {
        guard attempt <= configuration.attempts else {
            logger.info("ivr: no choice after every attempt, hanging up", metadata: ["call.id": "\(callId)"])
            calls[callId] = .done
            await send(.hangup(callId: callId), callId: callId)
            return
        }
        calls[callId] = .menu(attempt: attempt)
        await send(.play(callId: callId, leg: .a, playback: Playback(prompt: configuration.prompt, tone: configuration.prompt == nil ? .beep : nil)),
                   callId: callId)
    }

    /// Sends a command; a refusal (the caller hung up meanwhile, rtpengine gone) is logged, and the call's end event
    /// clears its state.
    private func send(_ command: Command, callId: String) async {
        do {
            if case .failed(let error) = try await commands.send(command) {
                logger.warning("ivr: command refused", metadata: ["call.id": "\(callId)", "command": "\(command.name.rawValue)",
                                                                 "bus.error": "\(error.code)", "bus.reason": "\(error.message)"])
            }
        } catch {
            logger.warning("ivr: command not answered", metadata: ["call.id": "\(callId)", "command": "\(command.name.rawValue)", "error": "\(error)"])
        }
    }
}
