using System.Diagnostics;

namespace EdgeSlm.EdgeModule.Telemetry;

/// <summary>
/// Counters the inference loop updates from any thread: completed and failed inferences, a queue depth
/// gauge, and the latencies of the last <see cref="LatencyWindow"/> completed inferences in a ring buffer,
/// from which <see cref="Snapshot"/> takes p50 and p99. Recording allocates nothing and takes no lock.
/// </summary>
public sealed class InferenceStatistics
{
    public const int DefaultLatencyWindow = 1024;

    private readonly long[] _latencyTicks; // (window) TimeSpan ticks; slot = (completed - 1) % window
    private readonly long[] _sorted; // (window) scratch for Snapshot, guarded by _snapshotGate
    private readonly Lock _snapshotGate = new();
    private long _completed;
    private long _failed;
    private int _queueDepth;

    public InferenceStatistics(int latencyWindow = DefaultLatencyWindow)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(latencyWindow, 1);
        _latencyTicks = new long[latencyWindow];
        _sorted = new long[latencyWindow];
    }

    public int LatencyWindow => _latencyTicks.Length;

    /// <summary>An inference finished and produced a result after <paramref name="latency"/>.</summary>
    public void RecordCompleted(TimeSpan latency)
    {
        if (latency < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(latency), latency, "A latency cannot be negative.");
        }

        long sequence = Interlocked.Increment(ref _completed);
        Volatile.Write(ref _latencyTicks[(sequence - 1) % _latencyTicks.Length], latency.Ticks);
    }

    /// <summary>An inference failed; its latency is not recorded.</summary>
    public void RecordFailed() => Interlocked.Increment(ref _failed);

    public void IncrementQueueDepth() => Interlocked.Increment(ref _queueDepth);

    public void DecrementQueueDepth() => Interlocked.Decrement(ref _queueDepth);

    public void SetQueueDepth(int depth)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(depth);
        Volatile.Write(ref _queueDepth, depth);
    }

    /// <summary>
    /// Counts and nearest-rank percentiles over the latency window. While other threads are recording, a
    /// slot may be read just before its writer stores it (the window is then off by one latency); counts are
    /// always exact.
    /// </summary>
    public InferenceStatisticsSnapshot Snapshot()
    {
        long completed = Volatile.Read(ref _completed);
        long failed = Volatile.Read(ref _failed);
        int queueDepth = Volatile.Read(ref _queueDepth);
        int n = (int)Math.Min(completed, _latencyTicks.Length);
        if (n == 0)
        {
            return new InferenceStatisticsSnapshot(completed, failed, null, null, queueDepth);
        }

        lock (_snapshotGate)
        {
            Span<long> sorted = _sorted.AsSpan(0, n);
            for (int i = 0; i < n; i++)
            {
                sorted[i] = Volatile.Read(ref _latencyTicks[i]);
            }

            sorted.Sort();
            return new InferenceStatisticsSnapshot(completed, failed, Percentile(sorted, 50), Percentile(sorted, 99), queueDepth);
        }
    }

    /// <summary>Nearest rank: the smallest value with at least <paramref name="percent"/>% of values at or below it.</summary>
    private static double Percentile(ReadOnlySpan<long> sorted, int percent)
    {
        Debug.Assert(sorted.Length > 0 && percent is > 0 and <= 100);
        // ceil(percent * n / 100) in integers: 0.99 * 100 in doubles is 99.00000000000001, whose ceiling is 100.
        int rank = (percent * sorted.Length + 99) / 100;
        return TimeSpan.FromTicks(sorted[rank - 1]).TotalMilliseconds;
    }
}

/// <summary>
/// <see cref="InferenceStatistics"/> at one moment. Count is completed inferences, Errors failed ones
/// (counted since start); the percentiles cover the latency window and are null before the first inference.
/// </summary>
public readonly record struct InferenceStatisticsSnapshot(long Count, long Errors, double? P50Ms, double? P99Ms, int QueueDepth);
