using System.Diagnostics;
using System.Globalization;

namespace EdgeSlm.Models.Bert;

/// <summary>One timed encoder pass: <see cref="Tokens"/> tokens on <see cref="Threads"/> threads.</summary>
public readonly record struct ThreadTiming(int Tokens, int Threads, double Milliseconds);

/// <summary>From this many tokens in a pass on (up to the next step), this many threads.</summary>
public readonly record struct ThreadStep(int FromTokens, int Threads);

/// <summary>
/// How many threads an encoder pass uses, by the tokens in it. A pass of one short utterance is a few hundred
/// microseconds of small products, and waking a second thread for each of its 36 products can cost more than it
/// saves; a training batch of hundreds of tokens splits well. <see cref="Measure"/> times the encoder on this
/// machine and <see cref="Choose"/> keeps, per length, the fewest threads that more threads do not clearly beat.
/// </summary>
public sealed class EncoderThreadPlan
{
    /// <summary>
    /// More threads are chosen only when they take at least this fraction less time than fewer: a smaller gain is
    /// within the run-to-run spread of such timings and not worth keeping another core busy for.
    /// </summary>
    public const double RequiredGain = 0.05;

    /// <summary>The lengths <see cref="Measure"/> times by default: single utterances (5 to 20 tokens) up to a small batch.</summary>
    public static readonly int[] DefaultLengths = [6, 12, 24, 48, 96];

    private readonly ThreadStep[] _steps;

    private EncoderThreadPlan(ThreadStep[] steps, IReadOnlyList<ThreadTiming> timings)
    {
        _steps = steps;
        Timings = timings;
    }

    /// <summary>The steps, ascending in <see cref="ThreadStep.FromTokens"/>; the first starts at 0.</summary>
    public IReadOnlyList<ThreadStep> Steps => _steps;

    /// <summary>The medians the plan was chosen from (one per length and thread count); empty for a fixed plan.</summary>
    public IReadOnlyList<ThreadTiming> Timings { get; }

    public bool IsMeasured => Timings.Count > 0;

    /// <summary>The same thread count for every pass (a setting, or a single-thread encoder).</summary>
    public static EncoderThreadPlan Fixed(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        return new EncoderThreadPlan([new ThreadStep(0, threads)], []);
    }

    /// <summary>Threads for a pass of <paramref name="tokens"/> tokens.</summary>
    public int ThreadsFor(int tokens)
    {
        int threads = _steps[0].Threads;
        foreach (ThreadStep step in _steps)
        {
            if (step.FromTokens > tokens) break;
            threads = step.Threads;
        }
        return threads;
    }

    /// <summary>
    /// The plan for <paramref name="timings"/> (any number of samples per length and thread count; each cell's
    /// median counts). Per length, a thread count replaces a smaller one only if its median is at least
    /// <see cref="RequiredGain"/> below the best so far. Then a length keeps no more threads than any longer
    /// length chose, so a split starts at one length and holds from there on: a short length that a noisy sample
    /// favoured does not get threads that longer ones do without. Below the shortest length measured, its choice holds.
    /// </summary>
    public static EncoderThreadPlan Choose(IReadOnlyList<ThreadTiming> timings)
    {
        ArgumentNullException.ThrowIfNull(timings);
        if (timings.Count == 0)
        {
            throw new ArgumentException("no timings to choose from", nameof(timings));
        }
        foreach (ThreadTiming t in timings)
        {
            if (t.Tokens < 1 || t.Threads < 1 || !(t.Milliseconds >= 0) || double.IsInfinity(t.Milliseconds))
            {
                throw new ArgumentException($"timing {t} is not a pass of at least 1 token on at least 1 thread taking a finite time", nameof(timings));
            }
        }
        ThreadTiming[] medians = timings
            .GroupBy(t => (t.Tokens, t.Threads))
            .Select(g => new ThreadTiming(g.Key.Tokens, g.Key.Threads, Median(g.Select(t => t.Milliseconds))))
            .OrderBy(t => t.Tokens).ThenBy(t => t.Threads)
            .ToArray();
        int[] lengths = medians.Select(t => t.Tokens).Distinct().ToArray();
        var choice = new int[lengths.Length];
        for (int i = 0; i < lengths.Length; i++)
        {
            double best = double.PositiveInfinity;
            foreach (ThreadTiming t in medians.Where(t => t.Tokens == lengths[i]))
            {
                if (best == double.PositiveInfinity || t.Milliseconds <= best * (1 - RequiredGain))
                {
                    best = t.Milliseconds;
                    choice[i] = t.Threads;
                }
            }
        }
        for (int i = lengths.Length - 2; i >= 0; i--)
        {
            choice[i] = Math.Min(choice[i], choice[i + 1]);
        }
        var steps = new List<ThreadStep> { new(0, choice[0]) };
        for (int i = 1; i < lengths.Length; i++)
        {
            if (choice[i] != steps[^1].Threads) steps.Add(new ThreadStep(lengths[i], choice[i]));
        }
        return new EncoderThreadPlan([.. steps], medians);
    }

    /// <summary>
    /// Times <paramref name="encoder"/> on one sentence of each of <paramref name="lengths"/> tokens at 1, 2, 4, ...
    /// and <see cref="BertEncoder.Threads"/> threads (after one warm-up pass each, <paramref name="rounds"/> rounds,
    /// the thread counts in a rotating order so that a disturbance hits them alike), and chooses. The encoder's own
    /// plan is restored afterwards. Which token ids the sentences hold does not change the work.
    /// </summary>
    public static EncoderThreadPlan Measure(BertEncoder encoder, IReadOnlyList<int>? lengths = null, int rounds = 5)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentOutOfRangeException.ThrowIfLessThan(rounds, 1);
        lengths ??= DefaultLengths;
        int context = encoder.Config.ContextLength;
        int[] sizes = lengths.Select(l => Math.Clamp(l, 2, context)).Distinct().Order().ToArray();
        var counts = new List<int>();
        for (int t = 1; t < encoder.Threads; t *= 2) counts.Add(t);
        counts.Add(encoder.Threads);
        if (counts.Count == 1)
        {
            return Fixed(1);
        }

        var ids = new int[sizes[^1]];
        for (int i = 0; i < ids.Length; i++) ids[i] = (1000 + 37 * i) % encoder.Config.VocabularySize;
        var embedding = new float[encoder.Config.HiddenSize];
        var timings = new List<ThreadTiming>();
        EncoderThreadPlan saved = encoder.ThreadPlan;
        try
        {
            for (int round = -1; round < rounds; round++)
            {
                foreach (int length in sizes)
                {
                    int[] one = [length];
                    for (int k = 0; k < counts.Count; k++)
                    {
                        int threads = counts[(k + Math.Max(round, 0)) % counts.Count];
                        encoder.ThreadPlan = Fixed(threads);
                        long start = Stopwatch.GetTimestamp();
                        encoder.Encode(ids.AsSpan(0, length), one, embedding);
                        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                        if (round >= 0) timings.Add(new ThreadTiming(length, threads, ms));
                    }
                }
            }
        }
        finally
        {
            encoder.ThreadPlan = saved;
        }
        return Choose(timings);
    }

    /// <summary>For example <c>1 thread below 24 tokens, 2 from 24 (measured)</c>.</summary>
    public override string ToString()
    {
        static string Threads(int n) => n == 1 ? "1 thread" : $"{n} threads";
        string how = IsMeasured ? " (measured)" : "";
        if (_steps.Length == 1)
        {
            return $"{Threads(_steps[0].Threads)} for every input{how}";
        }
        var parts = new List<string> { $"{Threads(_steps[0].Threads)} below {_steps[1].FromTokens} tokens" };
        for (int i = 1; i < _steps.Length; i++)
        {
            string upTo = i + 1 < _steps.Length ? $" up to {_steps[i + 1].FromTokens - 1}" : "";
            parts.Add($"{_steps[i].Threads} from {_steps[i].FromTokens}{upTo}");
        }
        return string.Join(", ", parts) + how;
    }

    /// <summary>The medians, e.g. <c>6 tokens: 0.31 ms on 1, 0.42 on 2; ...</c>.</summary>
    public string DescribeTimings() => string.Join("; ", Timings.GroupBy(t => t.Tokens).Select(g =>
        $"{g.Key} tokens: " + string.Join(", ", g.Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Milliseconds:F3} ms on {t.Threads}")))));

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = values.Order().ToArray();
        int middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }
}
