using System.Diagnostics;

namespace EdgeSlm.Intents.LanguageModel;

/// <summary>
/// When the language model must give up: a point on the monotonic clock, read between forward passes, and a
/// cancellation (the module stopping). The clock is read directly rather than through a timer's cancellation,
/// whose callback can come late on a busy machine, after the model has already run past the budget.
/// The default value sets no limit, so that an omitted deadline argument means "no deadline".
/// </summary>
public readonly record struct SlmDeadline(long Timestamp, CancellationToken Token)
{
    /// <summary>No time limit and no cancellation.</summary>
    public static SlmDeadline None => default;

    /// <summary>No time limit; only <paramref name="token"/> stops it.</summary>
    public static implicit operator SlmDeadline(CancellationToken token) => new(long.MaxValue, token);

    /// <summary><paramref name="budget"/> from now.</summary>
    public static SlmDeadline After(TimeSpan budget, CancellationToken token = default) =>
        new(Stopwatch.GetTimestamp() + (long)(budget.TotalSeconds * Stopwatch.Frequency), token);

    // Timestamp 0 is the default value, never a real deadline (the monotonic clock is far past it).
    public bool Passed => Token.IsCancellationRequested || (Timestamp != 0 && Stopwatch.GetTimestamp() >= Timestamp);
}
