// libFuzzer target for the board profile text format (boards/README.md).
import Platform

@_cdecl("LLVMFuzzerTestOneInput")
public func boardFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    do throws(BoardError) {
        let board = try BoardProfile.parse(inputText(data, size), source: "fuzz.board")
        _ = board.threads(onlineCores: 4)
    } catch {
        expectMessage(error.description, naming: "fuzz.board")
    }
    return 0
}
