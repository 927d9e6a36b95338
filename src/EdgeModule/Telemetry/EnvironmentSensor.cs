using System.Device.I2c;

namespace EdgeSlm.EdgeModule.Telemetry;

/// <summary>
/// An environment sensor on the I2C bus. Subclasses take the <see cref="I2cDevice"/> in their constructor,
/// so tests hand them a simulated chip; <see cref="Open"/> creates the real one from the settings.
/// Each <see cref="Read"/> makes a fresh measurement; a failure comes back as a failed reading.
/// </summary>
public abstract class EnvironmentSensor : IDisposable
{
    private protected EnvironmentSensor(I2cDevice device) => Device = device;

    /// <summary>The name in telemetry: "bme280" or "sht3x".</summary>
    public abstract string Name { get; }

    private protected I2cDevice Device { get; }

    /// <summary>
    /// The configured sensor on /dev/i2c-<see cref="TelemetrySettings.I2cBus"/>, or null when none is
    /// configured. Only the bus is opened here: a chip that does not answer yet shows up in its readings.
    /// </summary>
    /// <exception cref="IOException">The I2C bus cannot be opened.</exception>
    public static EnvironmentSensor? Open(TelemetrySettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Sensor == EnvironmentSensorKind.None)
        {
            return null;
        }

        int address = settings.ResolveI2cAddress();
        I2cDevice device;
        try
        {
            device = I2cDevice.Create(new I2cConnectionSettings(settings.I2cBus, address));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            throw new IOException(
                $"{TelemetrySettings.SectionName}:{nameof(TelemetrySettings.I2cBus)} {settings.I2cBus}: cannot open the I2C bus for the {settings.Sensor} at 0x{address:X2}: {e.Message}", e);
        }

        return settings.Sensor switch
        {
            EnvironmentSensorKind.Bme280 => new Bme280Sensor(device),
            EnvironmentSensorKind.Sht3x => new Sht3xSensor(device),
            _ => throw new ArgumentOutOfRangeException(nameof(settings), settings.Sensor, "Unknown environment sensor."),
        };
    }

    public abstract EnvironmentReading Read();

    /// <summary>Closes the device. The bindings hold nothing else (their own Dispose only disposes the device).</summary>
    public void Dispose() => Device.Dispose();

    private protected EnvironmentReading Failure(Exception e) =>
        EnvironmentReading.Failure(Name, $"I2C bus {Device.ConnectionSettings.BusId} address 0x{Device.ConnectionSettings.DeviceAddress:X2}: {e.Message}");

    /// <summary>What a bus or chip failure throws: the i2c-dev driver's NAK (IOException), no permission on
    /// /dev/i2c-N, or a binding's complaint about what the chip answered.</summary>
    private protected static bool IsDeviceFailure(Exception e) =>
        e is IOException or UnauthorizedAccessException or TimeoutException or InvalidOperationException;
}

/// <summary>
/// One environment measurement, or the reason there is none (<see cref="Error"/>): a failed reading carries
/// no values, so a consumer cannot mistake an old measurement for a new one.
/// </summary>
public sealed record EnvironmentReading
{
    private EnvironmentReading(string sensor, double? temperatureC, double? humidityPercent, double? pressureHpa, string? error)
    {
        Sensor = sensor;
        TemperatureC = temperatureC;
        HumidityPercent = humidityPercent;
        PressureHpa = pressureHpa;
        Error = error;
    }

    public string Sensor { get; }

    public double? TemperatureC { get; }

    public double? HumidityPercent { get; }

    /// <summary>Null for sensors that do not measure pressure (SHT3x).</summary>
    public double? PressureHpa { get; }

    public string? Error { get; }

    public bool Succeeded => Error is null;

    public static EnvironmentReading Success(string sensor, double temperatureC, double humidityPercent, double? pressureHpa) =>
        new(sensor, temperatureC, humidityPercent, pressureHpa, null);

    public static EnvironmentReading Failure(string sensor, string error) => new(sensor, null, null, null, error);
}
