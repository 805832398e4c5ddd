import Glibc
import Testing

@testable import OcimanCore

/// Every entry of a walk as (path, kind), paths as text.
private func walk(_ root: String, options: DirectoryWalker.Options) throws -> [(String, DirectoryWalker.Entry.Kind)] {
    var walker = try DirectoryWalker(root: root, options: options)
    var seen: [(String, DirectoryWalker.Entry.Kind)] = []
    while let entry = try walker.next() {
        seen.append((String(decoding: walker.path, as: UTF8.self), entry.kind))
    }
    return seen
}

@Suite("The directory walker both the hash and the tar use")
struct DirectoryWalkerTests {
    @Test(arguments: [DirectoryWalker.Options.hashing, .archiving])
    func entriesComeDepthFirstByNameBytesWithDirectoriesEndingInSlash(options: DirectoryWalker.Options) throws {
        let directory = try TemporaryDirectory()
        try makeGoldenTree(in: directory)
        try directory.fifo("pipe")
        let seen = try walk(directory.path, options: options)
        #expect(seen.map(\.0) == [".hidden/", ".hidden/h", "Dockerfile", "a/", "a/z", "a.txt", "empty/", "link"])
        #expect(seen.map(\.1) == [.directory, .regularFile, .regularFile, .directory, .regularFile, .regularFile, .directory, .symbolicLink])
    }

    @Test func regularFilesAreHandedOverOpenWithTheirSize() throws {
        let directory = try TemporaryDirectory()
        try directory.write("f", "12345")
        var walker = try DirectoryWalker(root: directory.path, options: .hashing)
        let nextEntry = try walker.next()
        let entry = try #require(nextEntry)
        #expect(entry.kind == .regularFile && entry.size == 5)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 3, alignment: 1)
        defer { buffer.deallocate() }
        // The walker is noncopyable, so it stays out of the #expect expressions.
        let counts = [try walker.read(into: buffer), try walker.read(into: buffer), try walker.read(into: buffer)]
        #expect(counts == [3, 2, 0])
        #expect(Array(buffer.prefix(2)) == Array("45".utf8))
        let end = try walker.next()
        #expect(end == nil)
    }

    @Test func archivingStatsEveryEntryAndReadsLinkTargets() throws {
        let directory = try TemporaryDirectory()
        try directory.makeDirectory("d")
        chmod(directory.subpath("d"), 0o750)
        try directory.symlink("l", to: "d")
        var walker = try DirectoryWalker(root: directory.path, options: .archiving)
        let nextFolder = try walker.next()
        let folder = try #require(nextFolder)
        #expect(folder.kind == .directory && folder.status.st_mode & 0o7777 == 0o750)
        let nextLink = try walker.next()
        let link = try #require(nextLink)
        let target = try walker.linkTarget()
        #expect(link.kind == .symbolicLink && target == Array("d".utf8))
    }

    /// Bounded memory: a directory is listed when the walk enters it, not up front, so a file
    /// added to a later directory after the walk began is still seen.
    @Test func directoriesAreListedOnlyWhenEntered() throws {
        let directory = try TemporaryDirectory()
        try directory.write("a/1", "")
        try directory.makeDirectory("b")
        var walker = try DirectoryWalker(root: directory.path, options: .hashing)
        let first = try walker.next()
        #expect(first?.kind == .directory)
        try directory.write("b/late", "")
        var paths: [String] = []
        while try walker.next() != nil { paths.append(String(decoding: walker.path, as: UTF8.self)) }
        #expect(paths == ["a/1", "b/", "b/late"])
    }

    /// The tar side reports a bad root exactly as the hash does (ContentHashErrorTests).
    @Test func archiveRootErrorsKeepTheirKinds() throws {
        let directory = try TemporaryDirectory()
        try directory.write("file", "x")
        let missing = directory.subpath("missing")
        let absent = #expect(throws: ContentHashError.self) { _ = try DirectoryTarProducer(root: missing) }
        #expect(absent?.kind == .notFound && absent?.errno == ENOENT && absent?.path == missing)
        let file = #expect(throws: ContentHashError.self) {
            _ = try DirectoryTarProducer(root: directory.subpath("file"))
        }
        #expect(file?.kind == .notADirectory && file?.reason == "Not a directory")
    }
}
