import Platform
import Kernels
import NN

if let problem = ProcessInfo.checkBuildTarget() {
    Console.error("leitner: " + problem)
    terminate(2)
}
print("leitner")
