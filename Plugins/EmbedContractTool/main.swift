import Foundation

// Usage: EmbedContractTool INPUT OUTPUT — writes a Swift file holding INPUT as a raw string.
let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    FileHandle.standardError.write(Data("usage: EmbedContractTool INPUT OUTPUT\n".utf8))
    exit(2)
}
let text = try String(contentsOfFile: arguments[1], encoding: .utf8)
// A raw string needs a delimiter the text cannot end early; add # until none matches.
var hashes = "#"
while text.contains("\"\"\"" + hashes) { hashes += "#" }
let source = """
    // Generated from openapi.yaml by the EmbedContract plugin. Do not edit.
    let embeddedOpenAPIDocument: String = \(hashes)\"\"\"
    \(text)
    \"\"\"\(hashes)

    """
try source.write(toFile: arguments[2], atomically: true, encoding: .utf8)
