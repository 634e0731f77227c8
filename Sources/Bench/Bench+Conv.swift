import Platform
import Kernels

/// `leitner bench conv`: every conv layer of the reference models (cnn-s, resnet8) at batch 64
/// on 28x28 input, then the 1x1 (pointwise) and depthwise 3x3 convolutions of mobilenet_v2 at
/// 96x96 input (x1.0 and x0.35) at batch 32: forward and both backward passes, the
/// backward/forward ratio the trainer pays per step, and each pass against its naive twin.
enum ConvBench {
    static let batch = 64
    /// The naive twins are slow: twins and fast paths are both timed at this batch for the ratio.
    static let naiveBatch = 2

    static let layers: [(name: String, shape: Conv2DShape)] = [
        ("cnn-s conv1 3x3 1-32 @28", Conv2DShape(batch: batch, inChannels: 1, outChannels: 32, height: 28, width: 28, kernel: 3, padding: 1)),
        ("cnn-s conv2 3x3 32-64 @14", Conv2DShape(batch: batch, inChannels: 32, outChannels: 64, height: 14, width: 14, kernel: 3, padding: 1)),
        ("r8 stem 3x3 1-16 @28", Conv2DShape(batch: batch, inChannels: 1, outChannels: 16, height: 28, width: 28, kernel: 3, padding: 1)),
        ("r8 3x3 16-16 @28", Conv2DShape(batch: batch, inChannels: 16, outChannels: 16, height: 28, width: 28, kernel: 3, padding: 1)),
        ("r8 3x3 16-32 s2 @28", Conv2DShape(batch: batch, inChannels: 16, outChannels: 32, height: 28, width: 28, kernel: 3, stride: 2, padding: 1)),
        ("r8 3x3 32-32 @14", Conv2DShape(batch: batch, inChannels: 32, outChannels: 32, height: 14, width: 14, kernel: 3, padding: 1)),
        ("r8 1x1 16-32 s2 @28", Conv2DShape(batch: batch, inChannels: 16, outChannels: 32, height: 28, width: 28, kernel: 1, stride: 2)),
        ("r8 3x3 32-64 s2 @14", Conv2DShape(batch: batch, inChannels: 32, outChannels: 64, height: 14, width: 14, kernel: 3, stride: 2, padding: 1)),
        ("r8 3x3 64-64 @7", Conv2DShape(batch: batch, inChannels: 64, outChannels: 64, height: 7, width: 7, kernel: 3, padding: 1)),
        ("r8 1x1 32-64 s2 @14", Conv2DShape(batch: batch, inChannels: 32, outChannels: 64, height: 14, width: 14, kernel: 1, stride: 2)),
    ]

    /// ResNet-18's 3x3 stride-1 layers at 224x224 input, batch 16 (the Raspberry Pi 4 figure of
    /// docs/boards.md): timed in the Winograd section only.
    static let winogradLayers: [(name: String, shape: Conv2DShape)] = [
        ("r18 3x3 64-64 @56 b16", Conv2DShape(batch: 16, inChannels: 64, outChannels: 64, height: 56, width: 56, kernel: 3, padding: 1)),
        ("r18 3x3 128-128 @28 b16", Conv2DShape(batch: 16, inChannels: 128, outChannels: 128, height: 28, width: 28, kernel: 3, padding: 1)),
        ("r18 3x3 256-256 @14 b16", Conv2DShape(batch: 16, inChannels: 256, outChannels: 256, height: 14, width: 14, kernel: 3, padding: 1)),
        ("r18 3x3 512-512 @7 b16", Conv2DShape(batch: 16, inChannels: 512, outChannels: 512, height: 7, width: 7, kernel: 3, padding: 1)),
    ]

    /// ResNet-18's stride-2 layers at 224x224, batch 16 (the "strided lanes" section only).
    static let stridedLayers: [(name: String, shape: Conv2DShape)] = [
        ("r18 3x3 64-128 s2 @56 b16", Conv2DShape(batch: 16, inChannels: 64, outChannels: 128, height: 56, width: 56, kernel: 3, stride: 2, padding: 1)),
        ("r18 3x3 128-256 s2 @28 b16", Conv2DShape(batch: 16, inChannels: 128, outChannels: 256, height: 28, width: 28, kernel: 3, stride: 2, padding: 1)),
        ("r18 1x1 64-128 s2 @56 b16", Conv2DShape(batch: 16, inChannels: 64, outChannels: 128, height: 56, width: 56, kernel: 1, stride: 2)),
        ("r18 1x1 256-512 s2 @14 b16", Conv2DShape(batch: 16, inChannels: 256, outChannels: 512, height: 14, width: 14, kernel: 1, stride: 2)),
    ]

    /// Batch of the mobilenet rows (the backbone fine-tuning batch of tools/compare-pytorch).
    static let mobileBatch = 32

    /// The 1x1 convolutions of mobilenet_v2 at 96x96 input (expand and project of the inverted
    /// residuals, and x0.35's last 1x1 to 1280); they take `Conv2D` like any other conv.
    static let pointwiseLayers: [(name: String, shape: Conv2DShape)] = [
        ("mnv2 1x1 24-144 @24", Conv2DShape(batch: mobileBatch, inChannels: 24, outChannels: 144, height: 24, width: 24, kernel: 1)),
        ("mnv2 1x1 144-24 @24", Conv2DShape(batch: mobileBatch, inChannels: 144, outChannels: 24, height: 24, width: 24, kernel: 1)),
        ("mnv2 1x1 32-192 @12", Conv2DShape(batch: mobileBatch, inChannels: 32, outChannels: 192, height: 12, width: 12, kernel: 1)),
        ("mnv2 1x1 96-576 @6", Conv2DShape(batch: mobileBatch, inChannels: 96, outChannels: 576, height: 6, width: 6, kernel: 1)),
        ("x0.35 1x1 8-48 @24", Conv2DShape(batch: mobileBatch, inChannels: 8, outChannels: 48, height: 24, width: 24, kernel: 1)),
        ("x0.35 1x1 48-8 @24", Conv2DShape(batch: mobileBatch, inChannels: 48, outChannels: 8, height: 24, width: 24, kernel: 1)),
        ("x0.35 1x1 112-1280 @3", Conv2DShape(batch: mobileBatch, inChannels: 112, outChannels: 1280, height: 3, width: 3, kernel: 1)),
    ]

    /// The depthwise 3x3 convolutions of mobilenet_v2 at 96x96 input, stride 1 and 2.
    static let depthwiseLayers: [(name: String, shape: Conv2DShape)] = [
        ("mnv2 dw 96 s2 @48", depthwise(channels: 96, size: 48, stride: 2)),
        ("mnv2 dw 96 @24", depthwise(channels: 96, size: 24, stride: 1)),
        ("mnv2 dw 144 @24", depthwise(channels: 144, size: 24, stride: 1)),
        ("mnv2 dw 144 s2 @24", depthwise(channels: 144, size: 24, stride: 2)),
        ("mnv2 dw 144 @12", depthwise(channels: 144, size: 12, stride: 1)),
        ("mnv2 dw 192 s2 @12", depthwise(channels: 192, size: 12, stride: 2)),
        ("mnv2 dw 576 @6", depthwise(channels: 576, size: 6, stride: 1)),
        ("x0.35 dw 48 @24", depthwise(channels: 48, size: 24, stride: 1)),
    ]

    static func depthwise(channels: Int, size: Int, stride: Int) -> Conv2DShape {
        Conv2DShape(batch: mobileBatch, inChannels: channels, outChannels: channels, height: size, width: size, kernel: 3,
                    stride: stride, padding: 1)
    }

    static func run(seconds: Double, threads: Int) {
        let threads = max(threads, 1)
        guard let single = try? KernelContext(threads: 1), let multi = try? KernelContext(threads: threads) else {
            print("conv: cannot create the thread pool")
            return
        }
        // One allocation per buffer, sized for the largest layer.
        var maxInput = 0, maxOutput = 0, maxWeights = 0, maxScratch = 0
        for (_, shape) in layers + pointwiseLayers + depthwiseLayers + winogradLayers + stridedLayers {
            maxInput = max(maxInput, shape.inputCount)
            maxOutput = max(maxOutput, shape.outputCount)
            maxWeights = max(maxWeights, shape.weightCount)
            maxScratch = max(maxScratch, winogradBenchScratch(shape, threads: threads),
                             Conv2D.stridedLanesScratchFloats(shape, threads: threads),
                             Conv2D.pointwiseLanesScratchFloats(shape, threads: threads))
        }
        // 64-byte aligned, as the training arena carves its tensors and scratch (Arena.alignment):
        // the kernels' loads and the padded layouts are timed as training runs them.
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
                .bindMemory(to: Float.self, capacity: max(count, 1))
        }
        let input = buffer(maxInput)
        let dInput = buffer(maxInput)
        let output = buffer(maxOutput)
        let dOut = buffer(maxOutput)
        let weights = buffer(maxWeights)
        let dWeights = buffer(maxWeights)
        let scratch = buffer(maxScratch)
        defer {
            input.deallocate(); dInput.deallocate(); output.deallocate(); dOut.deallocate()
            weights.deallocate(); dWeights.deallocate(); scratch.deallocate()
        }
        BenchSupport.fill(input, count: maxInput, seed: 11)
        BenchSupport.fill(dOut, count: maxOutput, seed: 12)
        BenchSupport.fill(weights, count: maxWeights, seed: 13)
        for index in 0..<maxInput { dInput[index] = 0 }
        for index in 0..<maxWeights { dWeights[index] = 0 }

        let peak = BenchSupport.peakGFLOPSPerCore() * Double(threads)
        print("")
        print("conv: Conv2D on CNHW, batch \(batch), \(threads) thread(s), medians over rounds (one forward, bwd-data, bwd-weights each) filling ~\(BenchSupport.format(seconds, decimals: 2)) s;")
        print("  fwd GF/s = 2 * out * Cin*KH*KW / s; bwd/fwd = median over interleaved rounds of (bwd-data + bwd-weights) / forward (bar: <= 2.2);")
        print("  x naive: naive twin time / fast time, both at batch \(naiveBatch), fast path on 1 thread.")
        print(Format.padRight("layer", 26) + Format.pad("fwd ms", 8) + Format.pad("bwdD ms", 9)
              + Format.pad("bwdW ms", 9) + Format.pad("fwd GF/s", 9) + Format.pad("%peak", 7)
              + Format.pad("bwd/fwd", 8) + Format.pad("fwd xN", 8) + Format.pad("bwdD xN", 8)
              + Format.pad("bwdW xN", 8))

        for (name, shape) in layers + pointwiseLayers {
            let scratchCount = Conv2D.scratchFloats(shape: shape, threads: threads)
            let times = timePasses(shape: shape, scratchCount: scratchCount, context: multi, seconds: seconds,
                                   input: input, dInput: dInput, output: output, dOut: dOut, weights: weights,
                                   dWeights: dWeights, scratch: scratch)

            var small = shape
            small.batch = naiveBatch
            let smallScratch = Conv2D.scratchFloats(shape: small, threads: 1)
            let fastSmall = timePasses(shape: small, scratchCount: smallScratch, context: single, seconds: min(seconds, 0.2),
                                       input: input, dInput: dInput, output: output, dOut: dOut, weights: weights,
                                       dWeights: dWeights, scratch: scratch)
            let naive = naivePasses(seconds: min(seconds, 0.2), forward: {
                Conv2D.naiveForward(out: output, input: UnsafePointer(input), weights: UnsafePointer(weights), shape: small)
            }, data: {
                Conv2D.naiveBackwardData(dInput: dInput, dOut: UnsafePointer(dOut), weights: UnsafePointer(weights), shape: small)
            }, weights: {
                Conv2D.naiveBackwardWeights(dWeights: dWeights, dOut: UnsafePointer(dOut), input: UnsafePointer(input), shape: small)
            })
            let gflops = Double(shape.flops) / times.forward / 1e9
            printRow(name, times: times, rates: [(BenchSupport.format(gflops, decimals: 1), 9),
                                                (BenchSupport.percentOfPeak(gflops, peak: peak), 7)],
                     naive: naive, fast: fastSmall)
        }

        // Depthwise: DepthwiseConv2D's row kernels against their naive twins.
        print("")
        print("depthwise conv 3x3 (DepthwiseConv2D), batch \(mobileBatch), \(threads) thread(s); GF/s = 2 * out * 9 / s;"
              + " x naive at batch \(naiveBatch), 1 thread")
        print(Format.padRight("layer", 26) + Format.pad("fwd ms", 8) + Format.pad("bwdD ms", 9)
              + Format.pad("bwdW ms", 9) + Format.pad("fwd GF/s", 9) + Format.pad("bwdD GF/s", 10)
              + Format.pad("bwdW GF/s", 10) + Format.pad("bwd/fwd", 8) + Format.pad("fwd xN", 8) + Format.pad("bwdD xN", 8)
              + Format.pad("bwdW xN", 8))
        for (name, shape) in depthwiseLayers {
            let times = timeDepthwise(shape: shape, context: multi, seconds: seconds, input: input, dInput: dInput,
                                      output: output, dOut: dOut, weights: weights, dWeights: dWeights)
            var small = shape
            small.batch = naiveBatch
            let fastSmall = timeDepthwise(shape: small, context: single, seconds: min(seconds, 0.2), input: input, dInput: dInput,
                                          output: output, dOut: dOut, weights: weights, dWeights: dWeights)
            let naive = naivePasses(seconds: min(seconds, 0.2), forward: {
                DepthwiseConv2D.naiveForward(out: output, input: UnsafePointer(input), weights: UnsafePointer(weights), shape: small)
            }, data: {
                DepthwiseConv2D.naiveBackwardData(dInput: dInput, dOut: UnsafePointer(dOut), weights: UnsafePointer(weights), shape: small)
            }, weights: {
                DepthwiseConv2D.naiveBackwardWeights(dWeights: dWeights, dOut: UnsafePointer(dOut), input: UnsafePointer(input), shape: small)
            })
            // Conv2DShape.flops counts a full (Cin-deep) patch; a depthwise output reads KH*KW values.
            let flops = Double(2 * shape.outputCount * shape.kernelHeight * shape.kernelWidth)
            printRow(name, times: times, rates: [(BenchSupport.format(flops / times.forward / 1e9, decimals: 1), 9),
                                                (BenchSupport.format(flops / times.data / 1e9, decimals: 1), 10),
                                                (BenchSupport.format(flops / times.weights / 1e9, decimals: 1), 10)],
                     naive: naive, fast: fastSmall)
        }

        // The column (im2col) paths against the ones `Conv2D` takes for stride-1 3x3 layers:
        // interleaved rounds, medians, and the median per-round ratio column/new.
        print("")
        print("conv paths: im2col (col) vs implicit GEMM or phase planes (fwd), transposed convolution or phase planes (bwdD) and direct correlation (bwdW), \(threads) thread(s)")
        printPairHeader(old: "col", new: "new")
        for (name, shape) in layers {
            let scratchCount = Conv2D.scratchFloats(shape: shape, threads: threads)
            if Conv2D.usesImplicitForward(shape) {
                printPair(name, "fwd", seconds: seconds, column: {
                    Conv2D.forwardColumns(out: output, input: input, weights: weights, shape: shape, scratch: scratch,
                                          scratchCount: scratchCount, context: multi)
                }, new: {
                    Conv2D.forwardImplicit(out: output, input: input, weights: weights, shape: shape, context: multi)
                })
            }
            if Conv2D.phasedBlockImages(shape, scratchCount: scratchCount) > 0 {
                printPair(name, "fwd", seconds: seconds, column: {
                    Conv2D.forwardColumns(out: output, input: input, weights: weights, shape: shape, scratch: scratch,
                                          scratchCount: scratchCount, context: multi)
                }, new: {
                    Conv2D.forwardPhased(out: output, input: input, weights: weights, shape: shape, scratch: scratch,
                                         scratchCount: scratchCount, context: multi)
                })
            }
            if Conv2D.transposedShape(shape) != nil {
                printPair(name, "bwdD", seconds: seconds, column: {
                    Conv2D.backwardDataColumns(dInput: dInput, dOut: dOut, weights: weights, shape: shape,
                                               scratch: scratch, scratchCount: scratchCount, context: multi)
                }, new: {
                    Conv2D.backwardDataTransposed(dInput: dInput, dOut: dOut, weights: weights, shape: shape,
                                                  scratch: scratch, scratchCount: scratchCount, context: multi)
                })
            }
            if Conv2D.phasedBackwardBlockImages(shape, scratchCount: scratchCount) > 0 {
                printPair(name, "bwdD", seconds: seconds, column: {
                    Conv2D.backwardDataColumns(dInput: dInput, dOut: dOut, weights: weights, shape: shape,
                                               scratch: scratch, scratchCount: scratchCount, context: multi)
                }, new: {
                    Conv2D.backwardDataPhased(dInput: dInput, dOut: dOut, weights: weights, shape: shape,
                                              scratch: scratch, scratchCount: scratchCount, context: multi)
                })
            }
            if Conv2D.directWeightBlockImages(shape, scratchCount: scratchCount) > 0 {
                printPair(name, "bwdW", seconds: seconds, column: {
                    Conv2D.backwardWeightsColumns(dWeights: dWeights, dOut: dOut, input: input, shape: shape,
                                                  scratch: scratch, scratchCount: scratchCount, context: multi)
                }, new: {
                    Conv2D.backwardWeightsDirect(dWeights: dWeights, dOut: dOut, input: input, shape: shape,
                                                 scratch: scratch, scratchCount: scratchCount, context: multi)
                })
            }
        }

        // The weight gradient with output channels in the lanes against the path taken without it.
        if multi.wideKernels {
            print("")
            print("weight lanes: the path taken without it (old) vs the weight gradient with output channels in the lanes (new), \(threads) thread(s)")
            printPairHeader(old: "old", new: "new")
            for (name, shape) in layers + winogradLayers {
                let scratchCount = winogradBenchScratch(shape, threads: threads)
                guard Conv2D.weightLanesBlockImages(shape, scratchCount: scratchCount) > 0 else { continue }
                printPair(name, "bwdW", seconds: seconds, column: {
                    Conv2D.backwardWeights(dWeights: dWeights, dOut: dOut, input: input, shape: shape, scratch: scratch,
                                           scratchCount: scratchCount, context: multi, lanes: false)
                }, new: {
                    Conv2D.backwardWeightsLanes(dWeights: dWeights, dOut: dOut, input: input, shape: shape, scratch: scratch,
                                                scratchCount: scratchCount, context: multi)
                })
            }
        }

        // The 3x3 stride-1 convolution with output channels in the lanes against the path taken
        // without it (forward, and the data gradient as the flipped convolution).
        if multi.wideKernels {
            print("")
            print("conv lanes: the path taken without it (old) vs 3x3 stride 1 with output channels in the lanes (new), \(threads) thread(s)")
            printPairHeader(old: "old", new: "new")
            for (name, shape) in layers + winogradLayers where Conv2D.convLanesShape(shape) && shape.inChannels > 1 {
                let scratchCount = max(winogradBenchScratch(shape, threads: threads),
                                       Conv2D.convLanesScratchFloats(shape, threads: threads))
                printPair(name, "fwd", seconds: seconds, column: {
                    Conv2D.forward(out: output, input: input, weights: weights, shape: shape, scratch: scratch,
                                   scratchCount: scratchCount, context: multi, lanes: false)
                }, new: {
                    Conv2D.forwardLanes(out: output, input: input, weights: weights, shape: shape, scratch: scratch,
                                        scratchCount: scratchCount, context: multi)
                })
                guard let transposed = Conv2D.transposedShape(shape), Conv2D.convLanesShape(transposed) else { continue }
                printPair(name, "bwdD", seconds: seconds, column: {
                    Conv2D.backwardData(dInput: dInput, dOut: dOut, weights: weights, shape: shape, scratch: scratch,
                                        scratchCount: scratchCount, context: multi, lanes: false)
                }, new: {
                    Conv2D.forwardLanes(out: dInput, input: dOut, weights: weights, shape: transposed, flipped: true,
                                        accumulate: true, scratch: scratch, scratchCount: scratchCount, context: multi)
                })
            }
        }

        // The 3x3 stride-2 convolution with output channels in the lanes against the path taken
        // without it (forward, and the data gradient through the four input phases).
        if multi.wideKernels {
            print("")
            print("strided lanes: the path taken without it (old) vs 3x3 and 1x1 stride 2 with output channels in the lanes (new), \(threads) thread(s)")
            printPairHeader(old: "old", new: "new")
            for (name, shape) in layers + stridedLayers where Conv2D.stridedLanesShape(shape) || Conv2D.pointwiseLanesShape(shape) {
                let scratchCount = max(Conv2D.scratchFloats(shape: shape, threads: threads),
                                       Conv2D.stridedLanesScratchFloats(shape, threads: threads),
                                       Conv2D.pointwiseLanesScratchFloats(shape, threads: threads))
                let pointwise = Conv2D.pointwiseLanesShape(shape)
                printPair(name, "fwd", seconds: seconds, column: {
                    Conv2D.forward(out: output, input: input, weights: weights, shape: shape, scratch: scratch,
                                   scratchCount: scratchCount, context: multi, lanes: false)
                }, new: {
                    if pointwise {
                        Conv2D.pointwiseLanes(out: output, input: input, weights: weights, shape: shape, forward: true,
                                              scratch: scratch, scratchCount: scratchCount, context: multi)
                    } else {
                        Conv2D.forwardStridedLanes(out: output, input: input, weights: weights, shape: shape, scratch: scratch,
                                                   scratchCount: scratchCount, context: multi)
                    }
                })
                printPair(name, "bwdD", seconds: seconds, column: {
                    Conv2D.backwardData(dInput: dInput, dOut: dOut, weights: weights, shape: shape, scratch: scratch,
                                        scratchCount: scratchCount, context: multi, lanes: false)
                }, new: {
                    if pointwise {
                        Conv2D.pointwiseLanes(out: dInput, input: dOut, weights: weights, shape: shape, forward: false,
                                              scratch: scratch, scratchCount: scratchCount, context: multi)
                    } else {
                        Conv2D.backwardDataStridedLanes(dInput: dInput, dOut: dOut, weights: weights, shape: shape, scratch: scratch,
                                                        scratchCount: scratchCount, context: multi)
                    }
                })
            }
        }

        // The AVX-512 one-channel forward against the column path's nine-tap loop.
        if multi.wideKernels {
            print("")
            print("one-channel forward: the column path's nine-tap loop (old) vs padded images and 16-lane rows (new), \(threads) thread(s)")
            printPairHeader(old: "old", new: "new")
            for (name, shape) in layers {
                let scratchCount = Conv2D.scratchFloats(shape: shape, threads: threads)
                guard Conv2D.wideNineTapBlockImages(shape, scratchCount: scratchCount) > 0 else { continue }
                printPair(name, "fwd", seconds: seconds, column: {
                    Conv2D.forwardColumns(out: output, input: input, weights: weights, shape: shape, scratch: scratch,
                                          scratchCount: scratchCount, context: multi)
                }, new: {
                    Conv2D.forwardNineTapWide(out: output, input: input, weights: weights, shape: shape, scratch: scratch,
                                              scratchCount: scratchCount, context: multi)
                })
            }
        }

        // Winograd F(2x2, 3x3) against the path each pass takes without it.
        print("")
        print("winograd: the path taken without Winograd (old) vs Winograd F(2x2,3x3) (new), fwd and bwdD, \(threads) thread(s)")
        printPairHeader(old: "old", new: "wino")
        for (name, shape) in layers + winogradLayers where Conv2D.usesWinograd(shape) {
            let scratchCount = winogradBenchScratch(shape, threads: threads)
            guard Conv2D.winogradFits(shape, scratchCount: scratchCount, context: multi) else { continue }
            printPair(name, "fwd", seconds: seconds, column: {
                Conv2D.forward(out: output, input: input, weights: weights, shape: shape, scratch: scratch,
                               scratchCount: scratchCount, context: multi, winograd: false)
            }, new: {
                Conv2D.forwardWinograd(out: output, input: input, weights: weights, shape: shape, scratch: scratch,
                                       scratchCount: scratchCount, context: multi)
            })
            guard let transposed = Conv2D.transposedShape(shape),
                  Conv2D.winogradFits(transposed, scratchCount: scratchCount, context: multi) else { continue }
            printPair(name, "bwdD", seconds: seconds, column: {
                Conv2D.backwardData(dInput: dInput, dOut: dOut, weights: weights, shape: shape, scratch: scratch,
                                    scratchCount: scratchCount, context: multi, winograd: false)
            }, new: {
                Conv2D.forwardWinograd(out: dInput, input: dOut, weights: weights, shape: transposed, flipped: true,
                                       accumulate: true, scratch: scratch, scratchCount: scratchCount, context: multi)
            })
        }
    }

    /// The scratch that lets both the direct paths and Winograd (forward and the transposed form)
    /// run `shape` at their recommended sizes.
    static func winogradBenchScratch(_ shape: Conv2DShape, threads: Int) -> Int {
        max(Conv2D.scratchFloats(shape: shape, threads: threads),
            Conv2D.winogradLayerScratchFloats(shape, threads: threads, takes: Conv2D.usesWinograd))
    }

    /// `timePasses` for DepthwiseConv2D: interleaved rounds of forward, backward-data and
    /// backward-weights; medians and the median (bwd-data + bwd-weights) / forward.
    /// Median seconds of the three naive passes, each timed for about `seconds`.
    static func naivePasses(seconds: Double, forward: () -> Void, data: () -> Void,
                            weights: () -> Void) -> (forward: Double, data: Double, weights: Double) {
        (BenchSupport.medianSeconds(targetSeconds: seconds, minimumRuns: 3, forward),
         BenchSupport.medianSeconds(targetSeconds: seconds, minimumRuns: 3, data),
         BenchSupport.medianSeconds(targetSeconds: seconds, minimumRuns: 3, weights))
    }

    /// One table row: the three passes' ms, the section's rate cells (text, width), the
    /// backward/forward ratio and each pass's speed-up over its naive twin.
    static func printRow(_ name: String, times: (forward: Double, data: Double, weights: Double, ratio: Double),
                         rates: [(String, Int)], naive: (forward: Double, data: Double, weights: Double),
                         fast: (forward: Double, data: Double, weights: Double, ratio: Double)) {
        var line = Format.padRight(name, 26) + Format.pad(BenchSupport.format(times.forward * 1e3), 8)
            + Format.pad(BenchSupport.format(times.data * 1e3), 9) + Format.pad(BenchSupport.format(times.weights * 1e3), 9)
        for (text, width) in rates { line += Format.pad(text, width) }
        line += Format.pad(BenchSupport.format(times.ratio), 8)
            + Format.pad(BenchSupport.format(naive.forward / fast.forward, decimals: 0), 8)
            + Format.pad(BenchSupport.format(naive.data / fast.data, decimals: 0), 8)
            + Format.pad(BenchSupport.format(naive.weights / fast.weights, decimals: 0), 8)
        print(line)
    }

    static func timeDepthwise(
        shape: Conv2DShape, context: KernelContext, seconds: Double,
        input: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
        dOut: UnsafeMutablePointer<Float>, weights: UnsafeMutablePointer<Float>, dWeights: UnsafeMutablePointer<Float>
    ) -> (forward: Double, data: Double, weights: Double, ratio: Double) {
        func timed(_ body: () -> Void) -> Double {
            let start = Clock.seconds()
            body()
            return Clock.seconds() - start
        }
        func round() -> (Double, Double, Double) {
            (timed { DepthwiseConv2D.forward(out: output, input: input, weights: weights, shape: shape, context: context) },
             timed { DepthwiseConv2D.backwardData(dInput: dInput, dOut: dOut, weights: weights, shape: shape, context: context) },
             timed { DepthwiseConv2D.backwardWeights(dWeights: dWeights, dOut: dOut, input: input, shape: shape, context: context) })
        }
        let warm = round()
        let rounds = max(5, min(1000, Int(seconds / max(warm.0 + warm.1 + warm.2, 1e-7))))
        var forward = [Double](repeating: 0, count: rounds)
        var data = forward, weightsTimes = forward, ratios = forward
        for index in 0..<rounds {
            let (f, d, w) = round()
            forward[index] = f; data[index] = d; weightsTimes[index] = w
            ratios[index] = (d + w) / f
        }
        forward.sort(); data.sort(); weightsTimes.sort(); ratios.sort()
        return (forward[rounds / 2], data[rounds / 2], weightsTimes[rounds / 2], ratios[rounds / 2])
    }

    /// One row of the path comparison: interleaved rounds of the column path and the new one,
    /// their median times and the median per-round ratio column/new.
    /// The column titles of `printPair`'s rows.
    static func printPairHeader(old: String, new: String) {
        print(Format.padRight("layer", 26) + Format.pad("pass", 6) + Format.pad(old + " ms", 9)
              + Format.pad(new + " ms", 9) + Format.pad(old + "/" + new, 9))
    }

    static func printPair(_ name: String, _ pass: String, seconds: Double, column: () -> Void, new: () -> Void) {
        func timed(_ body: () -> Void) -> Double {
            let start = Clock.seconds()
            body()
            return Clock.seconds() - start
        }
        let warm = timed(column) + timed(new)
        let rounds = max(5, min(1000, Int(seconds / 3 / max(warm, 1e-7))))
        var columnTimes = [Double](repeating: 0, count: rounds)
        var newTimes = columnTimes, ratios = columnTimes
        for index in 0..<rounds {
            let c = timed(column), t = timed(new)
            columnTimes[index] = c; newTimes[index] = t; ratios[index] = c / t
        }
        columnTimes.sort(); newTimes.sort(); ratios.sort()
        print(Format.padRight(name, 26) + Format.pad(pass, 6)
              + Format.pad(BenchSupport.format(columnTimes[rounds / 2] * 1e3), 9)
              + Format.pad(BenchSupport.format(newTimes[rounds / 2] * 1e3), 9)
              + Format.pad(BenchSupport.format(ratios[rounds / 2]), 9))
    }

    /// Median seconds of forward, backward-data and backward-weights for one shape, and the
    /// median over rounds of (bwd-data + bwd-weights) / forward. The three passes run interleaved,
    /// one of each per round, so a burst of load from other processes hits all three alike.
    static func timePasses(
        shape: Conv2DShape, scratchCount: Int, context: KernelContext, seconds: Double,
        input: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
        dOut: UnsafeMutablePointer<Float>, weights: UnsafeMutablePointer<Float>, dWeights: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>
    ) -> (forward: Double, data: Double, weights: Double, ratio: Double) {
        func timed(_ body: () -> Void) -> Double {
            let start = Clock.seconds()
            body()
            return Clock.seconds() - start
        }
        func round() -> (Double, Double, Double) {
            (timed { Conv2D.forward(out: output, input: input, weights: weights, shape: shape,
                                    scratch: scratch, scratchCount: scratchCount, context: context) },
             timed { Conv2D.backwardData(dInput: dInput, dOut: dOut, weights: weights, shape: shape,
                                         scratch: scratch, scratchCount: scratchCount, context: context) },
             timed { Conv2D.backwardWeights(dWeights: dWeights, dOut: dOut, input: input, shape: shape,
                                            scratch: scratch, scratchCount: scratchCount, context: context) })
        }
        let warm = round()
        let rounds = max(5, min(1000, Int(seconds / max(warm.0 + warm.1 + warm.2, 1e-7))))
        var forward = [Double](repeating: 0, count: rounds)
        var data = forward, weightsTimes = forward, ratios = forward
        for index in 0..<rounds {
            let (f, d, w) = round()
            forward[index] = f; data[index] = d; weightsTimes[index] = w
            ratios[index] = (d + w) / f
        }
        forward.sort(); data.sort(); weightsTimes.sort(); ratios.sort()
        return (forward[rounds / 2], data[rounds / 2], weightsTimes[rounds / 2], ratios[rounds / 2])
    }
}
