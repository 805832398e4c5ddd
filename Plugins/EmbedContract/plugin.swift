import Foundation
import PackagePlugin

/// Compiles the target's `openapi.yaml` into the binary, so `GET /openapi.yaml` serves exactly
/// the contract the server types were generated from, with no resource file to ship.
@main
struct EmbedContract: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let module = target as? SourceModuleTarget,
            let contract = module.sourceFiles.first(where: { $0.url.lastPathComponent == "openapi.yaml" })
        else { return [] }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedContract.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(contract.url.lastPathComponent)",
                executable: try context.tool(named: "EmbedContractTool").url,
                arguments: [contract.url.path, output.path],
                inputFiles: [contract.url],
                outputFiles: [output]
            )
        ]
    }
}
