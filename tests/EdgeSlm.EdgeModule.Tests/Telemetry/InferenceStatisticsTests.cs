using System.Text.Json;
using EdgeSlm.EdgeModule.Telemetry;

namespace EdgeSlm.EdgeModule.Tests.Telemetry;

public sealed class InferenceStatisticsTests
{
    [Fact]
    public void Statistics_percentiles_are_nearest_rank_over_known_latencies()
    {
        var statistics = new InferenceStatistics();
        var random = new Random(1234);
        foreach (int ms in Enumerable.Range(1, 100).OrderBy(_ => random.Next()))
        {
            statistics.RecordCompleted(TimeSpan.FromMilliseconds(ms));
        }

        statistics.RecordFailed();
        statistics.RecordFailed();
        statistics.SetQueueDepth(3);
        statistics.IncrementQueueDepth();
        statistics.DecrementQueueDepth();
        statistics.DecrementQueueDepth();

        InferenceStatisticsSnapshot snapshot = statistics.Snapshot();
        Assert.Equal(100, snapshot.Count);
        Assert.Equal(2, snapshot.Errors);
        Assert.Equal(50.0, snapshot.P50Ms);
        Assert.Equal(99.0, snapshot.P99Ms);
        Assert.Equal(2, snapshot.QueueDepth);
    }

    [Fact]
    public void Statistics_percentiles_cover_only_the_latency_window()
    {
        var statistics = new InferenceStatistics(latencyWindow: 10);
        for (int ms = 1; ms <= 25; ms++)
        {
            statistics.RecordCompleted(TimeSpan.FromMilliseconds(ms));
        }

        InferenceStatisticsSnapshot snapshot = statistics.Snapshot();

        // The window holds 16..25.
        Assert.Equal(25, snapshot.Count);
        Assert.Equal(20.0, snapshot.P50Ms);
        Assert.Equal(25.0, snapshot.P99Ms);
    }

    [Fact]
    public void Statistics_before_the_first_inference_have_no_percentiles()
    {
        InferenceStatisticsSnapshot snapshot = new InferenceStatistics().Snapshot();

        Assert.Equal(0, snapshot.Count);
        Assert.Null(snapshot.P50Ms);
        Assert.Null(snapshot.P99Ms);
    }

    [Fact]
    public void Statistics_recorded_from_several_threads_keep_exact_counts()
    {
        const int Threads = 4;
        const int PerThread = 50_000;
        var statistics = new InferenceStatistics();
        using var start = new Barrier(Threads);
        var workers = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (int i = 0; i < PerThread; i++)
            {
                statistics.RecordCompleted(TimeSpan.FromMicroseconds(100 + t));
                if (i % 10 == 0)
                {
                    statistics.RecordFailed();
                }

                statistics.IncrementQueueDepth();
                statistics.DecrementQueueDepth();
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());

        InferenceStatisticsSnapshot snapshot = statistics.Snapshot();
        Assert.Equal(Threads * PerThread, snapshot.Count);
        Assert.Equal(Threads * PerThread / 10, snapshot.Errors);
        Assert.Equal(0, snapshot.QueueDepth);
        Assert.InRange(snapshot.P50Ms!.Value, 0.100, 0.103);
    }

    [Fact]
    public void Recording_a_latency_allocates_nothing()
    {
        var statistics = new InferenceStatistics();
        statistics.RecordCompleted(TimeSpan.FromMilliseconds(1));

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++)
        {
            statistics.RecordCompleted(TimeSpan.FromTicks(i));
            statistics.IncrementQueueDepth();
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
