// libFuzzer target for the model description text form: parse, shape inference, memory plan.
import NN

@_cdecl("LLVMFuzzerTestOneInput")
public func modelFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    do throws(ModelError) {
        let description = try ModelDescription.parse(inputText(data, size), name: "fuzz.model")
        let plan = try Model.plan(description, batch: 8, threads: 2, optimizerStatePerParameter: 2)
        precondition(plan.totalBytes >= 0)
    } catch {
        expectMessage(error.message, naming: "")
    }
    return 0
}
