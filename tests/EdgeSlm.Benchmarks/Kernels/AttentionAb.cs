using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Attention;

namespace EdgeSlm.Benchmarks.Kernels;

/// <summary>
/// The attention kernel's tiers interleaved in one process on MiniLM's shape (12 heads of 32) at 10 and 12 tokens,
/// cached: minimum and median µs per sentence (one layer) over rounds.
/// </summary>
internal static unsafe class AttentionAb
{
    public static int Run()
    {
        var tiers = new List<(string Name, ScaledDotProductAttention.Tier Tier)> { ("reference", ScaledDotProductAttention.ComputeReference) };
        if (Vector.IsHardwareAccelerated) tiers.Add(("vector", ScaledDotProductAttention.ComputeVector));
        if (Vector512.IsHardwareAccelerated) tiers.Add(("vector512", ScaledDotProductAttention.ComputeVector512));
        Console.WriteLine($"load average: {File.ReadAllText("/proc/loadavg").Trim()}");
        const int Heads = 12, HeadSize = 32, Rounds = 200, Calls = 100;
        foreach (int tokens in new[] { 10, 12 })
        {
            var random = new Random(tokens);
            float[] Floats() => Enumerable.Range(0, tokens * Heads * HeadSize).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            float[] query = Floats(), key = Floats(), value = Floats();
            var context = new float[query.Length];
            var scores = new float[Heads * tokens];
            var us = new double[tiers.Count][];
            for (int t = 0; t < tiers.Count; t++) us[t] = new double[Rounds];
            fixed (float* q = query, k = key, v = value, c = context, s = scores)
            {
                for (int round = 0; round < Rounds; round++)
                {
                    for (int t = 0; t < tiers.Count; t++)
                    {
                        long start = Stopwatch.GetTimestamp();
                        for (int call = 0; call < Calls; call++) tiers[t].Tier(q, k, v, c, tokens, Heads, HeadSize, 0.17677669f, s);
                        us[t][round] = Stopwatch.GetElapsedTime(start).TotalMicroseconds / Calls;
                    }
                }
            }
            for (int t = 0; t < tiers.Count; t++)
            {
                double[] sorted = us[t].Order().ToArray();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{tokens} tokens {tiers[t].Name,-10} min {sorted[0]:F2} µs per layer, median {sorted[Rounds / 2]:F2}"));
            }
        }
        return 0;
    }
}
