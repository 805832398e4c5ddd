import InMemoryEngine
import Testing

@testable import OcimanCore

@Suite("Runtime images against an in-memory engine")
struct RuntimeImageTests {
    @Test func listingMatchesTheRepositoryRegistryInsensitively() async throws {
        let runtime = makeRuntime(InMemoryEngine(images: ["localhost/busybox:test", "docker.io/library/alpine:3.20"]))
        #expect(try await runtime.listImages(name: "busybox").flatMap(\.references) == ["localhost/busybox:test"])
        #expect(try await runtime.listImages(name: "alpine:3.19").isEmpty, "a tag in the filter must match too")
        #expect(try await runtime.listImages().count == 2)
        let bad = await ocimanError { try await runtime.listImages(name: "Upper") }
        #expect(bad.map { if case .invalid(field: "name", _) = $0 { true } else { false } } == true)
    }

    @Test func taggingAddsAReferenceAndATargetWithoutTagGetsLatest() async throws {
        let runtime = makeRuntime()
        try await runtime.tagImage("localhost/busybox:test", target: "localhost/copy")
        #expect(try await runtime.imageExists("localhost/copy:latest"))
        #expect(try await runtime.inspectImage("localhost/copy:latest").references.contains("localhost/busybox:test"))
        let digest = await ocimanError {
            try await runtime.tagImage("localhost/busybox:test", target: "localhost/copy@sha256:" + String(repeating: "a", count: 64))
        }
        #expect(digest.map { if case .invalid(field: "target", _) = $0 { true } else { false } } == true)
    }

    @Test func removingAnImageInUseIsAConflictAndAnAbsentOneNotFound() async throws {
        let runtime = makeRuntime()
        _ = try await runtime.runContainer(RunSpec(image: "localhost/busybox:test"))
        let inUse = await ocimanError { try await runtime.removeImage("localhost/busybox:test", force: false) }
        #expect(inUse.map { if case .conflict = $0 { true } else { false } } == true)
        try await runtime.removeImage("localhost/busybox:test", force: true)
        #expect(try await runtime.imageExists("localhost/busybox:test") == false)
        let absent = await ocimanError { try await runtime.removeImage("localhost/busybox:test", force: false) }
        #expect(absent.map { if case .notFound = $0 { true } else { false } } == true)
    }
}
