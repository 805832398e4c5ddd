import Testing
import OcimanCore

@testable import EngineAdapters

/// Recorded from dockerd 20.10.24 and Podman 4.3.1 (compat `POST /build`) on this machine.
private enum RecordedBuild {
    static let dockerSuccess = #"""
        {"stream":"Step 1/3 : FROM localhost/busybox:test"}
        {"stream":"\n"}
        {"stream":" ---\u003e 6639bdeb6a0a\n"}
        {"stream":"Step 2/3 : RUN echo hi; sleep 1; echo there"}
        {"stream":"\n"}
        {"stream":" ---\u003e Running in 5e7630539def\n"}
        {"stream":"hi\n"}
        {"stream":"there\n"}
        {"stream":"Removing intermediate container 5e7630539def\n"}
        {"stream":" ---\u003e 80d6d686a42d\n"}
        {"stream":"Step 3/3 : RUN echo -n partial"}
        {"stream":"\n"}
        {"stream":" ---\u003e Running in b9d2c01ed12d\n"}
        {"stream":"partial"}
        {"stream":"Removing intermediate container b9d2c01ed12d\n"}
        {"stream":" ---\u003e d3b5b5ac1fd6\n"}
        {"aux":{"ID":"sha256:d3b5b5ac1fd6cde8aeb3b9e0c0b2fd6f681e620c4a3b4f48ba113149cd6efa38"}}
        {"stream":"Successfully built d3b5b5ac1fd6\n"}
        {"stream":"Successfully tagged expt:1\n"}

        """#

    static let podmanSuccess = #"""
        {"stream":"STEP 1/2: FROM localhost/busybox:test\n"}
        {"stream":"STEP 2/2: RUN echo hi; sleep 1; echo there\n"}
        {"stream":"hi\n"}
        {"stream":"there\n"}
        {"stream":"COMMIT docker.io/library/expt:1\n"}
        {"stream":"--\u003e 5aaac6772fd\n"}
        {"stream":"Successfully tagged docker.io/library/expt:1\n"}
        {"stream":"5aaac6772fdeba51463a98175852a2ac7769498b704b11d7e2b7d05853e58a1a\n"}
        {"aux":{"ID":"sha256:5aaac6772fdeba51463a98175852a2ac7769498b704b11d7e2b7d05853e58a1a"}}
        {"stream":"Successfully built 5aaac6772fde\n"}
        {"stream":"Successfully tagged expt:1\n"}

        """#

    static let dockerFailure = #"""
        {"stream":"Step 3/3 : RUN false"}
        {"stream":"\n"}
        {"stream":" ---\u003e Running in 41d854c7ff8f\n"}
        {"stream":"Removing intermediate container 41d854c7ff8f\n"}
        {"errorDetail":{"code":1,"message":"The command '/bin/sh -c false' returned a non-zero code: 1"},"error":"The command '/bin/sh -c false' returned a non-zero code: 1"}

        """#

    static let podmanFailure = #"""
        {"stream":"STEP 3/3: RUN false\n"}
        {"errorDetail":{"message":"building at STEP \"RUN false\": while running runtime: exit status 1\n"},"error":"building at STEP \"RUN false\": while running runtime: exit status 1\n"}

        """#
}

@Suite("Build stream decoding")
struct BuildProgressDecoderTests {
    /// What the progress says in the end; the runtime lets a failure win over an image id.
    enum Outcome: Equatable {
        case unfinished
        case built(imageID: String)
        case failed(String)
    }

    /// Decodes `text` cut into pieces of `size` bytes, as chunks arrive from the engine.
    private func decode(_ text: String, pieces size: Int) throws -> ([String], Outcome) {
        var decoder = BuildProgressDecoder()
        var progress: [BuildProgress] = []
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            progress += try decoder.feed(bytes[offset..<min(offset + size, bytes.count)])
            offset += size
        }
        progress += try decoder.finish()
        var lines: [String] = []
        var outcome = Outcome.unfinished
        for step in progress {
            switch step {
            case .line(let line): lines.append(line)
            case .built(let id): if case .failed = outcome {} else { outcome = .built(imageID: id) }
            case .failed(let message): outcome = .failed(message)
            }
        }
        return (lines, outcome)
    }

    @Test(arguments: [1, 7, 64, 100_000])
    func dockerLinesJoinAcrossObjectsAndChunks(pieceSize: Int) throws {
        let (lines, outcome) = try decode(RecordedBuild.dockerSuccess, pieces: pieceSize)
        #expect(lines.first == "Step 1/3 : FROM localhost/busybox:test")
        #expect(lines.contains("hi") && lines.contains("there"))
        // Output without a newline runs into the next line, as the docker CLI shows it.
        #expect(lines.contains("partialRemoving intermediate container b9d2c01ed12d"))
        #expect(lines.last == "Successfully tagged expt:1")
        #expect(outcome == .built(imageID: "sha256:d3b5b5ac1fd6cde8aeb3b9e0c0b2fd6f681e620c4a3b4f48ba113149cd6efa38"))
    }

    @Test(arguments: [1, 13, 100_000])
    func podmanStreamGivesTheSameShape(pieceSize: Int) throws {
        let (lines, outcome) = try decode(RecordedBuild.podmanSuccess, pieces: pieceSize)
        #expect(lines.first == "STEP 1/2: FROM localhost/busybox:test")
        #expect(lines.contains("hi"))
        #expect(outcome == .built(imageID: "sha256:5aaac6772fdeba51463a98175852a2ac7769498b704b11d7e2b7d05853e58a1a"))
    }

    @Test func failedBuildsEndInTheEnginesMessage() throws {
        let (dockerLines, docker) = try decode(RecordedBuild.dockerFailure, pieces: 5)
        #expect(docker == .failed("The command '/bin/sh -c false' returned a non-zero code: 1"))
        #expect(dockerLines.last == "Removing intermediate container 41d854c7ff8f")
        let (_, podman) = try decode(RecordedBuild.podmanFailure, pieces: 5)
        #expect(podman == .failed(#"building at STEP "RUN false": while running runtime: exit status 1"#))
    }

    @Test func anErrorWinsOverAnEarlierImageID() throws {
        let (_, outcome) = try decode(#"{"aux":{"ID":"sha256:1"}}{"error":"later failure"}"#, pieces: 3)
        #expect(outcome == .failed("later failure"))
    }

    @Test func streamWithoutResultOrErrorIsUnfinished() throws {
        let (lines, outcome) = try decode(#"{"stream":"Step 1/1 : FROM x\n"}"#, pieces: 4)
        #expect(lines == ["Step 1/1 : FROM x"])
        #expect(outcome == .unfinished)
    }

    @Test func pullProgressDuringABuildBecomesLines() throws {
        let (lines, _) = try decode(#"{"status":"Pulling fs layer","progressDetail":{},"id":"a1b2"}{"status":"Digest: sha256:00"}"#, pieces: 9)
        #expect(lines == ["a1b2: Pulling fs layer", "Digest: sha256:00"])
    }

    @Test func objectsThatAreNotProgressMessagesAreSkipped() throws {
        let (lines, _) = try decode(#"[1,2]{"aux":"trace"}{"stream":"ok\n"}"#, pieces: 2)
        #expect(lines == ["ok"])
    }
}

