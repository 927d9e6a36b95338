using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace EdgeSlm.Benchmarks.Decoder;

/// <summary>
/// A STREAM-like measurement of this machine's memory bandwidth, the ceiling of a generation step (which reads every
/// weight once): a read of 256 MiB summed with 32-byte vectors and a copy between two 256 MiB buffers, far larger
/// than any cache, split over the given number of threads. Best of five passes, in GB/s (10^9 bytes).
/// </summary>
internal static unsafe class MemoryBandwidth
{
    private const long Bytes = 256L << 20;
    private static float _sink; // keeps the read pass's result alive

    public static (double ReadGBs, double CopyGBs) Measure(int threads)
    {
        byte* a = (byte*)NativeMemory.AlignedAlloc((nuint)Bytes, 64);
        byte* b = (byte*)NativeMemory.AlignedAlloc((nuint)Bytes, 64);
        try
        {
            // Touch every page first, so the passes measure memory rather than page faults.
            new Span<byte>(a, (int)Bytes).Fill(1);
            new Span<byte>(b, (int)Bytes).Clear();
            double read = Best(threads, part => _sink += Sum(a + part.Start, part.Length)) / 1e9 * Bytes;
            double copy = Best(threads, part => Buffer.MemoryCopy(a + part.Start, b + part.Start, part.Length, part.Length)) / 1e9 * 2 * Bytes;
            return (read, copy);
        }
        finally
        {
            NativeMemory.AlignedFree(a);
            NativeMemory.AlignedFree(b);
        }
    }

    /// <summary>Passes per second of the best of five runs of <paramref name="pass"/> over every thread's share.</summary>
    private static double Best(int threads, Action<(long Start, long Length)> pass)
    {
        long share = Bytes / threads / 64 * 64;
        double best = double.MaxValue;
        for (int round = 0; round < 5; round++)
        {
            long start = Stopwatch.GetTimestamp();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads },
                t => pass((t * share, t == threads - 1 ? Bytes - t * share : share)));
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        return 1 / best;
    }

    private static float Sum(byte* start, long length)
    {
        // Four independent accumulators, so the adds do not wait on each other and the loads set the pace.
        Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
        float* p = (float*)start;
        long n = length / sizeof(float);
        for (long i = 0; i + 32 <= n; i += 32)
        {
            s0 += Vector256.Load(p + i);
            s1 += Vector256.Load(p + i + 8);
            s2 += Vector256.Load(p + i + 16);
            s3 += Vector256.Load(p + i + 24);
        }
        return Vector256.Sum(s0 + s1 + s2 + s3);
    }
}
