/// Fuzzes `ImageReference(parsing:)`: any text must parse or throw `ReferenceError`, and a
/// parsed reference must print as text that parses back to the same reference.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImageReference(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: start, count: count), as: UTF8.self)
    _ = try? ImageReference.validateTag(text)
    _ = try? ImageReference.validateDigest(text)
    guard let reference = try? ImageReference(parsing: text) else { return 0 }

    let printed = reference.description
    let reparsed: ImageReference
    do {
        reparsed = try ImageReference(parsing: printed)
    } catch {
        invariant(false, "\"\(text)\" parsed, but its description \"\(printed)\" does not: \(error)")
        return 0
    }
    invariant(reparsed == reference, "\"\(text)\" → \(reference) reparses as \(reparsed)")
    invariant(reference.matchesRepository(printed), "\"\(printed)\" does not match its own repository")
    invariant(
        printed.utf8.count <= count + 1, "description \"\(printed)\" is longer than the input \"\(text)\"")
    _ = reference.canonicalRepository
    return 0
}
