import XCTest
import Foundation
import TestSupport

/// Live responses checked against docs/openapi.yaml, then the API fuzzed from the spec
/// (scripts/check-api: jsonschema + schemathesis against a real `foryou serve`).
final class OpenAPITests: XCTestCase {
    func testLiveAPIConformsToTheSpecAndSurvivesFuzzing() throws {
        let out = try CLIRunner.python([Fixtures.repoRoot + "/scripts/check-api", "--binary", CLIRunner.binary, "--max-time", "20"])
        XCTAssertTrue(out.contains("conformance: ok"), out)
        XCTAssertFalse(out.contains("FAIL"), out)
    }
}
