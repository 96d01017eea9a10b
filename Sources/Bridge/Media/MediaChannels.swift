import Logging
import NIOCore
import NIOPosix

/// The bridge's media sockets: its requests to rtpengine's ng port, and rtpengine's DTMF reports
/// (`--dtmf-log-dest`). Both deliver on the SIP loop, to the `MediaService` once it is built there.
struct MediaChannels: Sendable {
    let transport: NIONGTransport
    let dtmf: Channel?
    let service: NIOLoopBoundBox<MediaService?>

    /// Nil when no rtpengine is configured; throws when a socket cannot be bound (a taken DTMF address).
    static func bind(_ configuration: BridgeConfiguration, loop: EventLoop) async throws -> MediaChannels? {
        guard let rtpengine = configuration.mediaRTPEngine else { return nil }
        let service = try await loop.submit { NIOLoopBoundBox<MediaService?>(nil, eventLoop: loop) }.get()
        let transport = try await NIONGTransport.bind(remote: rtpengine, loop: loop) { datagram in service.value?.received(datagram) }
        var dtmf: Channel?
        if let listen = configuration.mediaDTMFListen {
            do {
                dtmf = try await DatagramBootstrap(group: loop)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(DatagramReader { datagram in service.value?.dtmfReport(datagram) })
                        }
                    }
                    .bind(host: listen.host, port: listen.port).get()
            } catch {
                await transport.close()
                throw error
            }
        }
        return MediaChannels(transport: transport, dtmf: dtmf, service: service)
    }

    func close() async {
        await transport.close()
        try? await dtmf?.close()
    }
}
