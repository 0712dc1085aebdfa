import Foundation
import Transport
import XCTest

/// Loopback tests; each test uses its own ports from 39000 up.
final class SocketTests: XCTestCase {
    private func url(_ port: Int) -> String { "tcp://127.0.0.1:\(port)" }

    func testPushToPullDelivers() throws {
        let pull = try Socket(.pull)
        try pull.bind(url(39001))
        let push = try Socket(.push)
        try push.connect(url(39001))
        XCTAssertTrue(try push.send([1, 2, 3]))
        XCTAssertEqual(try pull.receive(), [1, 2, 3])
    }

    /// The largest valid message (a 64 MiB payload that LZ4 could not shrink, with its header) gets through a socket
    /// with the default limit; one byte past `maxWireBytes` does not.
    func testTheLargestValidMessageIsDeliveredAndOneBytePastItIsNot() throws {
        let limits = WireLimits()
        let pull = try Socket(.pull, receiveTimeoutMilliseconds: 5_000)
        try pull.bind(url(39051))
        let push = try Socket(.push, sendTimeoutMilliseconds: 10_000)
        try push.connect(url(39051))
        let largest = [UInt8](repeating: 7, count: limits.maxWireBytes)
        XCTAssertTrue(try push.send(largest))
        XCTAssertEqual(try pull.receive()?.count, largest.count)
        let pullPast = try Socket(.pull, receiveTimeoutMilliseconds: 1_500)
        try pullPast.bind(url(39052))
        let pushPast = try Socket(.push, sendTimeoutMilliseconds: 10_000)
        try pushPast.connect(url(39052))
        XCTAssertTrue(try pushPast.send(largest + [0]))
        XCTAssertNil(try pullPast.receive(), "nanomsg drops what is over the limit")
        XCTAssertGreaterThan(limits.maxWireBytes, 96 + limits.maxMessageBytes, "room for the header and an LZ4 frame's growth")
    }

    func testPublishToSubscribeDeliversAfterSettling() throws {
        let publisher = try Socket(.publish)
        try publisher.bind(url(39011))
        let subscriber = try Socket(.subscribe, receiveTimeoutMilliseconds: 50)
        try subscriber.connect(url(39011))
        let deadline = Date().addingTimeInterval(2)
        var received: [UInt8]?
        while received == nil, Date() < deadline {
            XCTAssertTrue(try publisher.send([42]))
            received = try subscriber.receive()
        }
        XCTAssertEqual(received, [42])
    }

    func testRequestReplyRoundTrip() throws {
        let reply = try Socket(.reply)
        try reply.bind(url(39021))
        let request = try Socket(.request)
        try request.connect(url(39021))
        XCTAssertTrue(try request.send(Array("ping".utf8)))
        XCTAssertEqual(try reply.receive(), Array("ping".utf8))
        XCTAssertTrue(try reply.send(Array("pong".utf8)))
        XCTAssertEqual(try request.receive(), Array("pong".utf8))
    }

    func testReceiveReturnsNilOnTimeout() throws {
        let pull = try Socket(.pull, receiveTimeoutMilliseconds: 50)
        try pull.bind(url(39031))
        let start = Date()
        XCTAssertNil(try pull.receive())
        XCTAssertLessThan(Date().timeIntervalSince(start), 1)
        try pull.setReceiveTimeout(milliseconds: 10)
        XCTAssertNil(try pull.receive())
    }

    func testSendReturnsFalseOnTimeoutWithoutPeer() throws {
        let push = try Socket(.push, sendTimeoutMilliseconds: 50)
        try push.connect(url(39035))
        XCTAssertFalse(try push.send([1]))
    }

    func testThreeMegabyteEncodedMessagePasses() throws {
        let pull = try Socket(.pull, receiveTimeoutMilliseconds: 5000)
        try pull.bind(url(39041))
        let push = try Socket(.push, sendTimeoutMilliseconds: 5000)
        try push.connect(url(39041))
        var generator = SplitMix64(seed: 3)
        let words = (0 ..< (3 << 20) / 8).map { _ in generator.next() }
        let noise = words.withUnsafeBytes { Array($0) }
        let message = WireMessage(kind: .weights, policyVersion: 8,
                                  tensors: [WireTensor(name: "noise", dtype: .uint8, shape: [noise.count], bytes: noise)])
        let encoded = try WireCodec().encode(message)
        XCTAssertGreaterThan(encoded.count, 3 << 20)
        XCTAssertTrue(try push.send(encoded))
        let received = try XCTUnwrap(try pull.receive())
        XCTAssertEqual(try WireCodec().decode(received), message)
    }

    func testMessagesOverTheReceiveLimitNeverArrive() throws {
        let pull = try Socket(.pull, receiveTimeoutMilliseconds: 300, receiveMaxBytes: 1 << 20)
        try pull.bind(url(39051))
        let push = try Socket(.push)
        try push.connect(url(39051))
        XCTAssertTrue(try push.send([UInt8](repeating: 7, count: 3 << 20)))
        XCTAssertNil(try pull.receive())
    }

    func testClosedSocketThrowsAndCloseIsIdempotent() throws {
        let socket = try Socket(.push)
        socket.close()
        socket.close()
        XCTAssertThrowsError(try socket.send([1])) { error in
            XCTAssertEqual((error as? SocketError)?.code, EBADF)
        }
        XCTAssertThrowsError(try socket.receive())
    }

    func testErrorsNameTheOperationAndCause() throws {
        let socket = try Socket(.pull)
        XCTAssertThrowsError(try socket.bind("nonsense://nowhere")) { error in
            let description = String(describing: error)
            XCTAssertTrue(description.contains("bind nonsense://nowhere"), description)
            XCTAssertTrue(description.contains("errno"), description)
        }
        XCTAssertThrowsError(try Socket(.pull, receiveMaxBytes: 1 << 40))
    }

    func testEndpointsUseConsecutivePorts() {
        let endpoints = Endpoints(host: "10.0.0.2", basePort: 6000)
        XCTAssertEqual(endpoints.trajectories, "tcp://10.0.0.2:6000")
        XCTAssertEqual(endpoints.weights, "tcp://10.0.0.2:6001")
        XCTAssertEqual(endpoints.control, "tcp://10.0.0.2:6002")
        XCTAssertEqual(Endpoints().trajectories, "tcp://127.0.0.1:5555")
    }
}
