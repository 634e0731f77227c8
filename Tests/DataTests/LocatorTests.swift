import Data
import Platform
import Testing
import TestSupport

@Suite struct LocatorTests {
    /// The repository root, from this file's path (Tests/DataTests/LocatorTests.swift).
    static var repositoryRoot: String {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }

    @Test func shippedSubsetLoadsWithEveryClass() throws {
        let files = try DatasetLocator.fashionMNIST(repositoryRoot: Self.repositoryRoot, systemDirectory: "/nonexistent/fashion-mnist")
        #expect(!files.isFullSet)
        #expect(files.directory == Self.repositoryRoot + "/data/fashion-mnist-subset")
        #expect(files.description.contains("subset shipped in") && files.description.contains("(6000 train / 1000 test, packed)"))
        #expect(files.trainPack == Self.repositoryRoot + "/data/fashion-mnist-subset/train.pack")
        #expect(files.description.contains("install the Debian package dataset-fashion-mnist"))
        let (train, test) = try FashionMNIST.load(files)
        #expect(train.count == 6000 && test.count == 1000)
        #expect(train.height == 28 && train.width == 28 && train.channels == 1)
        #expect(train.classCounts() == [Int](repeating: 600, count: 10), "class-balanced")
        #expect(test.classCounts() == [Int](repeating: 100, count: 10), "class-balanced")
        #expect(train.normalization == .fashionMNIST && train.classNames?.count == 10)
        // The subset's own statistics are close to the full set's.
        let statistics = train.computeMeanStd()
        #expect(abs(statistics.mean[0] - 0.2860) < 0.01 && abs(statistics.std[0] - 0.3530) < 0.01, "\(statistics)")
    }

    @Test func subsetIsFoundFromTheCurrentDirectoryOrTheExecutable() throws {
        // No repository root: found relative to the current directory (swift test runs in the
        // package root) or by walking up from the test binary in .build*/.
        let files = try DatasetLocator.fashionMNIST(systemDirectory: "/nonexistent/fashion-mnist")
        #expect(files.trainCount == 6000 && files.testCount == 1000)
        #expect(DatasetLocator.executableDirectory() != nil)
    }

    @Test(.enabled(if: Requirement.runs(Requirement.hasSystemFashionMNIST), Requirement.fashionMNISTReason))
    func fullSetIsPreferredWhenInstalled() throws {
        let system = DatasetLocator.systemFashionMNIST
        #expect(system == Requirement.systemFashionMNIST)
        try #require(FileSystem.exists(system + "/train-images-idx3-ubyte.gz"), Requirement.fashionMNISTReason)
        let files = try DatasetLocator.fashionMNIST(repositoryRoot: Self.repositoryRoot)
        #expect(files.isFullSet)
        #expect(files.description == "Fashion-MNIST full set from /usr/share/datasets/fashion-mnist (60000 train / 10000 test)")
        // The full set loads, and its statistics are the published normalisation constants.
        let (train, test) = try FashionMNIST.load(files)
        #expect(train.count == 60000 && test.count == 10000)
        #expect(train.classCounts() == [Int](repeating: 6000, count: 10))
        let statistics = train.computeMeanStd()
        #expect(abs(statistics.mean[0] - 0.2860) < 5e-5 && abs(statistics.std[0] - 0.3530) < 5e-5, "\(statistics)")
    }

    @Test func explicitDirectoryWinsAndMustBeComplete() throws {
        let subset = Self.repositoryRoot + "/data/fashion-mnist-subset"
        let files = try DatasetLocator.fashionMNIST(dataDirectory: subset)
        #expect(files.directory == subset && files.trainPack == subset + "/train.pack" && files.testPack == subset + "/test.pack")
        #expect(files.description.hasPrefix("Fashion-MNIST from \(subset)"))
        do {
            _ = try DatasetLocator.fashionMNIST(dataDirectory: "/nonexistent/data")
            Issue.record("a missing --data directory must fail")
        } catch {
            #expect(error.description.contains("/nonexistent/data"), "\(error)")
        }
    }
}
