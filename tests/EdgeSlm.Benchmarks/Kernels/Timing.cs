using System.Diagnostics;

namespace EdgeSlm.Benchmarks.Kernels;

/// <summary>Median and minimum of single-call timings, in microseconds.</summary>
internal readonly record struct Timing(double MedianMicroseconds, double MinMicroseconds, int Samples, int GarbageCollections);

/// <summary>
/// Times one call at a time with <see cref="Stopwatch"/> after a warm-up (tier-1 JIT, caches, worker threads awake),
/// until both a time budget and a minimum sample count are reached. The caller preallocates everything the call
/// touches; the number of collections during timing is reported so an allocating call shows up.
/// </summary>
internal sealed class CallTimer(TimeSpan budget, int minSamples)
{
    private readonly long[] _ticks = new long[200_000];

    public Timing Measure(Action call)
    {
        WarmUp(call, budget / 4);

        int collections = GC.CollectionCount(0);
        long end = Stopwatch.GetTimestamp() + Ticks(budget);
        int count = 0;
        while (count < _ticks.Length && (count < minSamples || Stopwatch.GetTimestamp() < end))
        {
            long start = Stopwatch.GetTimestamp();
            call();
            _ticks[count++] = Stopwatch.GetTimestamp() - start;
        }
        collections = GC.CollectionCount(0) - collections;

        Span<long> samples = _ticks.AsSpan(0, count);
        samples.Sort();
        double median = count % 2 == 1 ? samples[count / 2] : (samples[count / 2 - 1] + samples[count / 2]) / 2.0;
        return new Timing(Microseconds(median), Microseconds(samples[0]), count, collections);
    }

    /// <summary>Calls at least 3 times and for <paramref name="duration"/>.</summary>
    public static void WarmUp(Action call, TimeSpan duration)
    {
        long end = Stopwatch.GetTimestamp() + Ticks(duration);
        for (int i = 0; i < 3 || Stopwatch.GetTimestamp() < end; i++)
        {
            call();
        }
    }

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    private static double Microseconds(double ticks) => ticks * 1e6 / Stopwatch.Frequency;
}
