using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.MatMul;
using EdgeSlm.Kernels.Tests.MatMul;
using EdgeSlm.Kernels.Threading;
using EdgeSlm.Testing;

namespace EdgeSlm.Kernels.Tests.Threading;

public class WorkerPoolTests
{
    // Long enough for any thread on a loaded 2-core machine to be scheduled; only reached if the pool is broken.
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(8)]
    public void Every_chunk_runs_exactly_once_for_many_job_sizes_and_thread_counts(int threads)
    {
        using var pool = new WorkerPool(threads);
        int[] sizes = [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 32, 33, 100, 257, 1000];
        var counts = new int[sizes.Max()];
        int chunks = 0;
        Action<int> job = chunk =>
        {
            Assert.InRange(chunk, 0, chunks - 1);
            Interlocked.Increment(ref counts[chunk]);
        };
        for (int round = 0; round < 300; round++)
        {
            chunks = sizes[round % sizes.Length];
            int active = 1 + round / sizes.Length % threads;
            Array.Clear(counts);
            pool.Run(job, chunks, active);
            for (int c = 0; c < counts.Length; c++)
            {
                Assert.True(counts[c] == (c < chunks ? 1 : 0), $"{threads} threads ({active} active), {chunks} chunks: chunk {c} ran {counts[c]} times");
            }
        }
    }

    [Fact]
    public void With_one_active_thread_the_caller_runs_every_chunk_in_order()
    {
        using var pool = new WorkerPool(4);
        int caller = Environment.CurrentManagedThreadId;
        var order = new List<int>();
        pool.Run(chunk =>
        {
            Assert.Equal(caller, Environment.CurrentManagedThreadId);
            order.Add(chunk);
        }, chunks: 12, threads: 1);
        Assert.Equal(Enumerable.Range(0, 12), order);
    }

    [Fact]
    public void Workers_wake_up_after_parking()
    {
        using var pool = new WorkerPool(2);
        int sum = 0;
        Action<int> job = chunk => Interlocked.Add(ref sum, chunk + 1);
        pool.Run(job, 2, 2);
        Thread.Sleep(200); // long past the spin phase: the worker is parked on its event
        pool.Run(job, 2, 2);
        Assert.Equal(6, sum);
    }

    [Fact]
    public void Workers_take_chunks_when_the_caller_is_busy()
    {
        // Workers hold their first chunk until the caller has one; the caller's chunk then waits until every other
        // chunk is done: only workers can have run them.
        using var pool = new WorkerPool(3);
        int caller = Environment.CurrentManagedThreadId;
        const int chunks = 12;
        var ranOn = new int[chunks];
        int done = 0;
        bool callerStarted = false, othersFinished = false;
        pool.Run(chunk =>
        {
            ranOn[chunk] = Environment.CurrentManagedThreadId;
            if (Environment.CurrentManagedThreadId == caller)
            {
                Volatile.Write(ref callerStarted, true);
                othersFinished = SpinWait.SpinUntil(() => Volatile.Read(ref done) == chunks - 1, Patience);
            }
            else
            {
                SpinWait.SpinUntil(() => Volatile.Read(ref callerStarted), Patience);
            }
            Interlocked.Increment(ref done);
        }, chunks, threads: 3);
        Assert.True(othersFinished, "the workers did not finish the chunks the caller left");
        Assert.Single(ranOn, id => id == caller);
        Assert.All(ranOn, id => Assert.NotEqual(0, id));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void A_stalled_worker_holds_back_only_its_own_chunk(int threads)
    {
        // The first chunk a worker claims blocks until every other chunk is done: the caller (and any other
        // worker) must have run them all meanwhile instead of waiting for the stalled one.
        using var pool = new WorkerPool(threads);
        int caller = Environment.CurrentManagedThreadId;
        const int chunks = 40;
        var ranOn = new int[chunks];
        int done = 0, stalled = -1;
        bool othersFinished = false;
        pool.Run(chunk =>
        {
            int me = Environment.CurrentManagedThreadId;
            ranOn[chunk] = me;
            if (me == caller)
            {
                // Give a worker the chance to claim a chunk before the caller takes them all.
                SpinWait.SpinUntil(() => Volatile.Read(ref stalled) >= 0, Patience);
            }
            else if (Interlocked.CompareExchange(ref stalled, chunk, -1) == -1)
            {
                othersFinished = SpinWait.SpinUntil(() => Volatile.Read(ref done) == chunks - 1, Patience);
            }
            Interlocked.Increment(ref done);
        }, chunks, threads);
        Assert.True(stalled >= 0, "no worker claimed a chunk");
        Assert.True(othersFinished, "the other chunks were not finished while a worker stalled");
        Assert.Equal(chunks, done);
        Assert.NotEqual(caller, ranOn[stalled]);
        if (threads == 2)
        {
            // The only worker is stalled: the caller ran everything else.
            Assert.Equal(chunks - 1, ranOn.Count(id => id == caller));
        }
    }

    [Fact]
    public void Workers_woken_late_take_nothing_twice_and_rejoin_later_jobs()
    {
        // After parking, a worker's wake-up usually comes after the caller has run a small job alone: the worker
        // then finds that job's chunks gone (or a newer job it was not asked to help with) and must neither run
        // a chunk again nor miss the jobs after it.
        using var pool = new WorkerPool(2);
        int caller = Environment.CurrentManagedThreadId;
        var counts = new int[64];
        int ranOnWorker = 0;
        int chunks = 0;
        Action<int> job = chunk =>
        {
            Interlocked.Increment(ref counts[chunk]);
            if (Environment.CurrentManagedThreadId != caller) Interlocked.Increment(ref ranOnWorker);
        };
        for (int round = 0; round < 40; round++)
        {
            if (round % 10 == 0) Thread.Sleep(20); // the worker parks
            chunks = 1 + round % 4;
            Array.Clear(counts);
            pool.Run(job, chunks, 2);
            Assert.All(counts.Take(chunks), c => Assert.Equal(1, c));
            Assert.All(counts.Skip(chunks), c => Assert.Equal(0, c));
        }

        // The worker still serves jobs: each chunk the caller claims waits until the worker has taken one (the
        // worker may also take all eight before the caller claims any).
        int before = Volatile.Read(ref ranOnWorker);
        pool.Run(chunk =>
        {
            if (Environment.CurrentManagedThreadId == caller)
            {
                SpinWait.SpinUntil(() => Volatile.Read(ref ranOnWorker) > before, Patience);
            }
            else
            {
                Interlocked.Increment(ref ranOnWorker);
            }
        }, chunks: 8, threads: 2);
        Assert.True(Volatile.Read(ref ranOnWorker) > before, "the worker took no chunk");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void A_failing_chunk_surfaces_on_the_caller_after_every_other_chunk_ran_and_the_pool_goes_on(int threads)
    {
        using var pool = new WorkerPool(threads);
        foreach (int failing in new[] { 0, 5, 11 })
        {
            var counts = new int[12];
            var e = Assert.Throws<InvalidOperationException>(() => pool.Run(chunk =>
            {
                Interlocked.Increment(ref counts[chunk]);
                if (chunk == failing) throw new InvalidOperationException($"chunk {chunk} failed");
            }, chunks: 12, threads));
            Assert.Equal($"chunk {failing} failed", e.Message);
            Assert.All(counts, c => Assert.Equal(1, c));
        }
        int ran = 0;
        pool.Run(_ => Interlocked.Increment(ref ran), 3, threads);
        Assert.Equal(3, ran);
    }

    [Fact]
    public void When_several_chunks_fail_one_of_their_exceptions_surfaces()
    {
        using var pool = new WorkerPool(3);
        var e = Assert.Throws<InvalidOperationException>(() => pool.Run(chunk => throw new InvalidOperationException($"chunk {chunk}"), 30, 3));
        Assert.StartsWith("chunk ", e.Message);
    }

    [Fact]
    public void Arguments_are_validated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new WorkerPool(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WorkerPool(65));
        using var pool = new WorkerPool(2);
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Run(_ => { }, -1, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Run(_ => { }, WorkerPool.MaxChunks + 1, 2));
        Assert.Throws<ArgumentNullException>(() => pool.Run(null!, 1, 2));
    }

    [Fact]
    public void Dispose_joins_the_workers_even_when_parked_and_a_disposed_pool_refuses_jobs()
    {
        var pool = new WorkerPool(3);
        pool.Run(_ => { }, 6, 3);
        Thread.Sleep(50);
        pool.Dispose();
        pool.Dispose();
        Assert.Throws<ObjectDisposedException>(() => pool.Run(_ => { }, 6, 3));
    }

    public static TheoryData<KernelPath> Paths => new(KernelPaths.Supported);

    [Theory]
    [MemberData(nameof(Paths))]
    public void Matmul_chunks_are_whole_tiles_that_cover_every_row_once(KernelPath path)
    {
        int tileRows = QuantMatMulKernels.TileRows(path);
        foreach (int rows in new[] { 1, 3, 4, 5, 7, 8, 9, 13, 17, 31, 33, 64, 100, 383, 384, 1536 })
        {
            int rowTiles = (rows + tileRows - 1) / tileRows;
            foreach (int chunks in new[] { 1, 2, 3, 4, 5, 8, 12, 16, 256 }.Where(c => c <= rowTiles))
            {
                int next = 0;
                for (int chunk = 0; chunk < chunks; chunk++)
                {
                    (int first, int end) = QuantMatMul.ChunkRows(chunk, chunks, rowTiles, tileRows, rows);
                    Assert.True(first == next && first % tileRows == 0 && end > first && (end % tileRows == 0 || end == rows),
                        $"{rows} rows, {chunks} chunks of {tileRows}-row tiles: chunk {chunk} is [{first}, {end}) after {next}");
                    next = end;
                }
                Assert.Equal(rows, next);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void Matmul_results_are_bit_identical_for_every_thread_count(KernelPath path)
    {
        (int Rows, int K, int Tokens)[] shapes = [(1, 32, 1), (9, 64, 3), (13, 96, 5), (37, 160, 11), (100, 64, 2), (384, 384, 10), (1536, 384, 7), (389, 96, 1)];
        foreach (QuantType type in new[] { QuantType.Q4_0, QuantType.Q8_0 })
        {
            foreach ((int rows, int k, int tokens) in shapes)
            {
                using var matrix = QuantizedMatrix.Quantize(type, TestData.Mixed(rows * k, seed: rows + k), rows, k);
                float[] x = TestData.Gaussian(tokens * k, seed: tokens + k, scale: 3f);
                float[] expected = MatMulTests.Multiply(path, matrix, x, tokens, threads: 1);
                foreach (int threads in new[] { 2, 3, 4, 7 })
                {
                    using var matMul = new QuantMatMul(threads, path);
                    var actual = new float[tokens * rows];
                    for (int active = threads; active >= 1; active = active > 2 ? 2 : active - 1)
                    {
                        matMul.ActiveThreads = active;
                        actual.AsSpan().Clear();
                        matMul.Multiply(matrix, x, tokens, actual);
                        for (int i = 0; i < actual.Length; i++)
                        {
                            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                                $"{type} {rows}x{k}, {tokens} tokens, {active} of {threads} threads: y[{i / rows},{i % rows}] = {actual[i]}, 1 thread {expected[i]}");
                        }
                    }
                }
            }
        }
    }
}

[Collection(AllocationCollection.Name)]
public sealed class WorkerPoolAllocationTests
{
    [Fact]
    public void Worker_threads_allocate_nothing_between_jobs_even_after_parking()
    {
        // Each chunk records its thread's allocation counter at the start of every job: the difference between
        // two jobs on the same worker is what the pool's wait loop (spinning, parking on its event, claiming) and
        // the job allocated in between. Counted per thread, so no other thread can disturb it. Which thread runs
        // which chunk is not fixed, so the counters are kept per thread.
        const int threads = 3, jobs = 40, chunks = 9;
        using var pool = new WorkerPool(threads);
        var ids = new int[jobs * chunks];
        var counters = new long[jobs * chunks];
        int job = 0;
        Action<int> record = chunk =>
        {
            counters[job * chunks + chunk] = GC.GetAllocatedBytesForCurrentThread();
            ids[job * chunks + chunk] = Environment.CurrentManagedThreadId;
        };
        long callerBefore = 0;
        for (job = 0; job < jobs; job++)
        {
            if (job == 1) callerBefore = GC.GetAllocatedBytesForCurrentThread();
            pool.Run(record, chunks, threads);
            if (job % 10 == 9)
            {
                Thread.Sleep(50); // long past the busy-wait phase: the workers park
            }
        }
        long callerAllocated = GC.GetAllocatedBytesForCurrentThread() - callerBefore;

        // Job 0 is the warm-up; after it, every chunk must find its thread's counter where that thread's
        // previous chunk left it.
        var last = new Dictionary<int, long>();
        for (int i = chunks; i < jobs * chunks; i++)
        {
            if (last.TryGetValue(ids[i], out long previous))
            {
                Assert.True(counters[i] == previous, $"thread {ids[i]} allocated {counters[i] - previous} bytes before chunk {i % chunks} of job {i / chunks}");
            }
            last[ids[i]] = counters[i];
        }
        Assert.Equal(0, callerAllocated);
    }
}
