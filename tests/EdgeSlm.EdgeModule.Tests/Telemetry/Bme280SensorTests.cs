using System.Text.Json;
using EdgeSlm.EdgeModule.Telemetry;

namespace EdgeSlm.EdgeModule.Tests.Telemetry;

public sealed class Bme280SensorTests
{
    // One ADC step is about 0.0003 °C, 0.002 hPa and 0.002 %RH at these conditions; the binding computes in
    // doubles as the tests' reference does, so what remains is the bisection's rounding to whole ADC steps.
    private const double TemperatureToleranceC = 0.01;
    private const double PressureToleranceHpa = 0.01;
    private const double HumidityTolerancePercent = 0.01;

    [Fact]
    public void Bme280_reading_matches_the_datasheet_worked_example()
    {
        var calibration = Bme280Calibration.Example;
        int adcH = calibration.RawFor(25.08, 1006.53, 55.0).AdcH;
        var chip = new SimulatedBme280(calibration) { AdcTemperature = 519888, AdcPressure = 415148, AdcHumidity = adcH };
        using var sensor = new Bme280Sensor(chip);

        EnvironmentReading reading = sensor.Read();

        Assert.True(reading.Succeeded, reading.Error);
        Assert.Equal("bme280", reading.Sensor);
        // BMP280 datasheet section 3.12: 25.08 °C and 100653.27 Pa with the floating-point formulas.
        Assert.Equal(25.08, reading.TemperatureC!.Value, TemperatureToleranceC);
        Assert.Equal(1006.5327, reading.PressureHpa!.Value, PressureToleranceHpa);
        Assert.Equal(55.0, reading.HumidityPercent!.Value, HumidityTolerancePercent);
    }

    [Theory]
    [InlineData(-10.0, 950.0, 20.0)]
    [InlineData(21.5, 1013.25, 45.0)]
    [InlineData(38.0, 1040.0, 85.0)]
    public void Bme280_compensation_gives_the_conditions_the_raw_values_were_made_for(double celsius, double hectopascals, double humidity)
    {
        var calibration = Bme280Calibration.Example;
        (int adcT, int adcP, int adcH) = calibration.RawFor(celsius, hectopascals, humidity);
        var chip = new SimulatedBme280(calibration) { AdcTemperature = adcT, AdcPressure = adcP, AdcHumidity = adcH };
        using var sensor = new Bme280Sensor(chip);

        EnvironmentReading reading = sensor.Read();

        Assert.True(reading.Succeeded, reading.Error);
        Assert.Equal(celsius, reading.TemperatureC!.Value, TemperatureToleranceC);
        Assert.Equal(hectopascals, reading.PressureHpa!.Value, PressureToleranceHpa);
        Assert.Equal(humidity, reading.HumidityPercent!.Value, HumidityTolerancePercent);
        Assert.Equal(1, chip.Measurements);
        Assert.Equal(0b00, chip.Register(SimulatedBme280.CtrlMeasRegister) & 0b11); // back to sleep after the forced conversion
    }

    [Fact]
    public void Bme280_makes_a_new_measurement_for_every_reading()
    {
        var calibration = Bme280Calibration.Example;
        var chip = new SimulatedBme280(calibration);
        using var sensor = new Bme280Sensor(chip);

        (chip.AdcTemperature, chip.AdcPressure, chip.AdcHumidity) = calibration.RawFor(20, 1000, 40);
        EnvironmentReading first = sensor.Read();
        (chip.AdcTemperature, chip.AdcPressure, chip.AdcHumidity) = calibration.RawFor(30, 990, 60);
        EnvironmentReading second = sensor.Read();

        Assert.Equal(20, first.TemperatureC!.Value, TemperatureToleranceC);
        Assert.Equal(30, second.TemperatureC!.Value, TemperatureToleranceC);
        Assert.Equal(990, second.PressureHpa!.Value, PressureToleranceHpa);
        Assert.Equal(60, second.HumidityPercent!.Value, HumidityTolerancePercent);
        Assert.Equal(2, chip.Measurements);
    }

    [Fact]
    public void Bme280_that_stops_answering_gives_a_failed_reading_not_the_last_values()
    {
        var calibration = Bme280Calibration.Example;
        var chip = new SimulatedBme280(calibration);
        (chip.AdcTemperature, chip.AdcPressure, chip.AdcHumidity) = calibration.RawFor(22, 1005, 50);
        using var sensor = new Bme280Sensor(chip);
        Assert.True(sensor.Read().Succeeded);

        chip.Unplugged = true;
        EnvironmentReading failed = sensor.Read();

        Assert.False(failed.Succeeded);
        Assert.Null(failed.TemperatureC);
        Assert.Null(failed.HumidityPercent);
        Assert.Null(failed.PressureHpa);
        Assert.Contains("0x76", failed.Error);

        chip.Unplugged = false;
        (chip.AdcTemperature, chip.AdcPressure, chip.AdcHumidity) = calibration.RawFor(23, 1004, 51);
        Assert.Equal(23, sensor.Read().TemperatureC!.Value, TemperatureToleranceC);
    }

    [Fact]
    public void Bme280_absent_at_start_is_reported_and_used_once_it_answers()
    {
        var calibration = Bme280Calibration.Example;
        var chip = new SimulatedBme280(calibration) { Unplugged = true };
        (chip.AdcTemperature, chip.AdcPressure, chip.AdcHumidity) = calibration.RawFor(19, 1010, 35);
        using var sensor = new Bme280Sensor(chip);

        Assert.False(sensor.Read().Succeeded);
        chip.Unplugged = false;
        EnvironmentReading reading = sensor.Read();

        Assert.True(reading.Succeeded, reading.Error);
        Assert.Equal(19, reading.TemperatureC!.Value, TemperatureToleranceC);
    }

    [Fact]
    public void A_BMP280_where_a_BME280_is_configured_is_reported_as_the_wrong_chip()
    {
        using var sensor = new Bme280Sensor(new SimulatedBme280(Bme280Calibration.Example, chipId: 0x58));

        EnvironmentReading reading = sensor.Read();

        Assert.False(reading.Succeeded);
        Assert.Contains("96", reading.Error); // the binding names the chip id it wanted, 0x60
    }

    [Fact]
    public void Bme280_that_lost_its_configuration_in_a_brown_out_is_configured_again()
    {
        var calibration = Bme280Calibration.Example;
        var chip = new SimulatedBme280(calibration);
        (chip.AdcTemperature, chip.AdcPressure, chip.AdcHumidity) = calibration.RawFor(24, 1001, 42);
        using var sensor = new Bme280Sensor(chip);
        Assert.True(sensor.Read().Succeeded);

        // Every channel comes back skipped: a forced conversion would leave 0x80000 in the data registers.
        chip.PowerCycle();
        (chip.AdcTemperature, chip.AdcPressure, chip.AdcHumidity) = calibration.RawFor(26, 999, 44);
        EnvironmentReading reading = sensor.Read();

        Assert.True(reading.Succeeded, reading.Error);
        Assert.Equal(26, reading.TemperatureC!.Value, TemperatureToleranceC);
        Assert.Equal(999, reading.PressureHpa!.Value, PressureToleranceHpa);
        Assert.Equal(44, reading.HumidityPercent!.Value, HumidityTolerancePercent);
    }
}
