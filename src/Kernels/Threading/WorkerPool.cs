using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace EdgeSlm.Kernels.Threading;

/// <summary>
/// A fixed set of threads that run one job at a time, split into as many parts as the pool has threads
/// (the calling thread runs part 0). Made once and reused: running a job creates no thread and allocates nothing.
/// Workers spin briefly between jobs, because the matrix multiplications of one forward pass come microseconds
/// apart, then park on an event so an idle module costs no CPU.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    // Between jobs a worker first busy-waits (about 50 µs: the next matrix multiplication of a forward pass is
    // usually that close), then yields its core a while, then parks. Yielding at once lets the scheduler put
    // the worker on the caller's core, where it runs only after the caller's own part.
    private const int BusyIterations = 2000;
    private const int YieldIterations = 200;

    private readonly Thread[] _threads;
    private readonly ManualResetEventSlim[] _wake;
    private readonly int[] _parked;
    private Action<int>? _job;
    private long _generation;
    private int _pending;
    private volatile bool _stopping;
    private ExceptionDispatchInfo? _failure;

    public WorkerPool(int threads)
    {
        if (threads < 1 || threads > 64)
        {
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "A worker pool needs 1 to 64 threads.");
        }
        Threads = threads;
        _threads = new Thread[threads - 1];
        _wake = new ManualResetEventSlim[threads - 1];
        _parked = new int[threads - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int part = i + 1;
            _wake[i] = new ManualResetEventSlim(false, spinCount: 0);
            // The event makes its lock object on the first wait that blocks: have that happen here, not
            // inside the first job that finds the worker parked.
            _wake[i].Wait(1);
            _threads[i] = new Thread(() => WorkerLoop(part)) { IsBackground = true, Name = $"edgeslm-kernel-{part}" };
            _threads[i].Start();
        }
    }

    public int Threads { get; }

    /// <summary>Runs <paramref name="job"/>(part) for part = 0 .. Threads - 1 and returns when all parts are done.</summary>
    public void Run(Action<int> job)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        if (_threads.Length == 0)
        {
            job(0);
            return;
        }

        _job = job;
        _failure = null;
        Volatile.Write(ref _pending, _threads.Length);
        Interlocked.Increment(ref _generation);
        for (int i = 0; i < _threads.Length; i++)
        {
            if (Interlocked.Exchange(ref _parked[i], 0) == 1)
            {
                _wake[i].Set();
            }
        }

        try
        {
            job(0);
        }
        finally
        {
            SpinWait wait = default;
            while (Volatile.Read(ref _pending) != 0)
            {
                wait.SpinOnce(sleep1Threshold: -1);
            }
            _job = null;
        }
        _failure?.Throw();
    }

    private void WorkerLoop(int part)
    {
        int index = part - 1;
        long seen = 0;
        while (true)
        {
            long generation = WaitForJob(index, seen);
            if (_stopping)
            {
                return;
            }
            seen = generation;
            try
            {
                Action<int>? job = _job;
                Debug.Assert(job is not null);
                job(part);
            }
            catch (Exception e)
            {
                _failure ??= ExceptionDispatchInfo.Capture(e);
            }
            finally
            {
                Interlocked.Decrement(ref _pending);
            }
        }
    }

    private long WaitForJob(int index, long seen)
    {
        for (int i = 0; i < BusyIterations + YieldIterations; i++)
        {
            long generation = Volatile.Read(ref _generation);
            if (generation != seen || _stopping)
            {
                return generation;
            }
            if (i < BusyIterations)
            {
                Thread.SpinWait(20);
            }
            else
            {
                Thread.Yield();
            }
        }

        while (true)
        {
            _wake[index].Reset();
            Interlocked.Exchange(ref _parked[index], 1);
            long generation = Volatile.Read(ref _generation);
            if (generation != seen || _stopping)
            {
                Interlocked.Exchange(ref _parked[index], 0);
                return generation;
            }
            _wake[index].Wait();
        }
    }

    public void Dispose()
    {
        if (_stopping)
        {
            return;
        }
        _stopping = true;
        Interlocked.Increment(ref _generation);
        foreach (ManualResetEventSlim wake in _wake)
        {
            wake.Set();
        }
        foreach (Thread thread in _threads)
        {
            thread.Join();
        }
        foreach (ManualResetEventSlim wake in _wake)
        {
            wake.Dispose();
        }
    }
}
