import Foundation

enum Output {
    static func print(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func write(_ bytes: [UInt8], error: Bool = false) {
        (error ? FileHandle.standardError : FileHandle.standardOutput).write(Data(bytes))
    }

    /// Generated contract types as the contract spells them.
    static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// Columns padded to their widest cell, for people.
    static func table(_ header: [String], _ rows: [[String]]) {
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        for row in [header] + rows {
            let cells = row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }
            print(cells.joined(separator: "   "))
        }
    }

    static func shortID(_ id: String) -> String {
        let hex = id.hasPrefix("sha256:") ? String(id.dropFirst(7)) : id
        return String(hex.prefix(12))
    }
}

/// Build and transfer progress: on a terminal each layer's line is redrawn in place; otherwise
/// every event is a line of its own.
final class Progress {
    private let redraw = isatty(STDOUT_FILENO) == 1
    private var order: [String] = []
    private var lines: [String: String] = [:]

    func update(id: String?, _ text: String) {
        guard redraw, let id else {
            Output.print(id.map { "\($0): \(text)" } ?? text)
            return
        }
        if lines[id] == nil {
            order.append(id)
            lines[id] = text
            Output.print("\(id): \(text)")
            return
        }
        lines[id] = text
        let up = order.count - order.firstIndex(of: id)!
        // Up to the layer's line, rewrite it, and back down.
        FileHandle.standardOutput.write(Data("\u{1b}[\(up)A\r\u{1b}[2K\(id): \(text)\u{1b}[\(up)B\r".utf8))
    }
}
