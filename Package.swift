// swift-tools-version:6.1
import PackageDescription

// Kernels are written against one SIMD width per architecture and must be compiled for a CPU
// that has the matching instructions: without a target CPU, x86_64 code is baseline SSE2 and
// every fused multiply-add becomes a libm call (measured 137x slower, see PLATFORM.md).
// The binary checks at start-up that the CPU it runs on has what it was built for.
#if arch(x86_64)
let cpuFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
let cpuCFlags: [CSetting] = [.unsafeFlags(["-march=haswell"])]
// The one module with AVX-512 code (the GEMM micro-kernel), called only after a run-time check.
let wideFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "skylake-avx512"])]
#else
let cpuFlags: [SwiftSetting] = []
let cpuCFlags: [CSetting] = []
let wideFlags: [SwiftSetting] = []
#endif

let common: [SwiftSetting] = cpuFlags + [
]

// The MPI implementation the `MPI` trait links, by its pkg-config name: Open MPI by default,
// `LEITNER_MPI=mpich` for MPICH (Debian ships both; each has its own mpirun).
let mpiPackage = Context.environment["LEITNER_MPI"] == "mpich" ? "mpich" : "ompi-c"

let package = Package(
    name: "Leitner",
    products: [
        .executable(name: "leitner", targets: ["leitner"]),
    ],
    traits: [
        .trait(name: "OpenBLAS", description: "Link Debian's OpenBLAS (libopenblas-dev) so `leitner bench` compares against cblas_sgemm."),
        .trait(name: "MPI", description: "Data-parallel training under mpirun: link Open MPI (libopenmpi-dev), or MPICH (libmpich-dev) with LEITNER_MPI=mpich."),
        .default(enabledTraits: []),
    ],
    targets: [
        // Every system header the project uses, behind one module map.
        .systemLibrary(name: "CSystem", path: "Sources/CSystem"),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        // MPI's C API behind plain-typed wrappers (trait MPI only; imported by Platform alone).
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: mpiPackage),
        // Thin Swift layer over CSystem, the only target that imports it: typed errors naming the
        // call, files, threads, clocks, zlib, CRC-32, libm; and the seeded generator. With the
        // MPI trait also the ranks of a data-parallel run (Cluster).
        .target(name: "Platform",
                dependencies: ["CSystem", .target(name: "CMPI", condition: .when(traits: ["MPI"]))],
                swiftSettings: common + [.define("LEITNER_MPI", .when(traits: ["MPI"]))]),
        // The AVX-512 kernels: GEMM micro-kernel, implicit-GEMM packing, correlation tile (x86_64
        // only, empty elsewhere; used when the CPU has AVX-512).
        .target(name: "KernelsAVX512", swiftSettings: wideFlags),
        // Math on raw buffers: GEMM, conv, pool, elementwise, loss, optimizers. SIMD + naive twins.
        .target(name: "Kernels", dependencies: ["Platform", "KernelsAVX512"], swiftSettings: common),
        // Arena, tensors, layers, models, optimizers, LR schedules, checkpoints.
        .target(name: "NN", dependencies: ["Kernels", "Platform"], swiftSettings: common),
        // Dataset formats (IDX), batches, normalisation and augmentation.
        .target(name: "Data", dependencies: ["Platform"], swiftSettings: common),
        // Per-sample state store and selection policies (IES, DIHCL, baselines); knows no layers.
        .target(name: "Select", dependencies: ["Platform"], swiftSettings: common),
        // Meters (hwmon, RAPL, Pi 5 PMIC, power model), the sampling recorder, power traces.
        .target(name: "Energy", dependencies: ["Platform"], swiftSettings: common),
        // The training loop: epochs, metrics log, checkpoints, evaluation, energy per epoch.
        .target(name: "Train", dependencies: ["NN", "Data", "Select", "Energy", "Kernels", "Platform"], swiftSettings: common),
        // The benchmark harness `leitner bench` runs: kernels against their naive twins (and
        // OpenBLAS with the trait), pack decoding and batch assembly, training from a slow card.
        .target(
            name: "Bench",
            dependencies: [
                "Train", "Select", "NN", "Data", "Kernels", "KernelsAVX512", "Platform",
                .target(name: "COpenBLAS", condition: .when(traits: ["OpenBLAS"])),
            ],
            swiftSettings: common + [.define("LEITNER_OPENBLAS", .when(traits: ["OpenBLAS"]))]),
        .executableTarget(
            name: "leitner",
            dependencies: ["Train", "Bench", "Select", "Energy", "NN", "Data", "Kernels", "Platform"],
            swiftSettings: common,
            // One self-contained binary (copied to a board as is) that also maps less memory:
            // the Swift runtime is linked in rather than loaded as shared libraries.
            linkerSettings: [.unsafeFlags(["-static-stdlib"])]),
        // What tests need from outside the package (binary, python, datasets), skipped with a
        // reason outside CI and failed under CI=true. Test-only: no library depends on it.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        // Test only (never a dependency of `leitner` or a library target): an interposer of
        // malloc, free and the rest of the allocator that counts every call, per thread tag, and
        // its Swift face, for the tests that prove a training step allocates nothing.
        // The test binary exports its symbols so that the counter names the Swift functions that
        // allocated (dladdr) in a failure message.
        .target(name: "CAllocCounter", path: "Tests/CAllocCounter",
                linkerSettings: [.unsafeFlags(["-Xlinker", "--export-dynamic"])]),
        .target(name: "AllocCounting", dependencies: ["CAllocCounter"], path: "Tests/AllocCounting"),
        .testTarget(name: "PlatformTests", dependencies: ["Platform", "AllocCounting"], swiftSettings: common),
        .testTarget(name: "KernelsTests", dependencies: ["TestSupport", "Kernels", "Platform"], swiftSettings: common),
        .testTarget(name: "NNTests", dependencies: ["TestSupport", "NN", "Kernels", "Platform", "AllocCounting"], swiftSettings: common),
        .testTarget(name: "DataTests", dependencies: ["TestSupport", "Data", "Platform", "AllocCounting"], swiftSettings: common),
        .testTarget(name: "SelectTests", dependencies: ["TestSupport", "Select", "Platform"], swiftSettings: common),
        .testTarget(name: "EnergyTests", dependencies: ["Energy", "Platform", "AllocCounting"], swiftSettings: common),
        .testTarget(name: "TrainTests", dependencies: ["TestSupport", "Train", "Select", "Energy", "NN", "Data", "Kernels", "Platform", "AllocCounting"], swiftSettings: common),
    ],
    swiftLanguageModes: [.v5]
)
