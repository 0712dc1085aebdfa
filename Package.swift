// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "dppo",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "dppo", targets: ["dppo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // System libraries from Debian (libnanomsg-dev, liblz4-dev, libopenblas-dev, libmujoco-dev, libopenmpi-dev).
        .systemLibrary(name: "CNanomsg", path: "Sources/CNanomsg"),
        .systemLibrary(name: "CMuJoCo", path: "Sources/CMuJoCo"),
        .systemLibrary(name: "CLZ4", path: "Sources/CLZ4"),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),

        .target(name: "Tensors", dependencies: ["COpenBLAS"]),
        .target(name: "Networks", dependencies: ["Tensors"]),
        .target(name: "Diffusion", dependencies: ["Tensors", "Networks"]),
        .target(name: "Environments", dependencies: ["Tensors", "CMuJoCo"], resources: [.embedInCode("Resources/gymnasium_bridge.py")]),
        .target(name: "Algorithms", dependencies: ["Tensors", "Networks", "Diffusion", "Environments"]),
        .target(name: "Transport", dependencies: ["CNanomsg", "CLZ4", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Cluster", dependencies: [
            "Tensors", "Networks", "Diffusion", "Environments", "Algorithms", "Transport", "Datasets", "Offline", "CMPI",
            .product(name: "Yams", package: "Yams"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], plugins: ["BuildInfo"]),
        // Behaviour-cloning data: .npy/.npz reading (zlib through ZIPFoundation, zlib1g-dev), our safetensors format, windows.
        .target(name: "Datasets", dependencies: [
            "Tensors", "Networks", "Algorithms",
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ]),
        // Offline diffusion-policy RL: Diffusion-QL and EDP (action approximation, DPM-Solver, energy-based selection, TD3/CRR/IQL).
        .target(name: "Offline", dependencies: ["Tensors", "Networks", "Diffusion", "Datasets", "Algorithms"]),
        // Every `dppo bench` measurement, with one timing helper; product modules hold no benchmark code.
        .target(name: "Benchmarks", dependencies: ["Tensors", "Networks", "Diffusion", "Environments", "Algorithms", "Transport",
                                                   "Cluster", "Datasets", "Offline", "CMuJoCo"]),
        .executableTarget(name: "dppo", dependencies: [
            "Benchmarks", "Cluster", "Datasets", "Offline",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // `dppo --version`'s git commit (and every run's record of it), written before every build.
        .plugin(name: "BuildInfo", capability: .buildTool()),

        // Float64 reference layers and the finite-difference gradient check, shared by the tests below.
        .target(name: "ReferenceNetworks", dependencies: ["Networks", "Tensors"], path: "Tests/ReferenceNetworks"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors"]),
        .testTarget(name: "NetworksTests", dependencies: ["Networks", "ReferenceNetworks"]),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "ReferenceNetworks"], resources: [.copy("Fixtures")]),
        .testTarget(name: "EnvironmentsTests", dependencies: ["Environments"]),
        .testTarget(name: "AlgorithmsTests", dependencies: ["Algorithms"]),
        .testTarget(name: "TransportTests", dependencies: ["Transport"]),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "ParityTests", dependencies: ["Diffusion", "Algorithms", "Networks", "Tensors"], resources: [.copy("Fixtures")]),
        .testTarget(name: "OfflineTests", dependencies: ["Offline", "Diffusion", "Networks", "Tensors", "Datasets", "ReferenceNetworks"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "Networks", "Tensors"], resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v6]
)
