using System.Text.Json;
using EdgeSlm.EdgeModule.Telemetry;

namespace EdgeSlm.EdgeModule.Tests.Telemetry;

public sealed class TelemetrySettingsTests
{
    [Fact]
    public void Default_settings_are_valid_and_pick_each_sensor_usual_address()
    {
        var settings = new TelemetrySettings();

        Assert.Empty(settings.Validate());
        Assert.Equal(30, settings.IntervalSeconds);
        Assert.Equal(80, settings.CpuTemperatureLimitC);
        Assert.Equal(5, settings.HysteresisC);
        Assert.Equal(EnvironmentSensorKind.None, settings.Sensor);
        Assert.Equal(1, settings.I2cBus);
        Assert.Equal(0x76, (settings with { Sensor = EnvironmentSensorKind.Bme280 }).ResolveI2cAddress());
        Assert.Equal(0x44, (settings with { Sensor = EnvironmentSensorKind.Sht3x }).ResolveI2cAddress());
        Assert.Equal(0x77, (settings with { Sensor = EnvironmentSensorKind.Bme280, I2cAddress = 0x77 }).ResolveI2cAddress());
    }

    [Fact]
    public void Invalid_settings_are_reported_by_name()
    {
        var settings = new TelemetrySettings
        {
            IntervalSeconds = 0,
            CpuTemperatureLimitC = double.NaN,
            HysteresisC = 0,
            Sensor = (EnvironmentSensorKind)7,
            I2cBus = -1,
            I2cAddress = 0x78,
        };

        IReadOnlyList<string> errors = settings.Validate();

        Assert.Collection(errors,
            e => Assert.StartsWith("Telemetry:IntervalSeconds ", e),
            e => Assert.StartsWith("Telemetry:CpuTemperatureLimitC ", e),
            e => Assert.StartsWith("Telemetry:HysteresisC ", e),
            e => Assert.StartsWith("Telemetry:Sensor ", e),
            e => Assert.StartsWith("Telemetry:I2cBus ", e),
            e => Assert.Equal("Telemetry:I2cAddress must be 0x03..0x77 (got 0x78)", e));
    }

    [Fact]
    public void No_sensor_configured_opens_nothing()
    {
        Assert.Null(EnvironmentSensor.Open(new TelemetrySettings()));
    }
}
