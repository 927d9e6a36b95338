using System.Diagnostics;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.MatMul;
using EdgeSlm.Models.Bert;

namespace EdgeSlm.Benchmarks.Kernels;

/// <summary>
/// kernel-ab: two x64 kernels interleaved in one process (each sample times A then B, or B then A), minimum and
/// median µs per call and GMAC/s. Weights are rotated over 48 MB of copies so that each call reads them from beyond
/// L2, as in the model (KERNEL_AB_ROTATE_MB=0: one copy, hot in cache). KERNEL_AB_KERNELS=A,B picks the kernels: a path name (avx2, avx512, ...: its kernel as
/// QuantMatMul runs it) or avx2-4row (the AVX2 4-row kernel alone); default avx2-4row,avx2.
/// KERNEL_AB_TOKENS=1,10 picks token counts; KERNEL_AB_TENSORS=blk.1.ffn_up.weight,... uses those tensors of the
/// benchmark's q4_0 GGUF (made by the embed benchmark) at 10 tokens (all: every one), KERNEL_AB_MAPPED=1 in place in the mapped file. KERNEL_AB_FORWARD=ROUNDS instead times whole
/// forward passes of two encoders on paths A and B (<see cref="ForwardAb"/>).
/// </summary>
internal static unsafe class KernelAb
{
    public static void Compare(string name, QuantType type, int rows, int k, int tokens,
        delegate*<in MatMulArgs, int, int, void> a, delegate*<in MatMulArgs, int, int, void> b, int samples = 400)
    {
        var random = new Random(rows + k);
        float[] w = Enumerable.Range(0, rows * k).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        float[] x = Enumerable.Range(0, tokens * k).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        // Enough copies to cover 48 MB, used in turn: every call streams its weights from beyond L2, as in the model.
        using var first = RealWeights is { } real && real.Rows == rows && real.Columns == k && real.Type == type
            ? QuantizedMatrix.Copy(type, real.Bytes, rows, k) : QuantizedMatrix.Quantize(type, w, rows, k);
        int copies = (int)Math.Max(1, RotationMegabytes * 1024L * 1024 / first.TotalBytes);
        QuantizedMatrix[] matrices = Mapped && RealWeights is not null
            ? [QuantizedMatrix.View(type, rows, k, RealWeights.Data, RealWeights.TotalBytes)]
            : Enumerable.Range(0, copies).Select(_ => QuantizedMatrix.Copy(type, first.Bytes, rows, k)).ToArray();
        copies = matrices.Length;
        QuantizedMatrix matrix = first;
        using var matMul = new QuantMatMul(1);
        var activations = new QuantizedActivations();
        matMul.Quantize(x, tokens, k, activations);
        float[] ya = new float[tokens * rows], yb = new float[tokens * rows];
        fixed (float* pa = ya, pb = yb)
        {
            MatMulArgs argsA = new() { Weights = matrix.Data, WeightRowBytes = (nint)matrix.RowBytes, Rows = rows, Blocks = k / 32, Activations = activations.Data, Tokens = tokens, Output = pa, OutputStride = rows };
            MatMulArgs argsB = argsA with { Output = pb };
            a(in argsA, 0, rows);
            b(in argsB, 0, rows);
            double maxDiff = 0;
            for (int i = 0; i < ya.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(ya[i] - yb[i]) / (Math.Abs(ya[i]) + 1e-3));
            byte[] evict = new byte[EvictKilobytes * 1024];
            Random.Shared.NextBytes(evict);
            var ta = new double[samples];
            var tb = new double[samples];
            int reps = Math.Max(1, 2_000_000 / (rows * k * tokens));
            for (int s = 0; s < samples; s++)
            {
                bool aFirst = s % 2 == 0;
                for (int pass = 0; pass < 2; pass++)
                {
                    bool runA = aFirst == (pass == 0);
                    long ticks = 0;
                    for (int r = 0; r < reps; r++)
                    {
                        byte* data = matrices[(s * reps + r) % copies].Data;
                        argsA.Weights = data;
                        argsB.Weights = data;
                        if (evict.Length > 0)
                        {
                            // As in the encoder, other work between two products: caches hold none of the weights.
                            Evict(evict);
                        }
                        // Per call: started once before the loop, each rep counted every earlier one again.
                        long start = Stopwatch.GetTimestamp();
                        if (runA) a(in argsA, 0, rows); else b(in argsB, 0, rows);
                        ticks += Stopwatch.GetTimestamp() - start;
                    }
                    double us = ticks * 1e6 / Stopwatch.Frequency / reps;
                    if (runA) ta[s] = us; else tb[s] = us;
                }
            }
            Array.Sort(ta);
            Array.Sort(tb);
            double gmac = (double)rows * k * tokens / 1e3;
            foreach (QuantizedMatrix m in matrices) m.Dispose();
            Console.WriteLine($"{name,-28} {rows}x{k} t={tokens,2}: A min {ta[0],7:F1} med {ta[samples / 2],7:F1} | B min {tb[0],7:F1} med {tb[samples / 2],7:F1} µs | B/A min {tb[0] / ta[0]:F2} med {tb[samples / 2] / ta[samples / 2]:F2} | GMAC/s (min) A {gmac / ta[0]:F1} B {gmac / tb[0]:F1} | rel diff {maxDiff:E1}");
        }
    }

    public static QuantizedMatrix? RealWeights;

    /// <summary>KERNEL_AB_EVICT_KB: before each timed call, read this many KB (e.g. 65536) so that no cache holds the weights or the kernel's stack.</summary>
    private static readonly int EvictKilobytes = int.Parse(Environment.GetEnvironmentVariable("KERNEL_AB_EVICT_KB") ?? "0", System.Globalization.CultureInfo.InvariantCulture);

    private static int _evictSum;

    /// <summary>Reads the buffer (clean lines: no write-backs to wait for during the timed call).</summary>
    private static void Evict(byte[] buffer)
    {
        int sum = 0;
        for (int i = 0; i < buffer.Length; i += 64)
        {
            sum += buffer[i];
        }
        _evictSum += sum;
    }

    /// <summary>KERNEL_AB_MAPPED=1: the model's tensors in place, in the memory-mapped file (no copies, no rotation).</summary>
    private static readonly bool Mapped = Environment.GetEnvironmentVariable("KERNEL_AB_MAPPED") == "1";

    /// <summary>KERNEL_AB_ROTATE_MB: megabytes of weight copies to rotate over (default 48; 0: one copy, weights hot in cache).</summary>
    private static readonly int RotationMegabytes = int.Parse(Environment.GetEnvironmentVariable("KERNEL_AB_ROTATE_MB") ?? "48", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>KERNEL_AB_SHAPES=ROWSxK,...: the matrices (default the encoder's 384x384,1536x384,384x1536).</summary>
    private static readonly (int Rows, int K)[] Shapes = (Environment.GetEnvironmentVariable("KERNEL_AB_SHAPES") ?? "384x384,1536x384,384x1536")
        .Split(',').Select(s => s.Split('x')).Select(p => (int.Parse(p[0], System.Globalization.CultureInfo.InvariantCulture), int.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture))).ToArray();

    /// <summary>KERNEL_AB_TYPES=q4_0,q8_0: the weight types to compare (default both).</summary>
    private static readonly string[] Types = (Environment.GetEnvironmentVariable("KERNEL_AB_TYPES") ?? "q4_0,q8_0").Split(',');

    public static int Run()
    {
        string[] kernels = (Environment.GetEnvironmentVariable("KERNEL_AB_KERNELS") ?? "avx2-4row,avx2").Split(',');
        if (kernels.Length != 2)
        {
            Console.Error.WriteLine("KERNEL_AB_KERNELS needs two kernels, A,B");
            return 2;
        }
        string a = kernels[0].Trim(), b = kernels[1].Trim();
        string label = $"{a} vs {b}";
        Console.WriteLine($"A = {a}, B = {b}; load average: {File.ReadAllText("/proc/loadavg").Trim()}");
        if (Environment.GetEnvironmentVariable("KERNEL_AB_FORWARD") is { } forwardRounds)
        {
            return ForwardAb.Run(Path(a), Path(b), int.Parse(forwardRounds, System.Globalization.CultureInfo.InvariantCulture));
        }
        string? model = Environment.GetEnvironmentVariable("KERNEL_AB_TENSORS");
        if (model is not null)
        {
            using var bert = EdgeSlm.Models.Bert.BertModel.Load("/tmp/edgeslm-bench-minilm-q4_0.gguf");
            foreach (var layer in bert.LinearLayers.Where(l => model == "all" || model.Split(',').Contains(l.Name)))
            {
                RealWeights = layer.Quantized!;
                Compare(layer.Name, RealWeights.Type, layer.Rows, layer.Columns, 10, Kernel(a, RealWeights.Type), Kernel(b, RealWeights.Type));
            }
            return 0;
        }
        foreach (int tokens in (Environment.GetEnvironmentVariable("KERNEL_AB_TOKENS") ?? "1,2,4,10,12").Split(',').Select(int.Parse))
        {
            foreach ((int rows, int k) in Shapes)
            {
                if (Types.Contains("q4_0")) Compare($"q4_0 {label}", QuantType.Q4_0, rows, k, tokens, Kernel(a, QuantType.Q4_0), Kernel(b, QuantType.Q4_0));
                if (Types.Contains("q8_0")) Compare($"q8_0 {label}", QuantType.Q8_0, rows, k, tokens, Kernel(a, QuantType.Q8_0), Kernel(b, QuantType.Q8_0));
            }
        }
        return 0;
    }

    /// <summary>The kernel a name stands for: avx2-4row, or a kernel path's main kernel.</summary>
    private static delegate*<in MatMulArgs, int, int, void> Kernel(string name, QuantType type)
    {
        if (name == "avx2-4row")
        {
            return type == QuantType.Q4_0 ? &TileWalk.RunRows<Vector256Tiles<Q4_0Weights, Avx2Dot>> : &TileWalk.RunRows<Vector256Tiles<Q8_0Weights, Avx2Dot>>;
        }
        KernelPath path = Path(name);
        return type == QuantType.Q4_0 ? QuantMatMulKernels.Q4_0(path) : QuantMatMulKernels.Q8_0(path);
    }

    private static KernelPath Path(string name) =>
        KernelPaths.TryParse(name, out KernelPath path) && KernelPaths.IsSupported(path)
            ? path : throw new NotSupportedException($"kernel-ab: '{name}' is no kernel path this CPU runs ({string.Join(", ", KernelPaths.Supported.Select(KernelPaths.Name))}).");
}
