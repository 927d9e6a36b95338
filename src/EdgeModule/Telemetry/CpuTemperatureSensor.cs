using Iot.Device.CpuTemperature;

namespace EdgeSlm.EdgeModule.Telemetry;

/// <summary>
/// The CPU temperature through <see cref="CpuTemperature"/> (on Linux, the kernel's thermal zone). Machines
/// without one, such as most virtual machines, give an unavailable reading, never a made-up value.
/// </summary>
public sealed class CpuTemperatureSensor : IDisposable
{
    private readonly CpuTemperature _cpuTemperature = new();

    public CpuTemperatureReading Read()
    {
        try
        {
            if (!_cpuTemperature.IsAvailable)
            {
                return CpuTemperatureReading.Unavailable("this machine has no CPU temperature sensor (no thermal zone)");
            }

            double celsius = _cpuTemperature.Temperature.DegreesCelsius;
            return double.IsFinite(celsius)
                ? CpuTemperatureReading.Available(celsius)
                : CpuTemperatureReading.Unavailable("the thermal zone gave no value");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return CpuTemperatureReading.Unavailable($"reading the thermal zone failed: {e.Message}");
        }
    }

    public void Dispose() => _cpuTemperature.Dispose();
}

/// <summary>A CPU temperature, or why there is none: exactly one of the two is set.</summary>
public readonly record struct CpuTemperatureReading
{
    private CpuTemperatureReading(double? temperatureC, string? error)
    {
        TemperatureC = temperatureC;
        Error = error;
    }

    public double? TemperatureC { get; }

    public string? Error { get; }

    public bool IsAvailable => TemperatureC.HasValue;

    public static CpuTemperatureReading Available(double temperatureC) => new(temperatureC, null);

    public static CpuTemperatureReading Unavailable(string error) => new(null, error);
}
