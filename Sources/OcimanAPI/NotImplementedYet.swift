/// Marks an operation whose implementation has not landed; answered as 501.
/// Grep for it: nothing may use it once an issue is called done.
struct NotImplementedYet: Error, CustomStringConvertible {
    let operation: String
    var description: String { "\(operation) is not implemented yet" }
}
