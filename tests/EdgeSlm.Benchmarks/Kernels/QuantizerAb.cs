using System.Diagnostics;
using System.Globalization;
using System.Runtime.Intrinsics.X86;
using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Benchmarks.Kernels;

/// <summary>
/// The activation quantizer's tiers interleaved in one process, on the encoder's shapes at 10 tokens (120 blocks:
/// a 384-wide input; 480: the 1536-wide FFN input), cached. Prints the minimum and median ns per block over rounds.
/// </summary>
internal static unsafe class QuantizerAb
{
    public static int Run()
    {
        var tiers = new List<(string Name, ActivationQuantizer.Tier Tier)>
        {
            ("reference", ActivationQuantizer.QuantizeReference),
            ("vector128", ActivationQuantizer.QuantizeVector128),
        };
        if (Vector256.IsHardwareAccelerated) tiers.Add(("vector256", ActivationQuantizer.QuantizeVector256));
        if (Avx512F.IsSupported) tiers.Add(("avx512", ActivationQuantizer.QuantizeAvx512));
        Console.WriteLine($"load average: {File.ReadAllText("/proc/loadavg").Trim()}");
        foreach (int blocks in new[] { 120, 480 })
        {
            var random = new Random(blocks);
            float[] x = Enumerable.Range(0, blocks * 32).Select(_ => (float)(random.NextDouble() * 2 - 1) * 4).ToArray();
            var output = new byte[blocks * ActivationBlock.Bytes];
            const int Rounds = 200, Calls = 200;
            var ns = new double[tiers.Count][];
            for (int t = 0; t < tiers.Count; t++) ns[t] = new double[Rounds];
            fixed (float* source = x)
            fixed (byte* destination = output)
            {
                for (int round = 0; round < Rounds; round++)
                {
                    for (int t = 0; t < tiers.Count; t++)
                    {
                        long start = Stopwatch.GetTimestamp();
                        for (int call = 0; call < Calls; call++) tiers[t].Tier(source, blocks, destination);
                        ns[t][round] = Stopwatch.GetElapsedTime(start).TotalNanoseconds / Calls / blocks;
                    }
                }
            }
            for (int t = 0; t < tiers.Count; t++)
            {
                double[] sorted = ns[t].Order().ToArray();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{blocks} blocks {tiers[t].Name,-10} min {sorted[0]:F2} ns/block, median {sorted[Rounds / 2]:F2}"));
            }
        }
        return 0;
    }
}
