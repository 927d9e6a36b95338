using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using EdgeSlm.Benchmarks.Ggml;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.MatMul;

namespace EdgeSlm.Benchmarks.Kernels;

internal sealed record KernelBenchmarkOptions(
    IReadOnlyList<int> Threads, IReadOnlyList<(int Rows, int K)> Shapes, bool Quick, string? OutputPath, string? GgmlVariant);

/// <summary>
/// Q4_0 matrix × f32 activations, GEMV (1 token) and GEMM (16 tokens), ours against llama.cpp's ggml on the
/// same quantized bytes, and against plain f32 dot products. Every implementation is timed per call including
/// its quantization of the activations to Q8_0, and their outputs are compared before timing.
/// </summary>
internal static class KernelBenchmark
{
    public static readonly (int Rows, int K)[] DefaultShapes = [(384, 384), (1536, 384), (384, 1536), (4096, 4096)];
    private static readonly int[] TokenCounts = [1, 16];

    // Ours and ggml quantize activations identically (round half to even of x · 127 / max|x|); only the order of
    // float additions differs, so outputs agree to a few float ulps of the largest output.
    private const double AgreementTolerance = 1e-4;

    private const string Ours = "ours";
    private const string Portable = "ours portable";
    private const string Ggml = "ggml";
    private const string GgmlRepack = "ggml repack";
    private const string Float = "f32 TensorPrimitives.Dot";

    private sealed record Result(int Rows, int K, int Tokens, int Threads, string Implementation, Timing Timing, long WeightBytes)
    {
        public double GigabytesPerSecond => WeightBytes / Timing.MedianMicroseconds / 1e3;
        public double GigaMacsPerSecond => (double)Rows * K * Tokens / Timing.MedianMicroseconds / 1e3;
    }

    private sealed record Agreement(int Rows, int K, int Tokens, double VersusGgml, double VersusRepack, double VersusFloat);

    public static unsafe int Run(KernelBenchmarkOptions options)
    {
        GgmlLibrary ggml = GgmlLibrary.Load(options.GgmlVariant);
        nint backend = ggml.BackendCpuInit();
        if (backend == 0)
        {
            throw new InvalidOperationException("ggml_backend_cpu_init returned NULL.");
        }
        nint repack = ggml.RepackBufferType(backend);
        KernelPath fastest = KernelPaths.Fastest;
        var timer = new CallTimer(TimeSpan.FromMilliseconds(options.Quick ? 50 : 250), minSamples: options.Quick ? 3 : 7);
        var results = new List<Result>();
        var agreements = new List<Agreement>();
        string oursName = $"{Ours} {KernelPaths.Name(fastest)}";

        Console.Error.WriteLine($"ggml {ggml.VersionText}, {ggml.Variant}: {string.Join(' ', ggml.CpuFeatures())}; repack: {(repack != 0 ? "CPU_REPACK" : "none")}");
        WarmUpManagedCode(options.Threads, fastest);
        foreach ((int rows, int k) in options.Shapes)
        {
            float[] weights = Gaussian(rows * k, seed: rows + k, scale: 0.02f);
            using QuantizedMatrix matrix = QuantizedMatrix.Quantize(QuantType.Q4_0, weights, rows, k);
            long quantizedBytes = matrix.TotalBytes;
            foreach (int tokens in TokenCounts)
            {
                float[] activations = Gaussian(tokens * k, seed: tokens * 7 + k, scale: 1f);
                var oursOutput = new float[tokens * rows];
                var floatOutput = new float[tokens * rows];
                using var ggmlPlain = new GgmlMatMul(ggml, matrix.Bytes, rows, k, tokens, backend, repackBufferType: 0);
                using GgmlMatMul? ggmlRepack = repack != 0 ? new GgmlMatMul(ggml, matrix.Bytes, rows, k, tokens, backend, repack) : null;
                activations.CopyTo(ggmlPlain.Activations);
                if (ggmlRepack is not null)
                {
                    activations.CopyTo(ggmlRepack.Activations);
                }

                // Same work: compare every output once before timing.
                using (var check = new QuantMatMul(1, fastest))
                using (var floatCheck = new FloatMatMul(weights, rows, k, 1))
                {
                    check.Multiply(matrix, activations, tokens, oursOutput);
                    floatCheck.Multiply(activations, tokens, floatOutput);
                }
                ggml.BackendCpuSetThreads(backend, 1);
                ggmlPlain.Compute();
                ggmlRepack?.Compute();
                agreements.Add(new Agreement(rows, k, tokens,
                    RelativeDifference(oursOutput, ggmlPlain.Output),
                    ggmlRepack is null ? double.NaN : RelativeDifference(oursOutput, ggmlRepack.Output),
                    RelativeDifference(oursOutput, floatOutput)));

                foreach (int threads in options.Threads)
                {
                    Console.Error.WriteLine($"{rows}x{k}, {tokens} token(s), {threads} thread(s)");
                    foreach (KernelPath path in new[] { fastest, KernelPath.Portable }.Distinct())
                    {
                        using var ours = new QuantMatMul(threads, path);
                        Timing timing = timer.Measure(() => ours.Multiply(matrix, activations, tokens, oursOutput));
                        results.Add(new Result(rows, k, tokens, threads, path == fastest ? oursName : Portable, timing, quantizedBytes));
                        Settle();
                    }

                    ggml.BackendCpuSetThreads(backend, threads);
                    results.Add(new Result(rows, k, tokens, threads, Ggml, timer.Measure(ggmlPlain.Compute), quantizedBytes));
                    Settle();
                    if (ggmlRepack is not null)
                    {
                        results.Add(new Result(rows, k, tokens, threads, GgmlRepack, timer.Measure(ggmlRepack.Compute), quantizedBytes));
                        Settle();
                    }

                    using (var f32 = new FloatMatMul(weights, rows, k, threads))
                    {
                        results.Add(new Result(rows, k, tokens, threads, Float, timer.Measure(() => f32.Multiply(activations, tokens, floatOutput)), (long)rows * k * sizeof(float)));
                    }
                    Settle();
                }
            }
        }
        ggml.BackendFree(backend);

        string report = Report(options, ggml, repack != 0, fastest, oursName, results, agreements);
        Console.Out.Write(report);
        if (options.OutputPath is not null)
        {
            File.WriteAllText(options.OutputPath, report);
        }
        bool agree = agreements.All(a => a.VersusGgml <= AgreementTolerance && !(a.VersusRepack > AgreementTolerance));
        if (!agree)
        {
            Console.Error.WriteLine($"Our output and ggml's differ by more than {AgreementTolerance} of the largest output: the timings do not compare the same work.");
        }
        return agree ? 0 : 1;
    }

    /// <summary>
    /// Runs the managed implementations long enough for tiered compilation to replace their first code with fully
    /// optimized code (it waits for 100 ms without new first-tier methods), so the first timed case is not slower
    /// for being first. The kernels themselves are compiled fully optimized at once (AggressiveOptimization).
    /// </summary>
    private static void WarmUpManagedCode(IReadOnlyList<int> threadCounts, KernelPath fastest)
    {
        const int rows = 64, k = 256;
        float[] weights = Gaussian(rows * k, seed: 1, scale: 0.02f);
        using QuantizedMatrix matrix = QuantizedMatrix.Quantize(QuantType.Q4_0, weights, rows, k);
        foreach (int tokens in TokenCounts)
        {
            float[] activations = Gaussian(tokens * k, seed: 2, scale: 1f);
            var output = new float[tokens * rows];
            foreach (int threads in threadCounts)
            {
                foreach (KernelPath path in new[] { fastest, KernelPath.Portable }.Distinct())
                {
                    using var ours = new QuantMatMul(threads, path);
                    CallTimer.WarmUp(() => ours.Multiply(matrix, activations, tokens, output), TimeSpan.FromMilliseconds(150));
                }
                using var f32 = new FloatMatMul(weights, rows, k, threads);
                CallTimer.WarmUp(() => f32.Multiply(activations, tokens, output), TimeSpan.FromMilliseconds(150));
            }
        }
        Thread.Sleep(500);
    }

    /// <summary>Lets worker threads of the previous case (ours spin, OpenMP's spin) go idle before the next is timed.</summary>
    private static void Settle() => Thread.Sleep(100);

    private static double RelativeDifference(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double maxDifference = 0, maxMagnitude = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxDifference = Math.Max(maxDifference, Math.Abs((double)actual[i] - expected[i]));
            maxMagnitude = Math.Max(maxMagnitude, Math.Abs((double)expected[i]));
        }
        return maxDifference / maxMagnitude;
    }

    private static float[] Gaussian(int count, int seed, float scale)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1.0 - random.NextDouble();
            double u2 = random.NextDouble();
            values[i] = (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2)) * scale;
        }
        return values;
    }

    private static string Report(KernelBenchmarkOptions options, GgmlLibrary ggml, bool hasRepack, KernelPath fastest, string oursName,
        List<Result> results, List<Agreement> agreements)
    {
        var text = new StringBuilder();
        text.AppendLine("# Q4_0 matrix multiplication: EdgeSlm kernels vs llama.cpp's ggml");
        text.AppendLine();
        text.AppendLine($"- CPU: {CpuName()}, {Environment.ProcessorCount} logical cores; {RuntimeInformation.FrameworkDescription}, {RuntimeInformation.ProcessArchitecture}");
        text.AppendLine($"- ours: QuantMatMul on the {KernelPaths.Name(fastest)} path (KernelPaths.Fastest) and on the portable path; {KernelPaths.DescribeVectors()}");
        text.AppendLine($"- ggml {ggml.VersionText} from LLamaSharp.Backend.Cpu 0.30.0, libggml-cpu.so build '{ggml.Variant}' ({string.Join(' ', ggml.CpuFeatures())}), " +
            "one ggml_mul_mat per graph, ggml_backend_graph_compute on the CPU backend (OpenMP threads)");
        text.AppendLine($"- ggml repack: weights in the CPU_REPACK buffer type (interleaved for ggml's GEMM/GEMV kernels), as llama.cpp loads model weights by default{(hasRepack ? "" : "; not available here")}");
        text.AppendLine("- f32: the unquantized weights, TensorPrimitives.Dot per (row, token)");
        text.AppendLine($"- per call, including quantizing the activations; median and min of single calls after warm-up, {(options.Quick ? "≥ 50 ms (--quick)" : "≥ 250 ms")} per case");
        text.AppendLine("- weight GB/s = weight bytes (Q4_0: 18 per 32; f32: 4 each) / median time; GMAC/s = rows · k · tokens / median time");
        text.AppendLine("- ratios are of median times: ours/ggml > 1 means ours is slower");
        text.AppendLine();

        text.AppendLine("## Summary (median µs per call)");
        text.AppendLine();
        var summary = new List<string[]>();
        foreach (var group in results.GroupBy(r => (r.Rows, r.K, r.Tokens, r.Threads)))
        {
            double Median(string implementation) => group.FirstOrDefault(r => r.Implementation == implementation)?.Timing.MedianMicroseconds ?? double.NaN;
            double ours = Median(oursName), ggmlTime = Median(Ggml), repack = Median(GgmlRepack), f32 = Median(Float);
            summary.Add([$"{group.Key.Rows}x{group.Key.K}", Int(group.Key.Tokens), Int(group.Key.Threads),
                Number(ours), Number(Median(Portable)), Number(ggmlTime), Number(repack), Number(f32),
                Ratio(ours / ggmlTime), Ratio(ours / repack), Ratio(f32 / ours)]);
        }
        AppendTable(text, ["rows x k", "tokens", "threads", oursName, Portable, Ggml, GgmlRepack, "f32", "ours/ggml", "ours/repack", "f32/ours"], summary);

        text.AppendLine("## All cases");
        text.AppendLine();
        AppendTable(text, ["rows x k", "tokens", "threads", "implementation", "median µs", "min µs", "samples", "weight GB/s", "GMAC/s"],
            results.Select(r => new[]
            {
                $"{r.Rows}x{r.K}", Int(r.Tokens), Int(r.Threads), r.Implementation,
                Number(r.Timing.MedianMicroseconds), Number(r.Timing.MinMicroseconds),
                Int(r.Timing.Samples) + (r.Timing.GarbageCollections > 0 ? $" ({r.Timing.GarbageCollections} GCs!)" : ""),
                Number(r.GigabytesPerSecond), Number(r.GigaMacsPerSecond),
            }).ToList());

        text.AppendLine($"## Same work: max |ours - other| / max |other| over the output ({KernelPaths.Name(fastest)} path, 1 thread)");
        text.AppendLine();
        AppendTable(text, ["rows x k", "tokens", "vs ggml", "vs ggml repack", "vs f32 (quantization error)"],
            agreements.Select(a => new[]
            {
                $"{a.Rows}x{a.K}", Int(a.Tokens), Scientific(a.VersusGgml), Scientific(a.VersusRepack), Scientific(a.VersusFloat),
            }).ToList());
        return text.ToString();
    }

    private static void AppendTable(StringBuilder text, string[] header, List<string[]> rows)
    {
        text.AppendLine("| " + string.Join(" | ", header) + " |");
        text.AppendLine("|" + string.Join("|", header.Select((name, i) => i == 0 || name == "implementation" ? "---" : "---:")) + "|");
        foreach (string[] row in rows)
        {
            text.AppendLine("| " + string.Join(" | ", row) + " |");
        }
        text.AppendLine();
    }

    private static string CpuName()
    {
        if (OperatingSystem.IsLinux() && File.Exists("/proc/cpuinfo"))
        {
            string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null)
            {
                return line[(line.IndexOf(':') + 1)..].Trim();
            }
        }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    private static string Int(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Number(double value) =>
        double.IsNaN(value) ? "-" : value.ToString(value >= 100 ? "F0" : value >= 10 ? "F1" : "F2", CultureInfo.InvariantCulture);

    private static string Ratio(double value) => double.IsNaN(value) ? "-" : value.ToString("F2", CultureInfo.InvariantCulture);

    private static string Scientific(double value) => double.IsNaN(value) ? "-" : value.ToString("0.0e0", CultureInfo.InvariantCulture);
}
