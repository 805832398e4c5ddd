/// One libFuzzer input: the first two bytes seed how the rest is cut into chunks, so the
/// fuzzer explores chunk boundaries as well as content. Streaming parsers must give the same
/// result whatever the chunking; each target checks that against a single-chunk feed.
struct FuzzInput {
    let data: [UInt8]
    private let seed: UInt32

    init(_ start: UnsafePointer<UInt8>?, _ count: Int) {
        let bytes = start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
        seed = bytes.count >= 2 ? UInt32(bytes[0]) << 8 | UInt32(bytes[1]) : 0
        data = Array(bytes.dropFirst(2))
    }

    /// `data` cut into pieces of 1...maxChunk bytes, sizes drawn from the seed.
    func chunks(maxChunk: Int) -> [ArraySlice<UInt8>] {
        var sizes = ChunkSizes(seed: seed, maxChunk: maxChunk)
        return sizes.cut(data)
    }

    func chunkSizes(maxChunk: Int) -> ChunkSizes {
        ChunkSizes(seed: seed, maxChunk: maxChunk)
    }
}

/// A deterministic pseudo-random sequence of chunk sizes in 1...maxChunk.
struct ChunkSizes {
    private var state: UInt32
    let maxChunk: Int

    init(seed: UInt32, maxChunk: Int) {
        state = seed &* 2_654_435_761 &+ 1
        self.maxChunk = maxChunk
    }

    mutating func next() -> Int {
        state = state &* 1_103_515_245 &+ 12_345
        return Int((state >> 8) % UInt32(maxChunk)) + 1
    }

    mutating func cut(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var pieces: [ArraySlice<UInt8>] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + next())
            pieces.append(bytes[offset..<end])
            offset = end
        }
        return pieces
    }
}

/// A broken invariant: abort so libFuzzer records the input as a crash.
func invariant(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("invariant violated: \(message())") }
}
