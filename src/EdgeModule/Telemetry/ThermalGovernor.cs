namespace EdgeSlm.EdgeModule.Telemetry;

/// <summary>
/// Decides how many inference threads to run from CPU temperature readings: one thread fewer per reading
/// above <see cref="LimitC"/> (never below 1), one more per reading below <see cref="ResumeBelowC"/>
/// (never above <see cref="MaxThreads"/>), no change in between. Pure logic: whoever reads the sensor
/// calls <see cref="Observe"/>, and the inference loop reads <see cref="Threads"/>.
/// </summary>
public sealed class ThermalGovernor
{
    private readonly Lock _gate = new();
    private int _threads;

    public ThermalGovernor(double limitC, double hysteresisC, int maxThreads)
    {
        if (!double.IsFinite(limitC))
        {
            throw new ArgumentOutOfRangeException(nameof(limitC), limitC, "The temperature limit must be a finite number of °C.");
        }

        if (!(hysteresisC > 0) || !double.IsFinite(hysteresisC))
        {
            throw new ArgumentOutOfRangeException(nameof(hysteresisC), hysteresisC, "The hysteresis must be a positive number of °C.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(maxThreads, 1);
        LimitC = limitC;
        HysteresisC = hysteresisC;
        MaxThreads = maxThreads;
        _threads = maxThreads;
    }

    public double LimitC { get; }

    public double HysteresisC { get; }

    /// <summary>Below this temperature threads are given back.</summary>
    public double ResumeBelowC => LimitC - HysteresisC;

    public int MaxThreads { get; }

    /// <summary>The number of inference threads to run now.</summary>
    public int Threads => Volatile.Read(ref _threads);

    /// <summary>Takes one CPU temperature reading into account and returns the thread count it leads to.</summary>
    public int Observe(double temperatureC)
    {
        if (!double.IsFinite(temperatureC))
        {
            throw new ArgumentOutOfRangeException(nameof(temperatureC), temperatureC, "A temperature reading must be a finite number of °C.");
        }

        lock (_gate)
        {
            int threads = _threads;
            if (temperatureC > LimitC)
            {
                threads = Math.Max(1, threads - 1);
            }
            else if (temperatureC < ResumeBelowC)
            {
                threads = Math.Min(MaxThreads, threads + 1);
            }

            Volatile.Write(ref _threads, threads);
            return threads;
        }
    }
}
