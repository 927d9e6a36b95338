using EdgeSlm.Kernels.Threading;

namespace EdgeSlm.Kernels.Tests;

public class WorkerPoolTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void Every_part_runs_exactly_once_per_job(int threads)
    {
        using var pool = new WorkerPool(threads);
        var counts = new int[threads];
        Action<int> job = part => Interlocked.Increment(ref counts[part]);
        for (int i = 0; i < 2000; i++)
        {
            pool.Run(job);
        }
        Assert.All(counts, c => Assert.Equal(2000, c));
    }

    [Fact]
    public void Workers_wake_up_after_parking()
    {
        using var pool = new WorkerPool(2);
        int sum = 0;
        Action<int> job = part => Interlocked.Add(ref sum, part + 1);
        pool.Run(job);
        Thread.Sleep(200); // long past the spin phase: the worker is parked on its event
        pool.Run(job);
        Assert.Equal(6, sum);
    }

    [Fact]
    public void A_failing_part_surfaces_on_the_caller_and_the_pool_goes_on()
    {
        using var pool = new WorkerPool(3);
        var e = Assert.Throws<InvalidOperationException>(() => pool.Run(part =>
        {
            if (part == 2) throw new InvalidOperationException("part 2 failed");
        }));
        Assert.Equal("part 2 failed", e.Message);
        int ran = 0;
        pool.Run(_ => Interlocked.Increment(ref ran));
        Assert.Equal(3, ran);
    }

    [Fact]
    public void Thread_count_is_validated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new WorkerPool(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WorkerPool(65));
    }
}
