using System.Text.Json;
using EdgeSlm.EdgeModule.Telemetry;

namespace EdgeSlm.EdgeModule.Tests.Telemetry;

public sealed class CpuTemperatureSensorTests
{
    [Fact]
    public void Cpu_temperature_is_either_a_plausible_value_or_explicitly_unavailable()
    {
        using var sensor = new CpuTemperatureSensor();

        CpuTemperatureReading reading = sensor.Read();

        Assert.Equal(reading.IsAvailable, reading.TemperatureC.HasValue);
        Assert.Equal(reading.IsAvailable, reading.Error is null);
        if (reading.TemperatureC is { } celsius)
        {
            Assert.InRange(celsius, -40, 125);
        }
    }
}
