import Foundation
import Glibc
import Testing

@testable import OcimanCore

private let chunkSizes = [1, 3, 100, 511, 512, 513, 4096, 1 << 20]

@Suite("Tar reader")
struct TarReaderTests {
    private func sampleArchive() -> [UInt8] {
        var tar = TarBuilder()
        tar.directory("dir/")
        tar.file("dir/file.txt", String(repeating: "0123456789", count: 120))  // 1200 bytes: 3 blocks
        tar.symlink("dir/link", to: "file.txt")
        tar.hardLink("dir/hard", to: "dir/file.txt")
        tar.file("empty", "")
        tar.end()
        return tar.bytes
    }

    @Test(arguments: chunkSizes)
    func decodesEntriesWhateverTheChunking(chunkSize: Int) throws {
        let result = try read(sampleArchive(), chunkSize: chunkSize)
        #expect(result.entries.map(\.path) == ["dir/", "dir/file.txt", "dir/link", "dir/hard", "empty"])
        #expect(result.entries.map(\.kind) == [.directory, .regular, .symbolicLink, .hardLink, .regular])
        #expect(result.entries.map(\.size) == [0, 1200, 0, 0, 0])
        #expect(result.entries[2].linkTarget == "file.txt")
        #expect(result.entries[3].linkTarget == "dir/file.txt")
        #expect(result.contents[1] == Array(String(repeating: "0123456789", count: 120).utf8))
        #expect(result.ended == 5)
        #expect(result.entries[1].mode == 0o644)
    }

    @Test func joinsTheUstarPrefixField() throws {
        var tar = TarBuilder()
        tar.header(name: Array("name.txt".utf8), type: UInt8(ascii: "0"), prefix: Array("some/long/prefix".utf8))
        tar.end()
        #expect(try read(tar.bytes).entries.map(\.path) == ["some/long/prefix/name.txt"])
    }

    @Test func gnuLongNameAndLongLinkApplyToTheNextEntry() throws {
        let longName = Array(String(repeating: "n", count: 150).utf8) + Array("/file".utf8)
        let longTarget = Array(String(repeating: "t", count: 130).utf8)
        var tar = TarBuilder()
        tar.gnuLongName(longName)
        tar.gnuLongName(longTarget, type: UInt8(ascii: "K"))
        tar.header(name: Array("truncated".utf8), type: UInt8(ascii: "2"), linkName: Array("short".utf8), format: .gnu)
        tar.file("after", "a", format: .gnu)
        tar.end()
        let result = try read(tar.bytes, chunkSize: 7)
        #expect(result.entries.map(\.pathBytes) == [longName, Array("after".utf8)])
        #expect(result.entries[0].linkTargetBytes == longTarget)
        #expect(result.entries[1].linkTargetBytes.isEmpty)
    }

    @Test func paxOverridesPathLinkAndSize() throws {
        let path = Array("päx/ÿ-name-that-is-long-\(String(repeating: "x", count: 200))".utf8)
        var tar = TarBuilder()
        tar.pax([("path", path), ("mtime", Array("1.5".utf8)), ("size", Array("5".utf8))])
        tar.header(name: Array("ignored".utf8), type: UInt8(ascii: "0"), size: 0)
        tar.content(Array("hello".utf8))
        tar.pax([("linkpath", Array("target/with spaces".utf8))])
        tar.symlink("l", to: "x")
        tar.end()
        let result = try read(tar.bytes, chunkSize: 13)
        #expect(result.entries.map(\.pathBytes) == [path, Array("l".utf8)])
        #expect(result.entries[0].size == 5)
        #expect(result.contents[0] == Array("hello".utf8))
        #expect(result.entries[1].linkTarget == "target/with spaces")
    }

    @Test func emptyPaxValueFallsBackToTheHeaderField() throws {
        var tar = TarBuilder()
        tar.pax([("path", Array("first".utf8)), ("path", [])])
        tar.file("header-name", "x")
        tar.end()
        #expect(try read(tar.bytes).entries.map(\.path) == ["header-name"])
    }

    @Test func base256SizeIsDecoded() throws {
        var tar = TarBuilder()
        tar.header(name: Array("big".utf8), type: UInt8(ascii: "0"), size: 700, base256Size: true)
        tar.content([UInt8](repeating: 7, count: 700))
        tar.end()
        let result = try read(tar.bytes)
        #expect(result.entries.first?.size == 700)
        #expect(result.contents.first == [UInt8](repeating: 7, count: 700))
    }

    @Test func headerOnlyTypesCarryNoContentWhateverTheSizeField() throws {
        var tar = TarBuilder()
        tar.header(name: Array("d/".utf8), type: UInt8(ascii: "5"), size: 4096)
        tar.header(name: Array("h".utf8), type: UInt8(ascii: "1"), size: 99, linkName: Array("d/x".utf8))
        tar.file("f", "content")
        tar.end()
        let result = try read(tar.bytes)
        #expect(result.entries.map(\.path) == ["d/", "h", "f"])
        #expect(result.entries.map(\.size) == [0, 0, 7])
    }

    @Test func v7DirectoryIsMarkedByTrailingSlash() throws {
        var tar = TarBuilder()
        tar.header(name: Array("olddir/".utf8), type: 0, format: .v7)
        tar.header(name: Array("oldfile".utf8), type: 0, format: .v7)
        tar.end()
        #expect(try read(tar.bytes).entries.map(\.kind) == [.directory, .regular])
    }

    @Test func missingEndMarkerIsAcceptedAndTrailingBytesIgnored() throws {
        var tar = TarBuilder()
        tar.file("a", "1")
        #expect(try read(tar.bytes).entries.count == 1)
        tar.end()
        let padded = tar.bytes + [UInt8](repeating: 0xAB, count: 3000)
        #expect(try read(padded).entries.count == 1)
    }

    @Test func checksumMismatchIsMalformed() {
        var tar = TarBuilder()
        tar.header(name: Array("bad".utf8), type: UInt8(ascii: "0"), corruptChecksum: true)
        tar.end()
        let error = #expect(throws: TarError.self) { try read(tar.bytes) }
        #expect(error?.kind == .malformed)
        #expect(error?.description == "tar entry \"bad\": header checksum mismatch")
    }

    @Test func nonOctalNumberIsMalformed() {
        var tar = TarBuilder()
        tar.file("f", "")
        tar.end()
        var bytes = tar.bytes
        bytes[124] = UInt8(ascii: "9")
        // Keep the checksum valid so the number itself is what fails.
        for index in 148..<156 { bytes[index] = UInt8(ascii: " ") }
        let sum = bytes[0..<512].reduce(0) { $0 + Int($1) }
        let checksum = Array(String(format: "%06o", sum).utf8) + [0, UInt8(ascii: " ")]
        bytes.replaceSubrange(148..<156, with: checksum)
        let error = #expect(throws: TarError.self) { try read(bytes) }
        #expect(error?.kind == .malformed)
        #expect(error?.message == "size field is not an octal number")
    }

    @Test(arguments: [100, 512 + 10, 512 + 1200, 512 + 1536 - 1])
    func truncatedStreamIsReported(length: Int) {
        var tar = TarBuilder()
        tar.file("f", String(repeating: "x", count: 1200))
        let error = #expect(throws: TarError.self) { try read(Array(tar.bytes.prefix(length))) }
        #expect(error?.kind == .truncated)
    }

    @Test func metadataHeaderWithoutItsEntryIsTruncated() {
        var tar = TarBuilder()
        tar.gnuLongName(Array("orphan".utf8))
        let error = #expect(throws: TarError.self) { try read(tar.bytes) }
        #expect(error?.kind == .truncated)
    }

    @Test func loneZeroBlockFollowedByAHeaderIsMalformed() {
        var tar = TarBuilder()
        tar.file("a", "1")
        tar.content([UInt8](repeating: 0, count: 512))
        tar.file("b", "2")
        let error = #expect(throws: TarError.self) { try read(tar.bytes) }
        #expect(error?.kind == .malformed)
    }

    @Test func oversizedMetadataIsRefusedBeforeBuffering() {
        var tar = TarBuilder()
        tar.header(name: Array("././@LongLink".utf8), type: UInt8(ascii: "L"), size: 10_000_000, format: .gnu)
        var reader = TarReader(maxMetadataSize: 4096)
        var handler = RecordingHandler()
        let error = #expect(throws: TarError.self) {
            try tar.bytes.withUnsafeBytes { try reader.feed($0, to: &handler) }
        }
        #expect(error?.kind == .metadataTooLarge)
    }

    @Test func sparseFilesAreUnsupported() {
        var tar = TarBuilder()
        tar.header(name: Array("sparse".utf8), type: UInt8(ascii: "S"), format: .gnu)
        tar.end()
        #expect(throws: TarError(.unsupported, entry: "sparse", "GNU sparse files are not supported")) {
            try read(tar.bytes)
        }
    }

    @Test func realTarOutputDecodes() throws {
        let directory = try TemporaryDirectory()
        try makeGoldenTree(in: directory)
        try directory.write("big", String(repeating: "b", count: 70_000))
        for format in ["gnu", "posix", "ustar"] {
            let archive = directory.subpath("out-\(format).tar")
            try runTar(["--format=\(format)", "-C", directory.path, "-cf", archive, "Dockerfile", "a", "link", "big"])
            let result = try read(Array(try Data(contentsOf: URL(fileURLWithPath: archive))), chunkSize: 777)
            let byPath = Dictionary(uniqueKeysWithValues: zip(result.entries.map(\.path), result.contents))
            #expect(Set(byPath.keys) == ["Dockerfile", "a/", "a/z", "link", "big"], "format \(format)")
            #expect(byPath["big"] == Array(String(repeating: "b", count: 70_000).utf8))
            #expect(result.entries.first { $0.path == "link" }?.linkTarget == "a.txt")
        }
    }
}

@Suite("Tar validation")
struct TarValidationTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let label: String
        let kind: TarError.Kind
        let entry: String
        let build: @Sendable (inout TarBuilder) -> Void

        var testDescription: String { label }
    }

    static let rejected: [Case] = [
        Case(label: "absolute path", kind: .absolutePath, entry: "/etc/passwd") { $0.file("/etc/passwd", "x") },
        Case(label: "parent component", kind: .parentReference, entry: "a/../../b") { $0.file("a/../../b", "x") },
        Case(label: "leading parent", kind: .parentReference, entry: "../x") { $0.directory("../x") },
        Case(label: "parent in long name", kind: .parentReference, entry: "ok/../x") {
            $0.gnuLongName(Array("ok/../x".utf8))
            $0.file("short", "x", format: .gnu)
        },
        Case(label: "parent in PAX path", kind: .parentReference, entry: "../pax") {
            $0.pax([("path", Array("../pax".utf8))])
            $0.file("short", "x")
        },
        Case(label: "character device", kind: .specialFile, entry: "dev/null") {
            $0.header(name: Array("dev/null".utf8), type: UInt8(ascii: "3"))
        },
        Case(label: "block device", kind: .specialFile, entry: "sda") {
            $0.header(name: Array("sda".utf8), type: UInt8(ascii: "4"))
        },
        Case(label: "FIFO", kind: .specialFile, entry: "pipe") {
            $0.header(name: Array("pipe".utf8), type: UInt8(ascii: "6"))
        },
        Case(label: "absolute symlink", kind: .linkEscapesRoot, entry: "etc") { $0.symlink("etc", to: "/etc") },
        Case(label: "symlink climbing out", kind: .linkEscapesRoot, entry: "a/b/l") {
            $0.symlink("a/b/l", to: "../../../outside")
        },
        Case(label: "symlink out then back in", kind: .linkEscapesRoot, entry: "l") {
            $0.symlink("l", to: "../root/x")
        },
        Case(label: "symlink climbing out of a symlink", kind: .throughSymbolicLink, entry: "t") {
            $0.symlink("s", to: ".")
            $0.symlink("t", to: "s/..")
        },
        Case(label: "absolute hard link", kind: .linkEscapesRoot, entry: "h") { $0.hardLink("h", to: "/etc/shadow") },
        Case(label: "hard link climbing out", kind: .linkEscapesRoot, entry: "a/h") {
            $0.hardLink("a/h", to: "../secret")
        },
        Case(label: "write through a symlink", kind: .throughSymbolicLink, entry: "l/evil") {
            $0.symlink("l", to: "sub")
            $0.file("l/evil", "x")
        },
        Case(label: "hard link through a symlink", kind: .throughSymbolicLink, entry: "h") {
            $0.symlink("l", to: "sub")
            $0.hardLink("h", to: "l/file")
        },
        Case(label: "unknown type", kind: .unsupported, entry: "vol") {
            $0.header(name: Array("vol".utf8), type: UInt8(ascii: "V"))
        },
        Case(label: "file named as the root", kind: .malformed, entry: "./") { $0.file("./", "x") },
    ]

    @Test(arguments: rejected)
    func refuses(_ testCase: Case) {
        var tar = TarBuilder()
        tar.file("harmless", "first")
        testCase.build(&tar)
        tar.end()
        let error = #expect(throws: TarError.self) { try validateTar(tar.bytes) }
        #expect(error?.kind == testCase.kind)
        #expect(error?.entry == testCase.entry)
        #expect(error?.description.hasPrefix("tar entry \"\(testCase.entry)\": ") == true)
    }

    @Test func acceptsLinksThatStayInside() throws {
        var tar = TarBuilder()
        tar.directory("./")
        tar.file("./a/b/file", "x")
        tar.symlink("a/b/up", to: "../sibling")
        tar.symlink("a/b/dot", to: "./file")
        tar.symlink("a/b/root", to: "../..")
        tar.symlink("a/b/via", to: "up/x")  // through a symlink, but no ".." after it
        tar.hardLink("a/hard", to: "./a/b/file")
        tar.symlink("replaced", to: "a")
        tar.directory("replaced")  // a later entry replaces the symlink
        tar.file("replaced/inside", "ok")
        tar.end()
        try validateTar(tar.bytes)
    }

    @Test func messagesNameTheProblem() {
        var tar = TarBuilder()
        tar.symlink("a/l", to: "../../etc/passwd")
        tar.end()
        #expect(
            throws: TarError(
                .linkEscapesRoot, entry: "a/l",
                "symbolic link target \"../../etc/passwd\" points outside the archive root")
        ) { try validateTar(tar.bytes) }
    }

    @Test func refusesBeforeLaterChunksArrive() throws {
        var tar = TarBuilder()
        tar.file("/abs", String(repeating: "x", count: 5000))
        tar.end()
        var validator = TarStreamValidator()
        // The header alone is enough to refuse; no content needs to be seen.
        let error = #expect(throws: TarError.self) {
            try tar.bytes.withUnsafeBytes { try validator.feed(UnsafeRawBufferPointer(rebasing: $0[0..<512])) }
        }
        #expect(error?.kind == .absolutePath)
    }

    @Test func truncatedStreamFailsAtFinish() throws {
        var tar = TarBuilder()
        tar.file("f", "abc")
        var validator = TarStreamValidator()
        try tar.bytes.withUnsafeBytes { try validator.feed(UnsafeRawBufferPointer(rebasing: $0[0..<600])) }
        #expect(throws: TarError.self) { try validator.finish() }
    }
}

@Suite("Tar content hash equals directory hash")
struct TarContentHashTests {
    @Test(arguments: ["gnu", "posix", "ustar", "oldgnu"])
    func goldenTreeThroughRealTar(format: String) throws {
        let directory = try TemporaryDirectory()
        try makeGoldenTree(in: directory)
        let archive = try TemporaryDirectory()
        let tarPath = archive.subpath("context.tar")
        try runTar(["--format=\(format)", "-C", directory.path, "-cf", tarPath, "."])
        let options = ContentHashOptions(buildArguments: ["A": "1", "B": "2"], labels: ["x": "y"])
        #expect(
            try ContentHasher.hash(tarFile: tarPath).tag
                == "c8f94381ba266c6541f067084865f6b116144129017b8b980ecdc81d92c6d317")
        #expect(
            try ContentHasher.hash(tarFile: tarPath, options: options).tag
                == "def2fef5582c5069e5d0e7fd68eb48ff2c88d60d3ce64d7143fbd4818eec1c71")
    }

    @Test(arguments: chunkSizes)
    func awkwardTreeMatchesWhateverTheChunking(chunkSize: Int) throws {
        let directory = try TemporaryDirectory()
        let longDirectory = String(repeating: "long-directory-name/", count: 8)
        try directory.write(longDirectory + String(repeating: "f", count: 120), "deep")
        try directory.write(bytes: [0x6E, 0xFF, 0x6E], [9, 9])  // not UTF-8
        try directory.write("big", String(repeating: "0123456789abcdef", count: 80_000))
        try directory.write("a/z", "z")
        try directory.write("a.txt", "dot")
        try directory.write("a-b/.hidden", "h")
        try directory.write("one", "linked")
        try directory.hardLink("two", to: "one")
        try directory.symlink("sym", to: "a")
        try directory.makeDirectory("empty")
        let archive = try TemporaryDirectory()
        let tarPath = archive.subpath("context.tar")
        try runTar(["--format=gnu", "-C", directory.path, "-cf", tarPath, "."])
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: tarPath)))
        #expect(try hashTar(bytes, chunkSize: chunkSize) == ContentHasher.hash(directory: directory.path))
    }

    @Test func entryOrderInTheArchiveDoesNotMatter() throws {
        var forward = TarBuilder()
        forward.file("a/z", "z")
        forward.file("a.txt", "dot")
        forward.file("b", "b")
        forward.end()
        var backward = TarBuilder()
        backward.file("b", "b")
        backward.file("a.txt", "dot")
        backward.directory("a")
        backward.file("a/z", "z")
        backward.end()
        let expected = expectedDirectoryHash(files: [
            (Array("a/z".utf8), Array("z".utf8)), (Array("a.txt".utf8), Array("dot".utf8)),
            (Array("b".utf8), Array("b".utf8)),
        ])
        #expect(try hashTar(forward.bytes) == expected)
        #expect(try hashTar(backward.bytes) == expected)
    }

    @Test func laterEntriesReplaceEarlierOnesLikeExtraction() throws {
        var tar = TarBuilder()
        tar.file("f", "old")
        tar.hardLink("g", to: "f")
        tar.file("f", "new")  // replaces f; g keeps the old content
        tar.file("d/inner", "gone")
        tar.file("d", "now a file")
        tar.file("s", "was a file")
        tar.symlink("s", to: "d")
        tar.end()
        let expected = expectedDirectoryHash(files: [
            (Array("d".utf8), Array("now a file".utf8)), (Array("f".utf8), Array("new".utf8)),
            (Array("g".utf8), Array("old".utf8)),
        ])
        #expect(try hashTar(tar.bytes) == expected)
    }

    @Test func hardLinkToASymlinkAddsNoFile() throws {
        var tar = TarBuilder()
        tar.file("f", "x")
        tar.symlink("s", to: "f")
        tar.hardLink("h", to: "s")
        tar.end()
        #expect(try hashTar(tar.bytes) == expectedDirectoryHash(files: [(Array("f".utf8), Array("x".utf8))]))
    }

    @Test func fileUnderAFileIsAConflict() {
        var tar = TarBuilder()
        tar.file("a", "file")
        tar.file("a/b", "under a file")
        tar.end()
        let error = #expect(throws: TarError.self) { try hashTar(tar.bytes) }
        #expect(error?.kind == .conflict)
        #expect(error?.entry == "a/b")
    }

    @Test func hardLinkToNothingIsAConflict() {
        var tar = TarBuilder()
        tar.hardLink("h", to: "missing")
        tar.end()
        let error = #expect(throws: TarError.self) { try hashTar(tar.bytes) }
        #expect(error?.kind == .conflict)
    }

    @Test func unsafeArchivesAreRefusedWhileHashing() {
        var tar = TarBuilder()
        tar.symlink("l", to: "/etc")
        tar.end()
        let error = #expect(throws: TarError.self) { try hashTar(tar.bytes) }
        #expect(error?.kind == .linkEscapesRoot)
    }

    /// Descriptors of this process that point into `directory` (O_TMPFILE shows as "dir/#n (deleted)").
    private func openFiles(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")
        }.filter { $0.hasPrefix(directory + "/") }
    }

    @Test func spoolHasNoNameAndIsClosedAfterSuccessFailureOrDrop() throws {
        let spoolParent = try TemporaryDirectory()
        var tar = TarBuilder()
        tar.file("deep/er/file", "x")
        tar.file("top", "y")
        tar.end()

        var hasher = try TarContentHasher(temporaryDirectory: spoolParent.path)
        try tar.bytes.withUnsafeBytes { try hasher.feed($0) }
        #expect(try spoolParent.entries().isEmpty)
        #expect(try openFiles(in: spoolParent.path).count == 1)
        _ = try hasher.finish()
        #expect(try openFiles(in: spoolParent.path).isEmpty)

        var failing = try TarContentHasher(temporaryDirectory: spoolParent.path)
        try tar.bytes.withUnsafeBytes { try failing.feed(UnsafeRawBufferPointer(rebasing: $0[0..<1000])) }
        do {
            _ = try failing.finish()
            Issue.record("a truncated archive must not hash")
        } catch {
            #expect(error is TarError)
        }
        #expect(try openFiles(in: spoolParent.path).isEmpty)

        do {
            var dropped = try TarContentHasher(temporaryDirectory: spoolParent.path)
            try tar.bytes.withUnsafeBytes { try dropped.feed($0) }
            _ = consume dropped
        }
        #expect(try openFiles(in: spoolParent.path).isEmpty)
        #expect(try spoolParent.entries().isEmpty)
    }

    @Test func directoryEntryReplacesAFileAndSymlinkReplacesADirectory() throws {
        var tar = TarBuilder()
        tar.file("x", "file first")
        tar.directory("x")
        tar.file("x/inside", "i")
        tar.file("d/a", "a")
        tar.file("d/sub/b", "b")
        tar.symlink("d", to: "x")
        tar.file("d2/keep", "k")  // shares a prefix with "d" but is not under it
        tar.end()
        let expected = expectedDirectoryHash(files: [
            (Array("d2/keep".utf8), Array("k".utf8)), (Array("x/inside".utf8), Array("i".utf8)),
        ])
        #expect(try hashTar(tar.bytes) == expected)
    }

    @Test func hardLinkToItselfIsAConflict() {
        var tar = TarBuilder()
        tar.file("f", "x")
        tar.hardLink("f", to: "f")
        tar.end()
        #expect(throws: TarError.self) { try hashTar(tar.bytes) }
    }

    @Test func fileCountIsCapped() throws {
        var tar = TarBuilder()
        for index in 0..<4 { tar.file("f\(index)", "x") }
        tar.file("f0", "replacing does not count twice")
        tar.end()
        var within = try TarContentHasher(maxFiles: 4)
        try tar.bytes.withUnsafeBytes { try within.feed($0) }
        _ = try within.finish()

        var over = try TarContentHasher(maxFiles: 3)
        let error = #expect(throws: TarError.self) { try tar.bytes.withUnsafeBytes { try over.feed($0) } }
        #expect(error?.kind == .tooManyFiles)
        #expect(error?.entry == "f3")
    }

    @Test func walkOrderComparesComponentByComponent() {
        let paths = ["b", "a.txt", "a/z", "a-b/c", "a/y/x", "A", "a0", "a"]
        let sorted = paths.map { Array($0.utf8) }.sorted(by: walkOrderPrecedes).map { String(decoding: $0, as: UTF8.self) }
        #expect(sorted == ["A", "a", "a/y/x", "a/z", "a-b/c", "a.txt", "a0", "b"])
    }

    @Test func unwritableSpoolParentIsATypedError() {
        let error = #expect(throws: ContentHashError.self) {
            _ = try TarContentHasher(temporaryDirectory: "/nonexistent-ociman-dir")
        }
        #expect(error?.kind == .spoolFailed)
        #expect(error?.errno == ENOENT)
    }
}
