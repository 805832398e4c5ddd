/// Fuzzes `FrameDecoder` and `LineSplitter`: arbitrary bytes decode to frames or a typed
/// error, identically whether fed at once or in random chunks, and the lines cut from the
/// frames do not depend on how each payload is chunked either.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameDecoder(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    let whole = decode([input.data[...]], payloadSizes: nil)
    let chunked = decode(input.chunks(maxChunk: 24), payloadSizes: input.chunkSizes(maxChunk: 5))
    invariant(whole.frames == chunked.frames, "frames differ by chunking: \(whole.frames) vs \(chunked.frames)")
    invariant(whole.error == chunked.error, "errors differ by chunking: \(String(describing: whole.error)) vs \(String(describing: chunked.error))")
    invariant(whole.lines == chunked.lines, "lines differ by chunking: \(whole.lines) vs \(chunked.lines)")
    let payloadBytes = whole.frames.reduce(0) { $0 + $1.payload.count }
    invariant(payloadBytes + 8 * whole.frames.count <= input.data.count, "frames hold more bytes than the input")
    return 0
}

/// Small limits so the fuzzer reaches the size checks with small inputs.
private let maxFrameSize = 64
private let maxLineLength = 7

private struct Outcome {
    var frames: [Frame] = []
    var error: FrameDecoder.Error?
    var lines: [LineSplitter.Line] = []
}

/// With `payloadSizes`, each payload is also fed to the line splitter in pieces, as reads would cut it.
private func decode(_ chunks: [ArraySlice<UInt8>], payloadSizes: ChunkSizes?) -> Outcome {
    var payloadSizes = payloadSizes
    var outcome = Outcome()
    var decoder = FrameDecoder(maxFrameSize: maxFrameSize)
    var splitter = LineSplitter(maxLineLength: maxLineLength)
    func split(_ frames: [Frame]) {
        for frame in frames {
            let pieces = payloadSizes?.cut(frame.payload) ?? [frame.payload[...]]
            for piece in pieces { outcome.lines += splitter.feed(piece, stream: frame.stream) }
        }
    }
    do {
        for chunk in chunks {
            let frames = try decoder.feed(chunk)
            outcome.frames += frames
            split(frames)
        }
        try decoder.finish()
    } catch let error as FrameDecoder.Error {
        outcome.error = error
        // Feeding after an error must keep throwing it.
        do {
            _ = try decoder.feed([1, 0, 0, 0, 0, 0, 0, 0])
            invariant(false, "decoder accepted bytes after \(error)")
        } catch let again as FrameDecoder.Error {
            invariant(again == error, "decoder changed its error from \(error) to \(again)")
        } catch {
            invariant(false, "untyped error \(error)")
        }
    } catch {
        invariant(false, "untyped error \(error)")
    }
    outcome.lines += splitter.finish()
    return outcome
}
