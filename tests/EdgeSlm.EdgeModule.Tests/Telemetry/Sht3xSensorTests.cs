using System.Text.Json;
using EdgeSlm.EdgeModule.Telemetry;

namespace EdgeSlm.EdgeModule.Tests.Telemetry;

public sealed class Sht3xSensorTests
{
    // The SHT3x binding rounds to 0.1, on top of the raw word's 0.0027 °C / 0.0015 %RH steps.
    private const double Sht3xTolerance = 0.05 + 0.003;

    [Fact]
    public void Sensirion_crc8_matches_the_datasheet_example()
    {
        // SHT3x-DIS datasheet table 19: CRC-8 of 0xBEEF is 0x92.
        Assert.Equal(0x92, Sht3xSensor.Crc8([0xBE, 0xEF]));
        Assert.Equal(0x92, SimulatedSht3x.Crc8(0xBE, 0xEF));
    }

    [Theory]
    [InlineData(23.5, 41.2)]
    [InlineData(-40.0, 0.0)]
    [InlineData(85.0, 100.0)]
    public void Sht3x_reading_is_the_datasheet_conversion_of_the_raw_words(double celsius, double humidity)
    {
        var chip = new SimulatedSht3x { RawTemperature = SimulatedSht3x.RawForCelsius(celsius), RawHumidity = SimulatedSht3x.RawForHumidity(humidity) };
        using var sensor = new Sht3xSensor(chip);

        EnvironmentReading reading = sensor.Read();

        Assert.True(reading.Succeeded, reading.Error);
        Assert.Equal("sht3x", reading.Sensor);
        Assert.Equal(celsius, reading.TemperatureC!.Value, Sht3xTolerance);
        Assert.Equal(humidity, reading.HumidityPercent!.Value, Sht3xTolerance);
        Assert.Null(reading.PressureHpa);
    }

    [Fact]
    public void Sht3x_frame_with_a_wrong_crc_gives_a_failed_reading_not_the_previous_values()
    {
        var chip = new SimulatedSht3x { RawTemperature = SimulatedSht3x.RawForCelsius(21), RawHumidity = SimulatedSht3x.RawForHumidity(40) };
        using var sensor = new Sht3xSensor(chip);
        Assert.True(sensor.Read().Succeeded);

        chip.RawTemperature = SimulatedSht3x.RawForCelsius(30);
        chip.CorruptTemperatureCrc = true;
        EnvironmentReading failed = sensor.Read();

        Assert.False(failed.Succeeded);
        Assert.Contains("CRC", failed.Error);
        Assert.Null(failed.TemperatureC);
        Assert.Null(failed.HumidityPercent);

        chip.CorruptTemperatureCrc = false;
        Assert.Equal(30, sensor.Read().TemperatureC!.Value, Sht3xTolerance);
    }

    [Fact]
    public void Sht3x_that_does_not_acknowledge_gives_a_failed_reading()
    {
        var chip = new SimulatedSht3x { Unplugged = true };
        using var sensor = new Sht3xSensor(chip);

        EnvironmentReading reading = sensor.Read();

        Assert.False(reading.Succeeded);
        Assert.Contains("0x44", reading.Error);
        Assert.Null(reading.TemperatureC);
    }
}
