/// Fuzzes `JSONStreamSplitter`: arbitrary bytes split into values or a typed error,
/// identically whether fed at once or in random chunks; values are never empty, never start
/// with whitespace, and together are no larger than the input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONStreamSplitter(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    let whole = split([input.data[...]])
    let chunked = split(input.chunks(maxChunk: 16))
    invariant(whole.values == chunked.values, "values differ by chunking: \(whole.values) vs \(chunked.values)")
    invariant(whole.error == chunked.error, "errors differ by chunking: \(String(describing: whole.error)) vs \(String(describing: chunked.error))")
    let whitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
    for value in whole.values {
        invariant(!value.isEmpty, "empty value")
        invariant(!whitespace.contains(value[0]), "value starts with whitespace: \(value)")
        invariant(value.count <= maxValueSize, "value of \(value.count) bytes passed the limit")
    }
    invariant(whole.values.reduce(0) { $0 + $1.count } <= input.data.count, "values hold more bytes than the input")
    return 0
}

/// Small so the fuzzer reaches the size check with small inputs.
private let maxValueSize = 48

private func split(_ chunks: [ArraySlice<UInt8>]) -> (values: [[UInt8]], error: JSONStreamSplitter.Error?) {
    var splitter = JSONStreamSplitter(maxValueSize: maxValueSize)
    var values: [[UInt8]] = []
    do {
        for chunk in chunks { values += try splitter.feed(chunk) }
        values += try splitter.finish()
        invariant(!splitter.isInsideValue, "finished splitter is still inside a value")
        return (values, nil)
    } catch let error as JSONStreamSplitter.Error {
        do {
            _ = try splitter.feed(Array("{}".utf8))
            invariant(false, "splitter accepted bytes after \(error)")
        } catch let again as JSONStreamSplitter.Error {
            invariant(again == error, "splitter changed its error from \(error) to \(again)")
        } catch {
            invariant(false, "untyped error \(error)")
        }
        return (values, error)
    } catch {
        invariant(false, "untyped error \(error)")
        return (values, nil)
    }
}
