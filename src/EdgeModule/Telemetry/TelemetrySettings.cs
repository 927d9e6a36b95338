namespace EdgeSlm.EdgeModule.Telemetry;

/// <summary>The environment sensor wired to the I2C bus, if any.</summary>
public enum EnvironmentSensorKind
{
    None,
    Bme280,
    Sht3x,
}

/// <summary>
/// The <c>Telemetry</c> configuration section. Settable properties with defaults, so that the configuration
/// binder can fill it; <see cref="Validate"/> is called at start-up.
/// </summary>
public sealed record TelemetrySettings
{
    public const string SectionName = "Telemetry";

    /// <summary>Seconds between two telemetry messages.</summary>
    public int IntervalSeconds { get; set; } = 30;

    /// <summary>Above this CPU temperature the module runs fewer inference threads.</summary>
    public double CpuTemperatureLimitC { get; set; } = 80;

    /// <summary>Threads come back only once the CPU is this much cooler than the limit.</summary>
    public double HysteresisC { get; set; } = 5;

    public EnvironmentSensorKind Sensor { get; set; } = EnvironmentSensorKind.None;

    /// <summary>The bus number N of /dev/i2c-N.</summary>
    public int I2cBus { get; set; } = 1;

    /// <summary>The sensor's 7-bit address; unset means the sensor's usual one (<see cref="DefaultI2cAddress"/>).</summary>
    public int? I2cAddress { get; set; }

    /// <summary>0x76 for a BME280 (SDO to ground), 0x44 for an SHT3x (ADDR to ground).</summary>
    public static int DefaultI2cAddress(EnvironmentSensorKind sensor) => sensor switch
    {
        EnvironmentSensorKind.Bme280 => 0x76,
        EnvironmentSensorKind.Sht3x => 0x44,
        _ => 0,
    };

    public int ResolveI2cAddress() => I2cAddress ?? DefaultI2cAddress(Sensor);

    /// <summary>Every problem found, each naming its setting; empty when the settings are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (IntervalSeconds is < 1 or > 86_400)
        {
            errors.Add($"{SectionName}:{nameof(IntervalSeconds)} must be 1..86400 (got {IntervalSeconds})");
        }

        if (!(CpuTemperatureLimitC is >= 40 and <= 120))
        {
            errors.Add($"{SectionName}:{nameof(CpuTemperatureLimitC)} must be 40..120 °C (got {CpuTemperatureLimitC})");
        }

        // Zero hysteresis would add and remove a thread at every reading near the limit.
        if (!(HysteresisC is > 0 and <= 30))
        {
            errors.Add($"{SectionName}:{nameof(HysteresisC)} must be more than 0 and at most 30 °C (got {HysteresisC})");
        }

        if (!Enum.IsDefined(Sensor))
        {
            errors.Add($"{SectionName}:{nameof(Sensor)} must be none, bme280 or sht3x (got {(int)Sensor})");
        }

        if (I2cBus < 0)
        {
            errors.Add($"{SectionName}:{nameof(I2cBus)} must be 0 or more (got {I2cBus})");
        }

        // 0x00..0x02 and 0x78..0x7F are reserved by the I2C specification.
        if (I2cAddress is { } address && address is < 0x03 or > 0x77)
        {
            errors.Add($"{SectionName}:{nameof(I2cAddress)} must be 0x03..0x77 (got 0x{address:X2})");
        }

        return errors;
    }
}
