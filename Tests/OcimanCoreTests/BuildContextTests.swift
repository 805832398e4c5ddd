import Foundation
import Glibc
import Testing

@testable import OcimanCore

/// Every chunk the directory producer hands out, plus the largest one.
private func archive(of root: String) throws -> (bytes: [UInt8], largestChunk: Int) {
    let producer = try DirectoryTarProducer(root: root)
    var bytes: [UInt8] = []
    var largest = 0
    while let chunk = try producer.next() {
        bytes += chunk
        largest = max(largest, chunk.count)
    }
    return (bytes, largest)
}

private func extract(_ archive: [UInt8], into directory: TemporaryDirectory) throws {
    let file = directory.path + ".tar"
    try Data(archive).write(to: URL(fileURLWithPath: file))
    defer { unlink(file) }
    try runTar(["-xf", file, "-C", directory.path])
}

@Suite("Directory contexts as tar streams")
struct DirectoryTarTests {
    @Test func archiveHashesLikeTheDirectoryItCameFrom() throws {
        let directory = try TemporaryDirectory()
        try makeGoldenTree(in: directory)
        let (bytes, _) = try archive(of: directory.path)
        #expect(try hashTar(bytes).tag == "c8f94381ba266c6541f067084865f6b116144129017b8b980ecdc81d92c6d317")
        let options = ContentHashOptions(buildArguments: ["A": "1", "B": "2"], labels: ["x": "y"])
        #expect(try hashTar(bytes, chunkSize: 7, options: options) == ContentHasher.hash(directory: directory.path, options: options))
    }

    @Test func membersComeInWalkOrderWithLinksKept() throws {
        let directory = try TemporaryDirectory()
        try makeGoldenTree(in: directory)
        let (bytes, _) = try archive(of: directory.path)
        let recorded = try read(bytes, chunkSize: 100)
        #expect(recorded.entries.map(\.path) == [".hidden/", ".hidden/h", "Dockerfile", "a/", "a/z", "a.txt", "empty/", "link"])
        let link = try #require(recorded.entries.last)
        #expect(link.kind == .symbolicLink && link.linkTarget == "a.txt")
        try validateTar(bytes)
    }

    @Test func tarExtractsTheSameTreeWithModes() throws {
        let directory = try TemporaryDirectory()
        try makeGoldenTree(in: directory)
        try directory.write("bin/run", "#!/bin/sh\n")
        chmod(directory.subpath("bin/run"), 0o755)
        let (bytes, _) = try archive(of: directory.path)
        let copy = try TemporaryDirectory()
        try extract(bytes, into: copy)
        #expect(try ContentHasher.hash(directory: copy.path) == ContentHasher.hash(directory: directory.path))
        var status = stat()
        #expect(stat(copy.subpath("bin/run"), &status) == 0 && status.st_mode & 0o777 == 0o755)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: copy.subpath("link")) == "a.txt")
    }

    @Test func longAndNonUTF8NamesRoundTrip() throws {
        let directory = try TemporaryDirectory()
        let long = String(repeating: "d", count: 120) + "/" + String(repeating: "f", count: 130)
        try directory.write(long, "long\n")
        try directory.symlink("to-long", to: long)
        try directory.symlink("far", to: String(repeating: "x", count: 150))
        try directory.write(bytes: [0x6e, 0xff, 0x2e, 0x74], Array("latin\n".utf8))
        let (bytes, _) = try archive(of: directory.path)
        #expect(try hashTar(bytes) == ContentHasher.hash(directory: directory.path))
        let recorded = try read(bytes)
        #expect(recorded.entries.contains { $0.path == long })
        #expect(recorded.entries.contains { $0.path == "far" && $0.linkTarget == String(repeating: "x", count: 150) })
        #expect(recorded.entries.contains { $0.pathBytes == [0x6e, 0xff, 0x2e, 0x74] })
        let copy = try TemporaryDirectory()
        try extract(bytes, into: copy)
        #expect(try ContentHasher.hash(directory: copy.path) == ContentHasher.hash(directory: directory.path))
    }

    @Test func largeFilesStreamInBoundedChunks() throws {
        let directory = try TemporaryDirectory()
        let size = 3 * DirectoryTarProducer.chunkSize + 123
        try directory.write(bytes: Array("big".utf8), (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try directory.write("small", "s\n")
        let (bytes, largest) = try archive(of: directory.path)
        #expect(largest <= DirectoryTarProducer.chunkSize + 4 * TarWriter.blockSize)
        #expect(try hashTar(bytes, chunkSize: 65_537) == ContentHasher.hash(directory: directory.path))
    }

    /// The exact bytes the engine receives for a tree with fixed modes and times, pinned from
    /// the producer as it was before it shared the hash's walker.
    @Test func archiveBytesArePinned() throws {
        let directory = try TemporaryDirectory()
        let longDirectory = String(repeating: "d", count: 120)
        let long = longDirectory + "/" + String(repeating: "f", count: 130)
        let notUTF8: [UInt8] = [0x6e, 0xff, 0x2e, 0x74]
        try directory.write("Dockerfile", "FROM scratch\n")
        try directory.write("bin/run", "#!/bin/sh\n")
        try directory.write("secret", "s")
        try directory.write("empty-file", "")
        try directory.write("padded", String(repeating: "p", count: 700))
        try directory.write(long, "long\n")
        try directory.write(bytes: notUTF8, Array("latin\n".utf8))
        try directory.makeDirectory("empty")
        try directory.symlink("link", to: "Dockerfile")
        try directory.symlink("far", to: String(repeating: "x", count: 150))
        try directory.fifo("pipe")
        let modes: [(String, mode_t)] = [
            ("Dockerfile", 0o644), ("empty-file", 0o644), ("padded", 0o644), ("bin", 0o755), ("bin/run", 0o755),
            ("secret", 0o600), (longDirectory, 0o750), (long, 0o640), ("empty", 0o700),
        ]
        for (path, mode) in modes { #expect(chmod(directory.subpath(path), mode) == 0) }
        #expect(chmod(directory.absolute(notUTF8), 0o644) == 0)
        let times = [timespec(tv_sec: 1_700_000_000, tv_nsec: 0), timespec(tv_sec: 1_700_000_000, tv_nsec: 0)]
        for (path, _) in modes { #expect(utimensat(AT_FDCWD, directory.subpath(path), times, 0) == 0) }
        for path in ["link", "far"] {
            #expect(utimensat(AT_FDCWD, directory.subpath(path), times, AT_SYMLINK_NOFOLLOW) == 0)
        }
        #expect(utimensat(AT_FDCWD, directory.absolute(notUTF8), times, 0) == 0)
        let (bytes, _) = try archive(of: directory.path)
        var digest = SegmentHasher()
        bytes.withUnsafeBytes { digest.append($0) }
        #expect(ContentHash(sha256: digest.finalize()).tag == "8ff6fe1aa0e2835f0c115659fb9abd1820f0f2fec71b2bf904d1b9b4a8fe5a3d")
    }

    @Test func specialFilesAreLeftOut() throws {
        let directory = try TemporaryDirectory()
        try directory.write("Dockerfile", "FROM scratch\n")
        try directory.fifo("pipe")
        let (bytes, _) = try archive(of: directory.path)
        #expect(try read(bytes).entries.map(\.path) == ["Dockerfile"])
        try validateTar(bytes)
    }

    @Test func emptyDirectoryIsJustTheEndMarker() throws {
        let directory = try TemporaryDirectory()
        let (bytes, _) = try archive(of: directory.path)
        #expect(bytes == TarWriter.endOfArchive)
    }

    @Test func inlineInstructionsArchiveHoldsOnlyTheDockerfile() throws {
        let bytes = TarWriter.singleFileArchive(name: "Dockerfile", contents: Array("FROM scratch\n".utf8))
        let recorded = try read(bytes)
        #expect(recorded.entries.map(\.path) == ["Dockerfile"])
        #expect(recorded.contents == [Array("FROM scratch\n".utf8)])
    }

    @Test func paxRecordLengthCountsItself() {
        // " a=bcd\n" is 7 bytes; with the one length digit the record is 8.
        #expect(TarWriter.paxRecord("a", Array("bcd".utf8)) == Array("8 a=bcd\n".utf8))
        // 96 bytes of record body + 2 length digits = 98.
        let value = [UInt8](repeating: UInt8(ascii: "v"), count: 92)
        let record = TarWriter.paxRecord("k", value)
        #expect(record.count == 98 && record.starts(with: Array("98 k=".utf8)))
        // Crossing a digit boundary: body 99 + 2 digits = 101, which itself needs 3: 102.
        let crossing = TarWriter.paxRecord("k", [UInt8](repeating: 0x61, count: 95))
        #expect(crossing.count == 102 && crossing.starts(with: Array("102 k=".utf8)))
    }
}

@Suite("Build-context roots (SPEC §7)")
struct ContextRootsTests {
    @Test func noRootsMeansForbiddenWithHowToConfigure() throws {
        #expect {
            try ContextRoots([]).resolve("/tmp")
        } throws: { error in
            guard case .forbidden(let message) = error as? OcimanError else { return false }
            return message.contains("--context-root") && message.contains("OCIMAN_CONTEXT_ROOTS")
        }
    }

    @Test func insideIsResolvedOutsideIsForbidden() throws {
        let root = try TemporaryDirectory()
        try root.makeDirectory("ctx/sub")
        let roots = ContextRoots([root.path])
        #expect(try roots.resolve(root.subpath("ctx/sub/..")) == ContextRoots.realPath(root.subpath("ctx")))
        #expect(try roots.resolve(root.path) == ContextRoots.realPath(root.path))
        let other = try TemporaryDirectory()
        #expect(throws: OcimanError.self) { try roots.resolve(other.path) }
        #expect(isForbidden { try roots.resolve(other.path) })
        #expect(isForbidden { try roots.resolve(root.subpath("ctx/../..")) })
    }

    @Test func symlinkInsideARootPointingOutIsForbidden() throws {
        let root = try TemporaryDirectory()
        let outside = try TemporaryDirectory()
        try root.symlink("escape", to: outside.path)
        #expect(isForbidden { try ContextRoots([root.path]).resolve(root.subpath("escape")) })
    }

    @Test func missingPathsRevealNothingOutsideTheRoots() throws {
        let root = try TemporaryDirectory()
        let roots = ContextRoots([root.path])
        #expect(isInvalid { try roots.resolve(root.subpath("nope")) })
        #expect(isForbidden { try roots.resolve("/definitely/not/here") })
        #expect(isInvalid { try roots.resolve("relative/path") })
        try root.write("file", "x")
        #expect(isInvalid { try roots.resolve(root.subpath("file")) })
    }

    @Test func aPrefixThatIsNotADirectoryBoundaryDoesNotCount() throws {
        let root = try TemporaryDirectory()
        try root.makeDirectory("app")
        try root.makeDirectory("application")
        let roots = ContextRoots([root.subpath("app")])
        #expect(isForbidden { try roots.resolve(root.subpath("application")) })
    }

    private func isForbidden(_ body: () throws -> String) -> Bool {
        do {
            _ = try body()
            return false
        } catch {
            if case .forbidden? = error as? OcimanError { return true }
            return false
        }
    }

    private func isInvalid(_ body: () throws -> String) -> Bool {
        do {
            _ = try body()
            return false
        } catch {
            if case .invalid(let field, _)? = error as? OcimanError { return field == "context.path" }
            return false
        }
    }
}

@Suite("Build options validation")
struct BuildOptionsValidationTests {
    private func field(_ options: BuildOptions, _ source: BuildSource = .directory(path: "/x"), building: Bool = true)
        -> String?
    {
        do {
            try options.validate(for: source, building: building)
            return nil
        } catch {
            if case .invalid(let field, _) = error { return field ?? "<none>" }
            return "<\(error)>"
        }
    }

    @Test func validOptionsPass() {
        #expect(field(BuildOptions(dockerfile: "docker/Dockerfile.dev", target: "build", name: "localhost/app")) == nil)
        #expect(field(BuildOptions(tag: "localhost/app:1", ifAbsent: true)) == nil)
        #expect(field(BuildOptions()) == nil)
    }

    @Test(arguments: ["/etc/passwd", "../Dockerfile", "a/../../b", ""])
    func dockerfileMustStayInsideTheContext(_ path: String) {
        #expect(field(BuildOptions(dockerfile: path)) == "dockerfile")
    }

    @Test func dockerfileDoesNotApplyToInlineInstructions() {
        #expect(field(BuildOptions(dockerfile: "Other"), .instructions("FROM scratch\n")) == "dockerfile")
    }

    @Test func tagAndNameAreExclusiveAndValidated() {
        #expect(field(BuildOptions(tag: "a:1", name: "b")) == "tag")
        #expect(field(BuildOptions(tag: "Bad:Ref")) == "tag")
        #expect(field(BuildOptions(tag: "app@sha256:" + String(repeating: "a", count: 64))) == "tag")
        #expect(field(BuildOptions(name: "app:1")) == "name")
        #expect(field(BuildOptions(name: "UPPER")) == "name")
    }

    @Test func ifAbsentNeedsSomethingToLookFor() {
        #expect(field(BuildOptions(ifAbsent: true)) == "if_absent")
    }

    @Test func argumentsAndLabelsFollowTheLibraryRules() {
        #expect(field(BuildOptions(buildArguments: ["A=B": "1"]))?.hasPrefix("build_args") == true)
        #expect(field(BuildOptions(labels: ["bad key": "1"]))?.hasPrefix("labels") == true)
    }

    @Test func hashIgnoresBuildOnlyRules() {
        // /hash takes no tag or if_absent, so their rules do not apply there.
        #expect(field(BuildOptions(ifAbsent: true), building: false) == nil)
        #expect(field(BuildOptions(name: "app:1"), building: false) == "name")
    }
}

@Suite("Tar uploads are checked before they are forwarded")
struct TarUploadForwarderTests {
    private func upload(_ chunks: [[UInt8]]) -> UploadStream {
        let (stream, continuation) = AsyncStream.makeStream(of: ArraySlice<UInt8>.self)
        for chunk in chunks { continuation.yield(chunk[...]) }
        continuation.finish()
        return UploadStream(stream)
    }

    private func goodTar(fileSize: Int = 10) -> [UInt8] {
        var tar = TarBuilder()
        tar.file("Dockerfile", "FROM scratch\n")
        tar.header(name: Array("data".utf8), type: UInt8(ascii: "0"), size: UInt64(fileSize))
        tar.content([UInt8](repeating: 7, count: fileSize))
        tar.end()
        return tar.bytes
    }

    @Test func refusedEntryInThePrefetchWindowFailsBeforeForwarding() async throws {
        var tar = TarBuilder()
        tar.file("/etc/passwd", "x")
        tar.end()
        let forwarder = try TarUploadForwarder(upload([tar.bytes]), hashing: false)
        await #expect(throws: OcimanError.self) { try await forwarder.prefetch(upTo: 1 << 20) }
        guard case .invalid(let field, let message)? = forwarder.failure else {
            Issue.record("expected an invalid failure, got \(String(describing: forwarder.failure))")
            return
        }
        #expect(field == "body" && message.contains("absolute"))
    }

    @Test func refusedEntryAfterTheWindowStopsTheStream() async throws {
        var tar = TarBuilder()
        tar.header(name: Array("big".utf8), type: UInt8(ascii: "0"), size: 4096)
        tar.content([UInt8](repeating: 1, count: 4096))
        tar.file("../escape", "x")
        tar.end()
        let chunks = stride(from: 0, to: tar.bytes.count, by: 1024).map { Array(tar.bytes[$0..<min($0 + 1024, tar.bytes.count)]) }
        let forwarder = try TarUploadForwarder(upload(chunks), hashing: false)
        try await forwarder.prefetch(upTo: 1024)
        var forwarded = 0
        do {
            for try await chunk in forwarder.stream() { forwarded += chunk.count }
            Issue.record("the stream ended without refusing the entry")
        } catch {}
        // The chunks before the one holding the `../escape` header went through; that chunk
        // (the last 512 content bytes and the header) and everything after did not.
        #expect(forwarded == 4096)
        guard case .invalid(_, let message)? = forwarder.failure else {
            Issue.record("expected an invalid failure")
            return
        }
        #expect(message.contains(".."))
    }

    @Test func goodUploadIsForwardedWholeAndHashed() async throws {
        let tar = goodTar(fileSize: 5000)
        let chunks = stride(from: 0, to: tar.count, by: 333).map { Array(tar[$0..<min($0 + 333, tar.count)]) }
        let forwarder = try TarUploadForwarder(upload(chunks), hashing: true)
        try await forwarder.prefetch(upTo: 1000)
        var forwarded: [UInt8] = []
        for try await chunk in forwarder.stream() { forwarded += chunk }
        #expect(forwarded == tar)
        #expect(try await forwarder.finishHash(ContentHashOptions()) == hashTar(tar))
    }

    @Test func truncatedUploadIsRefused() async throws {
        let tar = goodTar(fileSize: 5000)
        let forwarder = try TarUploadForwarder(upload([Array(tar.prefix(1000))]), hashing: false)
        await #expect(throws: OcimanError.self) {
            for try await _ in forwarder.stream() {}
        }
        #expect(forwarder.failure != nil)
    }
}
