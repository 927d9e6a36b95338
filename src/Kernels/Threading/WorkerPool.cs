using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace EdgeSlm.Kernels.Threading;

/// <summary>
/// A fixed set of threads that run one job at a time. A job is a number of chunks; every participant (the
/// calling thread and the workers it wakes) claims the next unclaimed chunk until none is left, so a worker that
/// the scheduler has not run yet holds nothing back: the caller runs its share, and then waits only for chunks
/// already started. Made once and reused: running a job creates no thread and allocates nothing. Workers spin
/// briefly between jobs, because the matrix multiplications of one forward pass come microseconds apart, then
/// park on an event so an idle module costs no CPU.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    /// <summary>The most chunks one job may have (the chunk counter is 16 bits wide).</summary>
    public const int MaxChunks = ushort.MaxValue;

    // Between jobs a worker busy-waits this long, then parks. A forward pass has gaps of tens to hundreds of
    // microseconds between its products (attention, norms, GELU), and a worker parked in one joins the next
    // product only after an event signal and a wake-up, so the spin must outlast those gaps (docs/kernels.md,
    // "Measurements behind the code"). It does not yield in between: on an oversubscribed machine a yield hands
    // the core to another process for a whole time slice, after which the caller has usually done the job alone.
    // The clock, not an iteration count, bounds the spin, so an idle module costs no CPU from 1 ms after its last
    // product.
    private static readonly long WorkerSpinTicks = Stopwatch.Frequency / 1000;

    // Once the caller finds nothing left to claim it spins for chunks still running on workers for about two of
    // its own chunk times (a worker that is running finishes within one), then blocks: a worker still busy after
    // that has been descheduled, and spinning on would only keep it (or another process) from this core.
    private static readonly long CallerSpinMinTicks = Stopwatch.Frequency * 5 / 1_000_000;
    private static readonly long CallerSpinMaxTicks = Stopwatch.Frequency * 200 / 1_000_000;
    private static readonly long CallerSpinDefaultTicks = Stopwatch.Frequency * 20 / 1_000_000;

    // Workers' tickets are this many longs apart (128 bytes) so a worker spinning on its own does not share a
    // cache line with another's.
    private const int TicketStride = 16;

    private readonly Thread[] _threads;
    private readonly long[] _tickets;
    private readonly ManualResetEventSlim[] _wake;
    private readonly int[] _parked;
    private readonly ManualResetEventSlim _done;

    private Action<int>? _job;
    private uint _generation;
    // The claim word: job generation (bits 32-63), chunk count (16-31), next unclaimed chunk (0-15). A claim is a
    // compare-and-swap of the whole word, so a worker that wakes for a job already finished can never take a
    // chunk of the next one (an Interlocked.Increment of a bare counter could).
    private long _claim;
    private int _completed;
    private int _callerWaiting;
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
        _tickets = new long[(threads - 1) * TicketStride];
        _wake = new ManualResetEventSlim[threads - 1];
        _parked = new int[threads - 1];
        // Events make their lock object on the first wait that blocks: have that happen here, not inside the
        // first job that finds a worker parked or has the caller block.
        _done = new ManualResetEventSlim(false, spinCount: 0);
        _done.Wait(1);
        for (int i = 0; i < _threads.Length; i++)
        {
            int index = i;
            _wake[i] = new ManualResetEventSlim(false, spinCount: 0);
            _wake[i].Wait(1);
            _threads[i] = new Thread(() => WorkerLoop(index)) { IsBackground = true, Name = $"edgeslm-kernel-{i + 1}" };
            _threads[i].Start();
        }
    }

    /// <summary>Threads of the pool, the caller's included.</summary>
    public int Threads { get; }

    /// <summary>
    /// Runs <paramref name="job"/>(chunk) once for every chunk = 0 .. <paramref name="chunks"/> - 1, on the
    /// calling thread and up to <paramref name="threads"/> - 1 workers, and returns when all chunks are done. Which
    /// thread runs which chunk, and in what order, is not fixed. If chunks throw, every other chunk still runs and
    /// the first exception is rethrown here. One job at a time: not for concurrent callers.
    /// </summary>
    public void Run(Action<int> job, int chunks, int threads)
    {
        ArgumentNullException.ThrowIfNull(job);
        ObjectDisposedException.ThrowIf(_stopping, this);
        if ((uint)chunks > MaxChunks)
        {
            throw new ArgumentOutOfRangeException(nameof(chunks), chunks, $"A job has 0 to {MaxChunks} chunks.");
        }
        int helpers = Math.Min(Math.Clamp(threads, 1, Threads), chunks) - 1;
        if (helpers <= 0)
        {
            RunAlone(job, chunks);
            return;
        }

        uint generation = ++_generation;
        _job = job;
        _failure = null;
        _completed = 0;
        Volatile.Write(ref _claim, (long)generation << 32 | (long)chunks << 16);
        for (int i = 0; i < helpers; i++)
        {
            Volatile.Write(ref _tickets[i * TicketStride], generation);
            if (Interlocked.Exchange(ref _parked[i], 0) == 1)
            {
                _wake[i].Set();
            }
        }

        long started = Stopwatch.GetTimestamp();
        int ran = RunChunks(generation, caller: true);
        long spin = ran == 0 ? CallerSpinDefaultTicks : Math.Clamp(2 * (Stopwatch.GetTimestamp() - started) / ran, CallerSpinMinTicks, CallerSpinMaxTicks);
        WaitForRunningChunks(chunks, spin);
        _job = null;
        ExceptionDispatchInfo? failure = _failure;
        _failure = null;
        failure?.Throw();
    }

    private static void RunAlone(Action<int> job, int chunks)
    {
        ExceptionDispatchInfo? failure = null;
        for (int chunk = 0; chunk < chunks; chunk++)
        {
            try
            {
                job(chunk);
            }
            catch (Exception e)
            {
                failure ??= ExceptionDispatchInfo.Capture(e);
            }
        }
        failure?.Throw();
    }

    /// <summary>Claims and runs chunks of job <paramref name="generation"/> until none is left; returns how many it ran.</summary>
    private int RunChunks(uint generation, bool caller)
    {
        int ran = 0;
        long word = Volatile.Read(ref _claim);
        while (true)
        {
            if ((uint)(word >> 32) != generation)
            {
                return ran;
            }
            int chunks = (int)(word >> 16) & 0xFFFF;
            int chunk = (int)word & 0xFFFF;
            if (chunk >= chunks)
            {
                return ran;
            }
            long seen = Interlocked.CompareExchange(ref _claim, word + 1, word);
            if (seen != word)
            {
                word = seen;
                continue;
            }

            // The job cannot finish, and so cannot be replaced, while this chunk is claimed and not done.
            try
            {
                Action<int>? job = _job;
                Debug.Assert(job is not null);
                job(chunk);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(e), null);
            }
            ran++;
            if (Interlocked.Increment(ref _completed) == chunks && !caller && Volatile.Read(ref _callerWaiting) != 0)
            {
                _done.Set();
            }
            word = Volatile.Read(ref _claim);
        }
    }

    private void WaitForRunningChunks(int chunks, long spinTicks)
    {
        long deadline = Stopwatch.GetTimestamp() + spinTicks;
        while (Volatile.Read(ref _completed) != chunks)
        {
            if (Stopwatch.GetTimestamp() < deadline)
            {
                Thread.SpinWait(4);
                continue;
            }
            // The worker finishing the last chunk sets the event if it sees the flag; if it finished before the
            // flag was up, the check after raising it sees that. A set left over from an earlier job only costs
            // one more turn of this loop.
            _done.Reset();
            Interlocked.Exchange(ref _callerWaiting, 1);
            if (Volatile.Read(ref _completed) != chunks)
            {
                _done.Wait();
            }
        }
        Volatile.Write(ref _callerWaiting, 0);
    }

    private void WorkerLoop(int index)
    {
        long seen = 0;
        while (true)
        {
            long ticket = WaitForTicket(index, seen);
            if (_stopping)
            {
                return;
            }
            seen = ticket;
            // A worker that comes late finds every chunk claimed (or a newer job) and goes back to waiting.
            RunChunks((uint)ticket, caller: false);
        }
    }

    private long WaitForTicket(int index, long seen)
    {
        ref long ticket = ref _tickets[index * TicketStride];
        long deadline = Stopwatch.GetTimestamp() + WorkerSpinTicks;
        do
        {
            long current = Volatile.Read(ref ticket);
            if (current != seen || _stopping)
            {
                return current;
            }
            Thread.SpinWait(20);
        }
        while (Stopwatch.GetTimestamp() < deadline);

        while (true)
        {
            _wake[index].Reset();
            Interlocked.Exchange(ref _parked[index], 1);
            long current = Volatile.Read(ref ticket);
            if (current != seen || _stopping)
            {
                Interlocked.Exchange(ref _parked[index], 0);
                return current;
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
        _done.Dispose();
    }
}
