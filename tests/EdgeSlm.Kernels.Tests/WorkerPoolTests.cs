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

[Collection(AllocationCollection.Name)]
public sealed class WorkerPoolAllocationTests
{
    [Fact]
    public void Worker_threads_allocate_nothing_between_jobs_even_after_parking()
    {
        // Each part records its own thread's allocation counter at the start of every job: the difference
        // between two jobs on the same worker is what the pool's wait loop (spinning, yielding, parking on its
        // event) and the job allocated in between. Counted per thread, so no other thread can disturb it.
        const int threads = 3, jobs = 40;
        using var pool = new WorkerPool(threads);
        var counters = new long[jobs, threads];
        int job = 0;
        Action<int> record = part => counters[job, part] = GC.GetAllocatedBytesForCurrentThread();
        for (job = 0; job < jobs; job++)
        {
            pool.Run(record);
            if (job % 10 == 9)
            {
                Thread.Sleep(50); // long past the busy-wait and yield phases: the workers park
            }
        }
        // Job 0 is the warm-up; every later job must start where the previous one left each worker.
        for (int j = 2; j < jobs; j++)
        {
            for (int part = 1; part < threads; part++)
            {
                Assert.True(counters[j, part] == counters[j - 1, part], $"worker {part} allocated {counters[j, part] - counters[j - 1, part]} bytes before job {j}");
            }
        }
    }
}
