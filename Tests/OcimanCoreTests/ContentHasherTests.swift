import Foundation
import Glibc
import Testing

@testable import OcimanCore

@Suite("Segment framing")
struct SegmentHasherTests {
    // Values computed independently (Python hashlib over the same framed byte stream).
    @Test func emptyStreamIsPlainSHA256OfNothing() {
        #expect(SegmentHasher().finalize().hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func emptySegmentStillFeedsItsLength() {
        var hasher = SegmentHasher()
        hasher.push([UInt8]())
        let digest = hasher.finalize()
        #expect(digest.hex == "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc")
    }

    @Test func lengthIsLittleEndianU64BeforeTheBytes() {
        var hasher = SegmentHasher()
        hasher.push("hello")
        let digest = hasher.finalize()
        #expect(digest.hex == "fe745503750fdbf3e6ef676d16d85ee0d63626c594222f7e991908bdffef7ac9")
    }

    @Test func segmentBoundariesChangeTheDigest() {
        var abC = SegmentHasher()
        abC.push("ab")
        abC.push("c")
        var aBC = SegmentHasher()
        aBC.push("a")
        aBC.push("bc")
        let abCDigest = abC.finalize()
        let aBCDigest = aBC.finalize()
        #expect(abCDigest.hex == "43ee655579de01ca739b3f95c1c2d3f46d353b2c0df818064ea594506cdb2617")
        #expect(aBCDigest.hex == "9a8acca1b6c6c0befd3fbc756aed625da998c998f7252e738c4ef061906b9b21")
    }

    @Test func streamedSegmentEqualsOneShotPush() {
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var oneShot = SegmentHasher()
        oneShot.push(data)
        var streamed = SegmentHasher()
        streamed.beginSegment(length: UInt64(data.count))
        data.withUnsafeBytes { bytes in
            var offset = 0
            for size in [1, 7, 4096, 50_000] {
                streamed.append(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + size)]))
                offset += size
            }
            streamed.append(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
        }
        let oneShotDigest = oneShot.finalize()
        let streamedDigest = streamed.finalize()
        #expect(oneShotDigest == streamedDigest)
    }
}

@Suite("Content hash golden vectors (SPEC §5)")
struct GoldenVectorTests {
    @Test func inlineInstructions() {
        let hash = ContentHasher.hash(instructions: "FROM scratch\n")
        #expect(hash.tag == "c2b8fd8de1978dee7b553cb2064d7c82a24b852e62dca88010f5417b14381e52")
        #expect(hash.digest == "sha256:c2b8fd8de1978dee7b553cb2064d7c82a24b852e62dca88010f5417b14381e52")
        #expect(
            hash.reference(name: "pg-test")
                == "pg-test:c2b8fd8de1978dee7b553cb2064d7c82a24b852e62dca88010f5417b14381e52")
    }

    @Test func inlineInstructionsWithArgumentAndLabel() throws {
        let options = ContentHashOptions(buildArguments: ["VERSION": "1.2"], labels: ["org.example.role": "db"])
        let hash = try ContentHasher.hash(.instructions("FROM scratch\n"), options: options)
        #expect(hash.tag == "6bad316542df00602de6003224655858f1e7fe6d370f882cae691476b1bf7ebd")
    }

    @Test func directoryWithSymlinkHiddenAndEmptyDirectory() throws {
        let directory = try TemporaryDirectory()
        try makeGoldenTree(in: directory)
        let hash = try ContentHasher.hash(.directory(path: directory.path))
        #expect(hash.tag == "c8f94381ba266c6541f067084865f6b116144129017b8b980ecdc81d92c6d317")
    }

    @Test func directoryWithArgumentsAndLabel() throws {
        let directory = try TemporaryDirectory()
        try makeGoldenTree(in: directory)
        let options = ContentHashOptions(buildArguments: ["B": "2", "A": "1"], labels: ["x": "y"])
        let hash = try ContentHasher.hash(directory: directory.path, options: options)
        #expect(hash.tag == "def2fef5582c5069e5d0e7fd68eb48ff2c88d60d3ce64d7143fbd4818eec1c71")
    }

    @Test func rootGivenWithTrailingSlashHashesTheSame() throws {
        let directory = try TemporaryDirectory()
        try makeGoldenTree(in: directory)
        let hash = try ContentHasher.hash(directory: directory.path + "/")
        #expect(hash.tag == "c8f94381ba266c6541f067084865f6b116144129017b8b980ecdc81d92c6d317")
    }
}

@Suite("Options beyond the library")
struct OptionSegmentTests {
    let base = ContentHasher.hash(instructions: "FROM scratch\n")

    @Test(arguments: [nil, "", "Dockerfile"] as [String?])
    func defaultDockerfileKeepsTheLibraryDigest(dockerfile: String?) {
        let hash = ContentHasher.hash(
            instructions: "FROM scratch\n", options: ContentHashOptions(dockerfile: dockerfile, target: ""))
        #expect(hash == base)
    }

    @Test func dockerfileAndTargetAreAppendedAfterLabels() {
        let options = ContentHashOptions(labels: ["k": "v"], dockerfile: "build.Dockerfile", target: "runtime")
        var expected = SegmentHasher()
        for segment in [
            "content", "FROM scratch\n", "build-arguments", "labels", "k", "v", "dockerfile",
            "build.Dockerfile", "target", "runtime",
        ] {
            expected.push(segment)
        }
        let hash = ContentHasher.hash(instructions: "FROM scratch\n", options: options)
        let expectedDigest = expected.finalize()
        #expect(hash.sha256 == expectedDigest)
    }

    @Test func dockerfileAndTargetAreDistinguishable() {
        let asDockerfile = ContentHasher.hash(
            instructions: "FROM scratch\n", options: ContentHashOptions(dockerfile: "x"))
        let asTarget = ContentHasher.hash(instructions: "FROM scratch\n", options: ContentHashOptions(target: "x"))
        #expect(asDockerfile != asTarget)
        #expect(asDockerfile != base)
        #expect(asTarget != base)
    }

    @Test func keysAreOrderedByUTF8BytesNotSwiftStringOrder() {
        // ANGSTROM SIGN (E2 84 AB) normalises to U+00C5, so Swift's `<` puts it before
        // U+00FF (C3 BF); by bytes it comes after. The hash must follow the bytes.
        let angstrom = "\u{212B}"
        let yDiaeresis = "\u{FF}"
        #expect(angstrom < yDiaeresis)
        let labels = [angstrom: "1", yDiaeresis: "2", "a": "3", "Z": "4"]
        var expected = SegmentHasher()
        for segment in ["content", "x", "build-arguments", "labels"] { expected.push(segment) }
        for key in ["Z", "a", yDiaeresis, angstrom] {
            expected.push(key)
            expected.push(labels[key]!)
        }
        let hash = ContentHasher.hash(instructions: "x", options: ContentHashOptions(labels: labels))
        let expectedDigest = expected.finalize()
        #expect(hash.sha256 == expectedDigest)
    }

    @Test func argumentsAndLabelsAreSeparateSections() {
        let asArgument = ContentHasher.hash(instructions: "x", options: ContentHashOptions(buildArguments: ["k": "v"]))
        let asLabel = ContentHasher.hash(instructions: "x", options: ContentHashOptions(labels: ["k": "v"]))
        #expect(asArgument != asLabel)
    }
}

@Suite("Directory walk")
struct DirectoryWalkTests {
    @Test func entriesAreSortedByNameBytesAndSubdirectoriesVisitedInPlace() throws {
        let directory = try TemporaryDirectory()
        // Byte order: "B" < "a" < "a-b" < "a.txt" < "a0" < "b"; "a" is entered when reached.
        for name in ["b", "a0", "a.txt", "a-b", "B", "a/z", "a/y/deep", "a/Y"] {
            try directory.write(name, "<\(name)>")
        }
        let order = ["B", "a/Y", "a/y/deep", "a/z", "a-b", "a.txt", "a0", "b"]
        let expected = expectedDirectoryHash(files: order.map { (Array($0.utf8), Array("<\($0)>".utf8)) })
        #expect(try ContentHasher.hash(directory: directory.path) == expected)
    }

    @Test func namesThatAreNotUTF8AreHashedAsRawBytes() throws {
        let directory = try TemporaryDirectory()
        let latin1 = [UInt8(ascii: "f"), 0xE9, UInt8(ascii: "e")]  // "fée" in Latin-1
        let lone: [UInt8] = [0xFF, 0xFE]
        try directory.write(bytes: latin1, [1, 2, 3])
        let nonUTF8Directory: [UInt8] = [UInt8(ascii: "d"), 0xC3]
        try directory.write(bytes: nonUTF8Directory + Array("/inner".utf8), [4])
        try directory.write(bytes: lone, [])
        try directory.write("plain", "p")
        let expected = expectedDirectoryHash(files: [
            (nonUTF8Directory + Array("/inner".utf8), [4]),
            (latin1, [1, 2, 3]),
            (Array("plain".utf8), Array("p".utf8)),
            (lone, []),
        ])
        #expect(try ContentHasher.hash(directory: directory.path) == expected)
    }

    @Test func onlyRegularFilesCountAndSymlinksAreNeverFollowed() throws {
        let directory = try TemporaryDirectory()
        try directory.write("real/file", "r")
        try directory.symlink("dirlink", to: "real")
        try directory.symlink("dangling", to: "nowhere")
        try directory.symlink("outside", to: "/etc")
        try directory.fifo("pipe")
        try directory.makeDirectory("empty/nested")
        let expected = expectedDirectoryHash(files: [(Array("real/file".utf8), Array("r".utf8))])
        #expect(try ContentHasher.hash(directory: directory.path) == expected)
    }

    @Test func hardLinkedFilesCountOncePerName() throws {
        let directory = try TemporaryDirectory()
        try directory.write("one", "same")
        try directory.hardLink("two", to: "one")
        let expected = expectedDirectoryHash(files: [
            (Array("one".utf8), Array("same".utf8)), (Array("two".utf8), Array("same".utf8)),
        ])
        #expect(try ContentHasher.hash(directory: directory.path) == expected)
    }

    @Test func filesLargerThanTheReadBufferStreamCorrectly() throws {
        let directory = try TemporaryDirectory()
        let size = DirectoryWalker.readBufferSize * 5 + 12_345  // also crosses the fadvise threshold
        let contents = (0..<size).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) }
        try directory.write(bytes: Array("big.bin".utf8), contents)
        try directory.write("empty", "")
        let expected = expectedDirectoryHash(files: [(Array("big.bin".utf8), contents), (Array("empty".utf8), [])])
        #expect(try ContentHasher.hash(directory: directory.path) == expected)
    }

    @Test func rootMayBeASymlinkToADirectory() throws {
        let directory = try TemporaryDirectory()
        try directory.write("ctx/f", "x")
        try directory.symlink("alias", to: "ctx")
        #expect(
            try ContentHasher.hash(directory: directory.subpath("alias"))
                == ContentHasher.hash(directory: directory.subpath("ctx")))
    }

    @Test func contentChangesChangeTheHashButModesAndTimesDoNot() throws {
        let directory = try TemporaryDirectory()
        try directory.write("f", "one")
        let before = try ContentHasher.hash(directory: directory.path)
        chmod(directory.subpath("f"), 0o600)
        var times = [timespec(tv_sec: 1, tv_nsec: 0), timespec(tv_sec: 1, tv_nsec: 0)]
        utimensat(AT_FDCWD, directory.subpath("f"), &times, 0)
        #expect(try ContentHasher.hash(directory: directory.path) == before)
        try directory.write("f", "two")
        #expect(try ContentHasher.hash(directory: directory.path) != before)
    }

    @Test func directoryAndInstructionsNeverCollide() throws {
        let directory = try TemporaryDirectory()
        #expect(try ContentHasher.hash(directory: directory.path) != ContentHasher.hash(instructions: ""))
    }
}

@Suite("Directory hash errors")
struct ContentHashErrorTests {
    @Test func missingRootIsNotFound() throws {
        let directory = try TemporaryDirectory()
        let missing = directory.subpath("missing")
        let error = #expect(throws: ContentHashError.self) { try ContentHasher.hash(directory: missing) }
        #expect(error?.kind == .notFound)
        #expect(error?.path == missing)
        #expect(error?.errno == ENOENT)
        #expect(error?.description == "build context \"\(missing)\" does not exist: No such file or directory")
    }

    @Test func fileAsRootIsNotADirectory() throws {
        let directory = try TemporaryDirectory()
        try directory.write("file", "x")
        let error = #expect(throws: ContentHashError.self) {
            try ContentHasher.hash(directory: directory.subpath("file"))
        }
        #expect(error?.kind == .notADirectory)
        #expect(error?.reason == "Not a directory")
    }

    @Test(.enabled(if: getuid() != 0, "root reads files regardless of their mode"))
    func unreadableFileNamesTheFileAndErrno() throws {
        let directory = try TemporaryDirectory()
        try directory.write("sub/secret", "x")
        chmod(directory.subpath("sub/secret"), 0)
        let error = #expect(throws: ContentHashError.self) { try ContentHasher.hash(directory: directory.path) }
        #expect(error?.kind == .unreadable)
        #expect(error?.path == directory.subpath("sub/secret"))
        #expect(error?.errno == EACCES)
    }
}
