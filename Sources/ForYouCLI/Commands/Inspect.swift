import ArgumentParser
import ForYou
import Foundation
import Platform

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import an interaction file and report its size and import speed (validates every line).")

    @Argument(help: "Interaction file.") var file: String
    @OptionGroup var input: FormatOptions
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let (d, s) = try input.read(file, verbose: false)
        let csr = d.matrix()
        let rate = Double(d.count) / max(s, 1e-9)
        if json {
            print("{\"rows\": \(d.count), \"users\": \(d.users.count), \"items\": \(d.items.count), \"nnz\": \(csr.nnz), "
                  + "\"has_time\": \(d.timestamps != nil), \"import_s\": \(s), \"rows_per_s\": \(rate)}")
        } else {
            print("\(file): \(d.count) rows, \(d.users.count) users, \(d.items.count) items, \(csr.nnz) distinct pairs, "
                  + (d.timestamps != nil ? "with times" : "no times")
                  + String(format: "; imported in %.2fs (%.2fM rows/s)", s, rate / 1e6))
        }
    }
}
