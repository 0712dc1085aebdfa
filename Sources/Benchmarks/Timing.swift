import Foundation

/// The one clock and the measurement loops of every `dppo bench` figure: a monotonic clock (`DispatchTime`), a rate
/// loop with a warm-up call, a throughput loop, and alternating rounds for two variants measured side by side.
enum Timing {
    /// Monotonic nanoseconds (not wall-clock time: NTP steps cannot move it).
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    static func seconds(since start: UInt64) -> Double { Double(now() - start) / 1e9 }

    /// The seconds one call of `body` takes.
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = now()
        try body()
        return seconds(since: start)
    }

    /// Calls `body` once as warm-up (it sizes buffers and faults pages in), then repeatedly for at least `seconds` and at
    /// least `minimumCalls` times; returns calls per second. An error ends the loop and is rethrown.
    static func rate(seconds: Double, minimumCalls: Int = 3, _ body: () throws -> Void) rethrows -> Double {
        try body()
        var calls = 0
        let start = now()
        var elapsed = 0.0
        repeat {
            try body()
            calls += 1
            elapsed = self.seconds(since: start)
        } while elapsed < seconds || calls < minimumCalls
        return Double(calls) / elapsed
    }

    /// Units of work per second, where each call of `body` returns the units it did (environment steps, decisions),
    /// over at least `seconds`; no warm-up call.
    static func throughput(seconds: Double, _ body: () throws -> Int) rethrows -> Double {
        var units = 0
        let start = now()
        var elapsed = 0.0
        repeat {
            units += try body()
            elapsed = self.seconds(since: start)
        } while elapsed < seconds
        return Double(units) / elapsed
    }

    /// Runs `first` and `second` once as warm-up, then in alternating rounds until their timed parts together add up to
    /// `2 × seconds`, so that frequency changes of the machine affect both alike. Each does its untimed set-up, then
    /// returns the seconds of its timed pass (`Timing.seconds { … }`). Returns the mean seconds per pass of each.
    static func alternate(seconds: Double, _ first: () -> Double, _ second: () -> Double) -> (first: Double, second: Double) {
        _ = first(); _ = second()
        var firstTotal = 0.0, secondTotal = 0.0, rounds = 0
        repeat {
            firstTotal += first()
            secondTotal += second()
            rounds += 1
        } while firstTotal + secondTotal < 2 * seconds
        return (firstTotal / Double(rounds), secondTotal / Double(rounds))
    }
}
