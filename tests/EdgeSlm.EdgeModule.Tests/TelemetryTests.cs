using System.Text.Json;
using EdgeSlm.EdgeModule.Telemetry;

namespace EdgeSlm.EdgeModule.Tests;

public sealed class TelemetryTests
{
    // One ADC step is about 0.0003 °C, 0.002 hPa and 0.002 %RH at these conditions; the binding computes in
    // doubles as the tests' reference does, so what remains is the bisection's rounding to whole ADC steps.
    private const double TemperatureToleranceC = 0.01;
    private const double PressureToleranceHpa = 0.01;
    private const double HumidityTolerancePercent = 0.01;

    // The SHT3x binding rounds to 0.1, on top of the raw word's 0.0027 °C / 0.0015 %RH steps.
    private const double Sht3xTolerance = 0.05 + 0.003;

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

    [Fact]
    public void Governor_steps_down_one_thread_per_hot_reading_and_never_below_one()
    {
        var governor = new ThermalGovernor(limitC: 80, hysteresisC: 5, maxThreads: 4);

        Assert.Equal(4, governor.Threads);
        Assert.Equal(3, governor.Observe(81));
        Assert.Equal(2, governor.Observe(90));
        Assert.Equal(1, governor.Observe(85));
        Assert.Equal(1, governor.Observe(99));
        Assert.Equal(1, governor.Threads);
    }

    [Fact]
    public void Governor_gives_threads_back_only_below_the_limit_minus_the_hysteresis()
    {
        var governor = new ThermalGovernor(limitC: 80, hysteresisC: 5, maxThreads: 4);
        governor.Observe(85);
        governor.Observe(85);
        Assert.Equal(2, governor.Threads);

        // Inside the band [75, 80] nothing changes, the edges included.
        Assert.Equal(2, governor.Observe(80));
        Assert.Equal(2, governor.Observe(77));
        Assert.Equal(2, governor.Observe(75));

        Assert.Equal(3, governor.Observe(74.9));
        Assert.Equal(4, governor.Observe(60));
        Assert.Equal(4, governor.Observe(40));
        Assert.Equal(4, governor.Threads);

        Assert.Equal(3, governor.Observe(80.5));
    }

    [Fact]
    public void Governor_rejects_settings_and_readings_it_cannot_use()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ThermalGovernor(80, 5, maxThreads: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ThermalGovernor(80, hysteresisC: 0, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ThermalGovernor(double.NaN, 5, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ThermalGovernor(80, 5, 4).Observe(double.NaN));
    }

    [Fact]
    public void Statistics_percentiles_are_nearest_rank_over_known_latencies()
    {
        var statistics = new InferenceStatistics();
        var random = new Random(1234);
        foreach (int ms in Enumerable.Range(1, 100).OrderBy(_ => random.Next()))
        {
            statistics.RecordCompleted(TimeSpan.FromMilliseconds(ms));
        }

        statistics.RecordFailed();
        statistics.RecordFailed();
        statistics.SetQueueDepth(3);
        statistics.IncrementQueueDepth();
        statistics.DecrementQueueDepth();
        statistics.DecrementQueueDepth();

        InferenceStatisticsSnapshot snapshot = statistics.Snapshot();
        Assert.Equal(100, snapshot.Count);
        Assert.Equal(2, snapshot.Errors);
        Assert.Equal(50.0, snapshot.P50Ms);
        Assert.Equal(99.0, snapshot.P99Ms);
        Assert.Equal(2, snapshot.QueueDepth);
    }

    [Fact]
    public void Statistics_percentiles_cover_only_the_latency_window()
    {
        var statistics = new InferenceStatistics(latencyWindow: 10);
        for (int ms = 1; ms <= 25; ms++)
        {
            statistics.RecordCompleted(TimeSpan.FromMilliseconds(ms));
        }

        InferenceStatisticsSnapshot snapshot = statistics.Snapshot();

        // The window holds 16..25.
        Assert.Equal(25, snapshot.Count);
        Assert.Equal(20.0, snapshot.P50Ms);
        Assert.Equal(25.0, snapshot.P99Ms);
    }

    [Fact]
    public void Statistics_before_the_first_inference_have_no_percentiles()
    {
        InferenceStatisticsSnapshot snapshot = new InferenceStatistics().Snapshot();

        Assert.Equal(0, snapshot.Count);
        Assert.Null(snapshot.P50Ms);
        Assert.Null(snapshot.P99Ms);
    }

    [Fact]
    public void Statistics_recorded_from_several_threads_keep_exact_counts()
    {
        const int Threads = 4;
        const int PerThread = 50_000;
        var statistics = new InferenceStatistics();
        using var start = new Barrier(Threads);
        var workers = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (int i = 0; i < PerThread; i++)
            {
                statistics.RecordCompleted(TimeSpan.FromMicroseconds(100 + t));
                if (i % 10 == 0)
                {
                    statistics.RecordFailed();
                }

                statistics.IncrementQueueDepth();
                statistics.DecrementQueueDepth();
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());

        InferenceStatisticsSnapshot snapshot = statistics.Snapshot();
        Assert.Equal(Threads * PerThread, snapshot.Count);
        Assert.Equal(Threads * PerThread / 10, snapshot.Errors);
        Assert.Equal(0, snapshot.QueueDepth);
        Assert.InRange(snapshot.P50Ms!.Value, 0.100, 0.103);
    }

    [Fact]
    public void Recording_a_latency_allocates_nothing()
    {
        var statistics = new InferenceStatistics();
        statistics.RecordCompleted(TimeSpan.FromMilliseconds(1));

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++)
        {
            statistics.RecordCompleted(TimeSpan.FromTicks(i));
            statistics.IncrementQueueDepth();
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

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

    [Fact]
    public void Telemetry_json_carries_every_reading()
    {
        var calibration = Bme280Calibration.Example;
        var chip = new SimulatedBme280(calibration);
        (chip.AdcTemperature, chip.AdcPressure, chip.AdcHumidity) = calibration.RawFor(21.5, 1013.25, 45);
        using var environment = new Bme280Sensor(chip);
        using var cpu = new CpuTemperatureSensor();
        var statistics = new InferenceStatistics();
        for (int ms = 1; ms <= 100; ms++)
        {
            statistics.RecordCompleted(TimeSpan.FromMilliseconds(ms));
        }

        statistics.RecordFailed();
        statistics.SetQueueDepth(2);
        var clock = new ManualClock(new DateTimeOffset(2025, 6, 1, 12, 0, 0, TimeSpan.Zero));
        var collector = new TelemetryCollector("site-7", cpu, environment, statistics, new ThermalGovernor(80, 5, 4), clock);
        clock.Advance(TimeSpan.FromSeconds(90.7));

        TelemetrySnapshot snapshot = collector.Collect();
        using JsonDocument document = JsonDocument.Parse(TelemetryCollector.ToJson(snapshot));
        JsonElement root = document.RootElement;

        Assert.Equal("edgeslm/site-7/telemetry", collector.Topic);
        Assert.Equal("site-7", root.GetProperty("siteId").GetString());
        Assert.Equal(new DateTimeOffset(2025, 6, 1, 12, 1, 30, 700, TimeSpan.Zero), root.GetProperty("time").GetDateTimeOffset());
        Assert.Equal(90, root.GetProperty("uptimeSeconds").GetInt64());
        JsonElement cpuTemperature = root.GetProperty("cpuTemperatureC");
        Assert.Equal(snapshot.CpuTemperature.IsAvailable, cpuTemperature.ValueKind == JsonValueKind.Number);

        JsonElement env = root.GetProperty("environment");
        Assert.Equal("bme280", env.GetProperty("sensor").GetString());
        Assert.Equal(21.5, env.GetProperty("temperatureC").GetDouble(), 0.01);
        Assert.Equal(45.0, env.GetProperty("humidityPercent").GetDouble(), 0.01);
        Assert.Equal(1013.25, env.GetProperty("pressureHpa").GetDouble(), 0.01);
        Assert.Equal(JsonValueKind.Null, env.GetProperty("error").ValueKind);

        JsonElement inference = root.GetProperty("inference");
        Assert.Equal(100, inference.GetProperty("count").GetInt64());
        Assert.Equal(1, inference.GetProperty("errors").GetInt64());
        Assert.Equal(50.0, inference.GetProperty("p50Ms").GetDouble());
        Assert.Equal(99.0, inference.GetProperty("p99Ms").GetDouble());
        Assert.Equal(2, inference.GetProperty("queueDepth").GetInt32());
        Assert.InRange(inference.GetProperty("threads").GetInt32(), 1, 4);
        Assert.True(root.GetProperty("rssBytes").GetInt64() > 0);
    }

    [Fact]
    public void Telemetry_json_reports_a_failed_sensor_with_its_reason_and_no_values()
    {
        var chip = new SimulatedSht3x { Unplugged = true };
        using var environment = new Sht3xSensor(chip);
        using var cpu = new CpuTemperatureSensor();
        var collector = new TelemetryCollector("site-7", cpu, environment, new InferenceStatistics(), new ThermalGovernor(80, 5, 2));

        using JsonDocument document = JsonDocument.Parse(TelemetryCollector.ToJson(collector.Collect()));
        JsonElement env = document.RootElement.GetProperty("environment");

        Assert.Equal("sht3x", env.GetProperty("sensor").GetString());
        Assert.Equal(JsonValueKind.Null, env.GetProperty("temperatureC").ValueKind);
        Assert.Equal(JsonValueKind.Null, env.GetProperty("humidityPercent").ValueKind);
        Assert.Equal(JsonValueKind.Null, env.GetProperty("pressureHpa").ValueKind);
        Assert.Contains("0x44", env.GetProperty("error").GetString());
        JsonElement inference = document.RootElement.GetProperty("inference");
        Assert.Equal(JsonValueKind.Null, inference.GetProperty("p50Ms").ValueKind);
        Assert.Equal(JsonValueKind.Null, inference.GetProperty("p99Ms").ValueKind);
    }

    [Fact]
    public void Telemetry_json_without_an_environment_sensor_has_a_null_environment()
    {
        using var cpu = new CpuTemperatureSensor();
        var collector = new TelemetryCollector("site-7", cpu, null, new InferenceStatistics(), new ThermalGovernor(80, 5, 2));

        using JsonDocument document = JsonDocument.Parse(TelemetryCollector.ToJson(collector.Collect()));

        Assert.Equal(JsonValueKind.Null, document.RootElement.GetProperty("environment").ValueKind);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("site+")]
    [InlineData("#")]
    public void A_site_id_that_is_not_one_topic_level_is_rejected(string siteId)
    {
        using var cpu = new CpuTemperatureSensor();
        Assert.ThrowsAny<ArgumentException>(() => new TelemetryCollector(siteId, cpu, null, new InferenceStatistics(), new ThermalGovernor(80, 5, 2)));
    }

    /// <summary>A clock that moves only when told to.</summary>
    private sealed class ManualClock(DateTimeOffset start) : TimeProvider
    {
        private TimeSpan _elapsed;

        public void Advance(TimeSpan by) => _elapsed += by;

        public override DateTimeOffset GetUtcNow() => start + _elapsed;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _elapsed.Ticks;
    }
}
