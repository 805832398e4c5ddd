import ArgumentParser
import Foundation
import HTTPTypes
import OcimanClient
import OpenAPIRuntime

/// Where ocimand is and how to authenticate; shared by every subcommand.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: "ocimand's address: tcp://HOST:PORT or unix:///PATH (OCIMAN_HOST).")
    var host: String?

    @Option(name: .long, help: "File holding the bearer token (else OCIMAN_TOKEN).")
    var tokenFile: String?

    var resolvedHost: OcimanHost {
        get throws {
            let text = host ?? ProcessInfo.processInfo.environment["OCIMAN_HOST"].flatMap { $0.isEmpty ? nil : $0 }
            guard let text else { return .default }
            do {
                return try OcimanHost(parsing: text)
            } catch {
                throw CommandFailure("\(error)")
            }
        }
    }

    var token: String? {
        get throws {
            if let tokenFile {
                do {
                    return try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                } catch {
                    throw CommandFailure("cannot read the token file \(tokenFile): \(error.localizedDescription)")
                }
            }
            return ProcessInfo.processInfo.environment["OCIMAN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        }
    }

    func client() throws -> Client {
        Client(host: try resolvedHost, token: try token, middlewares: [ProblemReporter()])
    }

    func interactive(_ path: String) async throws -> InteractiveConnection {
        do {
            return try await InteractiveConnection.open(host: try resolvedHost, token: try token, path: path)
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            throw CommandFailure("\(error)")
        }
    }
}

/// Turns any answer of 400 or more into a `CommandFailure` carrying the problem's detail, so
/// that each command handles only its success.
struct ProblemReporter: ClientMiddleware {
    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let (response, responseBody) = try await next(request, body, baseURL)
        guard response.status.code >= 400 else { return (response, responseBody) }
        var detail = response.status.reasonPhrase
        if let responseBody, let bytes = try? await [UInt8](collecting: responseBody, upTo: 1 << 20),
            let problem = try? JSONDecoder().decode(Problem.self, from: Data(bytes))
        {
            detail = problem.detail ?? problem.title ?? detail
        }
        throw CommandFailure("\(detail) (\(response.status.code))")
    }

    private struct Problem: Decodable {
        var title: String?
        var detail: String?
    }
}

/// `--json` for scripts; tables otherwise.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false
}

/// `KEY=VALUE` arguments (`-e`, `-l`, `--build-arg`) as a dictionary.
func keyValues(_ pairs: [String], option: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for pair in pairs {
        guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
            throw ValidationError("\(option) expects KEY=VALUE, not \"\(pair)\"")
        }
        result[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
    }
    return result
}
