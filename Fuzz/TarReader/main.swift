/// Fuzzes `TarReader` with the build-context policy (`TarValidator`) and
/// `TarStreamValidator`: arbitrary bytes yield entries or a `TarError`, identically whether
/// fed at once or in random chunks (straddling 512-byte blocks), every regular entry delivers
/// exactly its size in content, and the stream validator agrees with the reader.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTarReader(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    let chunks = input.chunks(maxChunk: 1100)
    let whole = read([input.data[...]])
    let chunked = read(chunks)
    invariant(whole.events == chunked.events, "events differ by chunking:\n\(whole.events)\nvs\n\(chunked.events)")
    invariant(whole.error == chunked.error, "errors differ by chunking: \(String(describing: whole.error)) vs \(String(describing: chunked.error))")

    var stream = TarStreamValidator(maxMetadataSize: maxMetadataSize)
    var streamError: TarError?
    do {
        for chunk in chunks { try chunk.withUnsafeBytes { try stream.feed($0) } }
        try stream.finish()
    } catch let error as TarError {
        streamError = error
    } catch {
        invariant(false, "untyped error \(error)")
    }
    invariant(streamError == whole.error, "TarStreamValidator says \(String(describing: streamError)), the reader \(String(describing: whole.error))")
    return 0
}

/// Small so long-name and PAX limits are reachable.
private let maxMetadataSize = 2048

private enum Event: Equatable, CustomStringConvertible {
    case began(TarEntry)
    case data(Int)
    case ended

    var description: String {
        switch self {
        case .began(let entry): "began(\(entry.kind) \(entry.path) → \(entry.linkTarget) size \(entry.size))"
        case .data(let count): "data(\(count))"
        case .ended: "ended"
        }
    }
}

/// Records what the reader reports (data merged per entry, since chunking splits it) and
/// applies the validator to each entry.
private struct Recorder: TarEntryHandler {
    var validator = TarValidator()
    var events: [Event] = []
    var open: TarEntry?
    var received: UInt64 = 0

    mutating func tarEntryBegan(_ entry: TarEntry) throws {
        invariant(open == nil, "entry \(entry.path) began inside \(open!.path)")
        try validator.tarEntryBegan(entry)
        events.append(.began(entry))
        open = entry
        received = 0
    }

    mutating func tarEntryData(_ chunk: UnsafeRawBufferPointer) throws {
        invariant(open != nil, "data outside an entry")
        received += UInt64(chunk.count)
        invariant(received <= open!.size, "entry \(open!.path) got \(received) of \(open!.size) bytes")
    }

    mutating func tarEntryEnded() throws {
        guard let entry = open else { return invariant(false, "end outside an entry") }
        invariant(received == entry.size, "entry \(entry.path) ended after \(received) of \(entry.size) bytes")
        if received > 0 { events.append(.data(Int(received))) }
        events.append(.ended)
        open = nil
    }
}

private func read(_ chunks: [ArraySlice<UInt8>]) -> (events: [Event], error: TarError?) {
    var reader = TarReader(maxMetadataSize: maxMetadataSize)
    var recorder = Recorder()
    do {
        for chunk in chunks { try chunk.withUnsafeBytes { try reader.feed($0, to: &recorder) } }
        try reader.finish()
        return (recorder.events, nil)
    } catch let error as TarError {
        return (recorder.events, error)
    } catch {
        invariant(false, "untyped error \(error)")
        return (recorder.events, nil)
    }
}
